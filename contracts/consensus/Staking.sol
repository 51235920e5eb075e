// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

/// @title Staking
/// @notice layerlab's proof-of-stake staking contract: the execution-layer entry point of
/// the validator set, predeployed at a fixed address in the genesis alloc (it has no
/// constructor and no immutables, so its runtime code can be placed there as is).
///
/// 1. **Deposit** (Ethereum's deposit contract, EIP-2982 and consensus-specs
///    `specs/phase0/deposit-contract.md`): anyone sends at least `MIN_DEPOSIT`, in whole
///    gwei, with a validator's 48-byte BLS public key and a 96-byte BLS signature. The
///    contract only checks sizes and amounts and emits `Deposit`; the consensus layer
///    reads the event from the block's receipts and checks the signature, a proof of
///    possession over `sha256("layerlab-deposit" ++ pubkey ++ withdrawalAddress ++
///    uint64be(amountGwei))`, ignoring deposits whose proof fails, as the beacon chain
///    does. The ETH stays locked here for good, as in Ethereum: the consensus layer pays
///    validators out through EIP-4895 withdrawals, which mint at the execution layer.
/// 2. **Withdrawal address.** Where Ethereum commits to withdrawal credentials chosen by
///    the depositor, here the first deposit for a public key records `msg.sender` as the
///    validator's withdrawal address (its owner). Later top-ups for that key are accepted
///    only from the owner, so nobody can front-run a validator's first deposit and then
///    redirect it, nor attach a second withdrawal address to a key.
/// 3. **Exit** (EIP-7002, execution layer triggerable exits): the owner may ask, once, that
///    its validator leave the set; `ExitRequested` carries the key and the requesting
///    address, and the consensus layer checks that address against the validator's
///    withdrawal address, as EIP-7002's `source_address`. Unlike EIP-7002's system
///    contract there is no fee queue: the owner check and the once-only rule bound spam.
/// @dev References: https://eips.ethereum.org/EIPS/eip-2982,
/// https://github.com/ethereum/consensus-specs/blob/dev/specs/phase0/deposit-contract.md,
/// https://eips.ethereum.org/EIPS/eip-7002, https://eips.ethereum.org/EIPS/eip-4895.
contract Staking {
    /// @notice Smallest deposit, first or top-up (the deposit contract's 1 ether).
    uint256 public constant MIN_DEPOSIT = 1 ether;
    /// @notice Deposits are counted in gwei, as consensus balances are.
    uint256 public constant GWEI = 1 gwei;
    uint256 public constant PUBKEY_LENGTH = 48;
    uint256 public constant SIGNATURE_LENGTH = 96;

    /// @dev One slot per validator key, keyed by `keccak256(pubkey)`.
    struct Validator {
        address owner;
        bool exitRequested;
    }

    mapping(bytes32 => Validator) private _validators;
    uint64 private _depositCount;

    /// @notice A deposit of `amountGwei` for the validator `pubkey`, the `index`-th deposit
    /// ever made (from 0). `signature` is the depositor's unchecked BLS proof of possession.
    event Deposit(bytes pubkey, address indexed withdrawalAddress, uint64 amountGwei, bytes signature, uint64 index);
    /// @notice `sourceAddress`, the withdrawal address of `pubkey`, asks for its exit.
    event ExitRequested(bytes pubkey, address indexed sourceAddress);

    error InvalidPubkeyLength(uint256 length);
    error InvalidSignatureLength(uint256 length);
    error DepositTooSmall(uint256 value);
    error DepositNotWholeGwei(uint256 value);
    error DepositTooLarge(uint256 value);
    /// @notice `caller` is not the withdrawal address `owner` of the key.
    error NotOwner(address owner, address caller);
    error UnknownValidator();
    error ExitAlreadyRequested();

    /// @notice Deposit `msg.value` for the validator `pubkey` (see the contract notes).
    /// @param pubkey The validator's BLS12-381 public key (48 bytes, compressed G1).
    /// @param signature Its BLS proof of possession (96 bytes, compressed G2); checked by
    /// the consensus layer, not here.
    function deposit(bytes calldata pubkey, bytes calldata signature) external payable {
        if (pubkey.length != PUBKEY_LENGTH) revert InvalidPubkeyLength(pubkey.length);
        if (signature.length != SIGNATURE_LENGTH) revert InvalidSignatureLength(signature.length);
        if (msg.value < MIN_DEPOSIT) revert DepositTooSmall(msg.value);
        if (msg.value % GWEI != 0) revert DepositNotWholeGwei(msg.value);
        uint256 amountGwei = msg.value / GWEI;
        if (amountGwei > type(uint64).max) revert DepositTooLarge(msg.value);

        Validator storage validator = _validators[keccak256(pubkey)];
        address owner = validator.owner;
        if (owner == address(0)) {
            validator.owner = msg.sender;
        } else if (owner != msg.sender) {
            revert NotOwner(owner, msg.sender);
        }
        uint64 index = _depositCount;
        _depositCount = index + 1;
        emit Deposit(pubkey, msg.sender, uint64(amountGwei), signature, index);
    }

    /// @notice Ask for the exit of the validator `pubkey` (EIP-7002); only its withdrawal
    /// address may, and only once.
    function requestExit(bytes calldata pubkey) external {
        Validator storage validator = _validators[keccak256(pubkey)];
        address owner = validator.owner;
        if (owner == address(0)) revert UnknownValidator();
        if (owner != msg.sender) revert NotOwner(owner, msg.sender);
        if (validator.exitRequested) revert ExitAlreadyRequested();
        validator.exitRequested = true;
        emit ExitRequested(pubkey, msg.sender);
    }

    /// @notice Number of deposits made so far (the next deposit's index).
    function depositCount() external view returns (uint64) {
        return _depositCount;
    }

    /// @notice The withdrawal address of `pubkey`, or `address(0)` if it never got a deposit.
    function ownerOf(bytes calldata pubkey) external view returns (address) {
        return _validators[keccak256(pubkey)].owner;
    }

    /// @notice Whether the exit of `pubkey` was requested.
    function exitRequested(bytes calldata pubkey) external view returns (bool) {
        return _validators[keccak256(pubkey)].exitRequested;
    }
}

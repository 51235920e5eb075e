// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";
import {ReentrancyGuard} from "@openzeppelin/contracts/utils/ReentrancyGuard.sol";
import {ECDSA} from "@openzeppelin/contracts/utils/cryptography/ECDSA.sol";
import {EIP712} from "@openzeppelin/contracts/utils/cryptography/EIP712.sol";

/// @title PaymentChannels
/// @notice The L1 side of layerlab's payment-channel network: two-party channels in ETH or
/// an ERC-20, updated off-chain by EIP-712 states that both parties sign, settled here.
///
/// Protocol (Lightning BOLT 2/3 in what it guarantees, Raiden's TokenNetwork in shape):
///
/// 1. **Open.** The opener (participant A) names the counterparty (B), the token
///    (`address(0)` for ETH) and a settle timeout in blocks, and deposits. Either party may
///    top up (`deposit`) while the channel is open.
/// 2. **Update off-chain.** Every payment is a new `ChannelState` with a higher `nonce`,
///    signed by both (EIP-712, domain "layerlab-channels" version "1"). A state commits to
///    the pending hash time-locked transfers (HTLCs, BOLT 2 `update_add_htlc`) through
///    `locksHash = keccak256(abi.encode(Lock[]))` (`bytes32(0)` for none). Conservation:
///    `balanceA + balanceB + sum(lock.amount) == depositA + depositB`, where the state's
///    deposits may lag the on-chain ones (a later top-up is paid back on top).
/// 3. **Cooperative close** (BOLT 2 `closing_signed`): both sign a *final* state (nonce
///    `FINAL_NONCE`, no locks); anyone submits it and both are paid in one transaction.
///    The final nonce is what makes this safe: an ordinary (possibly revoked) state can
///    never be cashed out without the dispute window.
/// 4. **Unilateral close** (BOLT 5 force close): a participant submits the latest state it
///    holds with both signatures, plus the locks it commits to. A settle window of
///    `settleTimeout` blocks opens. A participant that never got any state signed may
///    close with the *empty* state (nonce 0, everything zero, no signatures): every
///    deposit then returns to its depositor.
/// 5. **Dispute** (BOLT 3 revoked-commitment penalty; Raiden `updateNonClosingBalanceProof`):
///    during the window anyone (the victim or its watchtower) may submit a newer state
///    signed by both. A party signs state n+2 only once it holds both signatures on n+1, so
///    a state at least two nonces above the closed one proves the closer knowingly closed
///    on a revoked state: the whole channel goes to the other party at once. A state
///    exactly one nonce above (or the final state) may be one the closer never received
///    countersigned (the counterparty withheld its signature), so it only *replaces* the
///    closed state, as in Raiden; that stops a counterparty from stealing the channel by
///    withholding its last signature. Equal or lower nonces are refused (replay).
/// 6. **HTLCs on-chain** (BOLT 3 HTLC-success / HTLC-timeout): while the channel is
///    closing, anyone may open a lock with its preimage (`sha256(preimage) == hashlock`,
///    as Lightning's payment hash) up to and including block `expiry`; the receiver is
///    credited and `LockClaimed` publishes the preimage so upstream hops learn it from L1.
///    A lock not claimed by its expiry is refunded to its payer at settlement. A claim
///    survives a later replacement of the closed state (step 5) for every lock of the new
///    state with the same hashlock and an expiry not before the claim.
/// 7. **Settle**: after the window and after every unclaimed lock has expired, each party
///    gets its balance, the locks it received and claimed, the locks it paid that expired,
///    and its deposits the state did not account for.
///
/// Payments that fail (a contract recipient that rejects ETH, a token that refuses a
/// transfer) are not allowed to block settlement: they are credited and withdrawn with
/// `withdraw`. Tokens that charge a fee on transfer are refused at deposit. A channel
/// holds at most `MAX_TOTAL_DEPOSIT` (2^128 - 1) token units, so that payouts and lock
/// amounts pack into fewer storage slots (a unilateral close writes one fresh slot).
/// @dev References: https://github.com/lightning/bolts (02-peer-protocol, 03-transactions,
/// 05-onchain); https://raiden-network-specification.readthedocs.io (TokenNetwork).
contract PaymentChannels is EIP712, ReentrancyGuard {
    using SafeERC20 for IERC20;

    /// @notice One version of a channel, valid once both participants signed it.
    struct ChannelState {
        bytes32 channelId;
        uint64 nonce;
        uint256 depositA;
        uint256 depositB;
        uint256 balanceA;
        uint256 balanceB;
        bytes32 locksHash;
    }

    /// @notice A hash time-locked amount: paid to the receiver (B if `fromA`, else A) when
    /// `sha256(preimage) == hashlock` is shown by block `expiry`, else back to the payer.
    struct Lock {
        uint256 amount;
        uint64 expiry;
        bytes32 hashlock;
        bool fromA;
    }

    enum Status {
        None,
        Open,
        Closing,
        Settled
    }

    /// @dev Who started a unilateral close, if anyone did.
    enum Side {
        None,
        A,
        B
    }

    /// @notice Public view of a channel (see `getChannel`).
    /// @dev While closing, `payoutA`/`payoutB` are what each side gets apart from the
    /// recorded locks: its balance in the recorded state plus its deposits that state did
    /// not account for. `closer` is zero until a unilateral close.
    struct ChannelInfo {
        address participantA;
        address participantB;
        address token;
        Status status;
        uint64 settleTimeout;
        uint64 settleBlock;
        address closer;
        uint64 nonce;
        uint64 closedNonce;
        uint256 depositA;
        uint256 depositB;
        uint256 payoutA;
        uint256 payoutB;
        uint256 lockCount;
    }

    /// @dev Six slots; a unilateral close rewrites slots 0 and 1 and fills slot 3. B's
    /// payout is never stored: it is the total deposit minus A's payout and the locks.
    struct Channel {
        address participantA; // slot 0
        uint64 settleTimeout;
        Status status;
        Side closer;
        address participantB; // slot 1
        uint64 settleBlock;
        address token; // slot 2
        uint128 payoutA; // slot 3
        uint64 nonce;
        uint64 closedNonce;
        uint256 depositA; // slot 4
        uint256 depositB; // slot 5
    }

    /// @dev `claimedAt` is the block in which the preimage was shown (0: unclaimed).
    struct StoredLock {
        uint128 amount;
        uint64 expiry;
        bool fromA;
        uint40 claimedAt;
        bytes32 hashlock;
    }

    bytes32 public constant CHANNEL_STATE_TYPEHASH = keccak256(
        "ChannelState(bytes32 channelId,uint64 nonce,uint256 depositA,uint256 depositB,"
        "uint256 balanceA,uint256 balanceB,bytes32 locksHash)"
    );
    /// @notice Nonce of the final state both sign to close cooperatively.
    uint64 public constant FINAL_NONCE = type(uint64).max;
    uint64 public constant MIN_SETTLE_TIMEOUT = 2;
    uint64 public constant MAX_SETTLE_TIMEOUT = 100_000;
    /// @notice Most pending locks a closing state may carry (bounds the settle loop; BOLT 2
    /// has `max_accepted_htlcs` for the same reason).
    uint256 public constant MAX_LOCKS = 64;
    /// @notice Most a channel may hold, in token units (wei for ETH).
    uint256 public constant MAX_TOTAL_DEPOSIT = type(uint128).max;
    /// @dev Gas forwarded with an ETH payout, so a recipient cannot burn the settle gas.
    uint256 private constant ETH_PAYOUT_GAS = 100_000;

    uint256 public channelCounter;
    mapping(bytes32 => Channel) private _channels;
    mapping(bytes32 => StoredLock[]) private _locks;
    /// @notice Payouts that could not be pushed, by recipient and token (`withdraw`).
    mapping(address => mapping(address => uint256)) public owed;

    event ChannelOpened(
        bytes32 indexed channelId,
        address indexed participantA,
        address indexed participantB,
        address token,
        uint256 deposit,
        uint64 settleTimeout
    );
    event Deposited(bytes32 indexed channelId, address indexed participant, uint256 amount, uint256 totalDeposit);
    event CooperativelyClosed(bytes32 indexed channelId, uint256 paidA, uint256 paidB);
    event ChannelClosed(
        bytes32 indexed channelId, address indexed closer, uint64 nonce, uint64 settleBlock, uint256 lockCount
    );
    /// @notice The closed state was replaced by the next one (no penalty: see step 5).
    event ChannelUpdated(bytes32 indexed channelId, address indexed submitter, uint64 nonce, uint256 lockCount);
    /// @notice The closer was proven to have closed on a revoked state; `beneficiary` (the
    /// other participant) received the whole channel.
    event ChannelChallenged(
        bytes32 indexed channelId,
        address indexed submitter,
        address indexed beneficiary,
        uint64 closedNonce,
        uint64 nonce,
        uint256 amount
    );
    event LockClaimed(bytes32 indexed channelId, uint256 index, bytes32 indexed hashlock, bytes32 preimage);
    event ChannelSettled(bytes32 indexed channelId, uint256 paidA, uint256 paidB);
    event PaymentDeferred(address indexed recipient, address indexed token, uint256 amount);
    event Withdrawn(address indexed recipient, address indexed token, uint256 amount);

    error UnknownChannel(bytes32 channelId);
    error WrongStatus(bytes32 channelId, Status actual, Status required);
    error NotParticipant(bytes32 channelId, address caller);
    error InvalidCounterparty(address counterparty);
    error SettleTimeoutOutOfRange(uint64 settleTimeout, uint64 min, uint64 max);
    error EtherValueMismatch(uint256 sent, uint256 expected);
    error DepositLimitExceeded(uint256 totalDeposit, uint256 max);
    error TokenNotContract(address token);
    error TransferFeeNotSupported(address token, uint256 expected, uint256 received);
    error InvalidSignature(bytes32 channelId, address expectedSigner, address recovered);
    error UnsignedStateNotEmpty(bytes32 channelId);
    error StateDepositExceedsOnchain(bytes32 channelId, bool ofA, uint256 stateDeposit, uint256 onchainDeposit);
    error NotConserving(bytes32 channelId, uint256 balancesPlusLocks, uint256 deposits);
    error LocksHashMismatch(bytes32 channelId, bytes32 signed, bytes32 computed);
    error TooManyLocks(uint256 count, uint256 max);
    error EmptyLock(uint256 index);
    error NotFinalState(uint64 nonce, uint64 finalNonce);
    error LocksInCooperativeClose(bytes32 locksHash);
    error ChallengePeriodOver(bytes32 channelId, uint256 blockNumber, uint64 settleBlock);
    error StaleState(bytes32 channelId, uint64 nonce, uint64 recordedNonce);
    error LockIndexOutOfRange(uint256 index, uint256 count);
    error LockAlreadyClaimed(bytes32 channelId, uint256 index);
    error LockExpired(bytes32 channelId, uint256 index, uint64 expiry, uint256 blockNumber);
    error WrongPreimage(bytes32 hashlock, bytes32 sha256OfPreimage);
    error SettleTooEarly(bytes32 channelId, uint256 blockNumber, uint64 settleBlock);
    error LockNotExpired(bytes32 channelId, uint256 index, uint64 expiry, uint256 blockNumber);
    error NothingToWithdraw(address recipient, address token);
    error EtherTransferFailed(address recipient, uint256 amount);

    constructor() EIP712("layerlab-channels", "1") {}

    // ---------------------------------------------------------------- open and top up

    /// @notice Open a channel with `counterparty`, depositing `amount` of `token`
    /// (`address(0)`: ETH, sent as `msg.value`; else an ERC-20 approved beforehand).
    /// @param settleTimeout Blocks between a unilateral close and settlement, the time the
    /// other party (or its watchtower) has to dispute.
    /// @return channelId `keccak256(abi.encode(msg.sender, counterparty, token, counter))`.
    function open(address counterparty, address token, uint256 amount, uint64 settleTimeout)
        external
        payable
        nonReentrant
        returns (bytes32 channelId)
    {
        if (counterparty == address(0) || counterparty == msg.sender) revert InvalidCounterparty(counterparty);
        if (settleTimeout < MIN_SETTLE_TIMEOUT || settleTimeout > MAX_SETTLE_TIMEOUT) {
            revert SettleTimeoutOutOfRange(settleTimeout, MIN_SETTLE_TIMEOUT, MAX_SETTLE_TIMEOUT);
        }
        if (token != address(0) && token.code.length == 0) revert TokenNotContract(token);
        channelId = keccak256(abi.encode(msg.sender, counterparty, token, ++channelCounter));
        Channel storage c = _channels[channelId];
        c.participantA = msg.sender;
        c.participantB = counterparty;
        c.token = token;
        c.settleTimeout = settleTimeout;
        c.status = Status.Open;
        if (amount > MAX_TOTAL_DEPOSIT) revert DepositLimitExceeded(amount, MAX_TOTAL_DEPOSIT);
        _collect(token, amount);
        c.depositA = amount;
        emit ChannelOpened(channelId, msg.sender, counterparty, token, amount, settleTimeout);
    }

    /// @notice Top up the caller's deposit while the channel is open.
    function deposit(bytes32 channelId, uint256 amount) external payable nonReentrant {
        Channel storage c = _requireStatus(channelId, Status.Open);
        bool isA = _participantSide(channelId, c, msg.sender);
        uint256 depositA = c.depositA;
        uint256 depositB = c.depositB;
        if (depositA + depositB + amount > MAX_TOTAL_DEPOSIT) {
            revert DepositLimitExceeded(depositA + depositB + amount, MAX_TOTAL_DEPOSIT);
        }
        _collect(c.token, amount);
        uint256 total;
        if (isA) {
            total = c.depositA = depositA + amount;
        } else {
            total = c.depositB = depositB + amount;
        }
        emit Deposited(channelId, msg.sender, amount, total);
    }

    // ---------------------------------------------------------------- close

    /// @notice Close at once with the final state (nonce `FINAL_NONCE`, no locks) signed by
    /// both. Pays `balanceA` plus A's deposits the state does not account for to A, and the
    /// same for B. Anyone may submit it.
    function cooperativeClose(ChannelState calldata s, bytes calldata sigA, bytes calldata sigB)
        external
        nonReentrant
    {
        Channel storage c = _requireStatus(s.channelId, Status.Open);
        if (s.nonce != FINAL_NONCE) revert NotFinalState(s.nonce, FINAL_NONCE);
        if (s.locksHash != bytes32(0)) revert LocksInCooperativeClose(s.locksHash);
        _validateSignatures(c, s, sigA, sigB);
        uint256 payA = _validateConservation(c, s, 0);
        uint256 payB = c.depositA + c.depositB - payA;
        c.status = Status.Settled;
        emit CooperativelyClosed(s.channelId, payA, payB);
        _pay(c.token, c.participantA, payA);
        _pay(c.token, c.participantB, payB);
    }

    /// @notice Start a unilateral close with the latest state both signed and the locks it
    /// commits to; settlement is possible `settleTimeout` blocks later. Only a participant
    /// may close. With no signatures, only the empty state (nonce 0, all zero) is accepted.
    function close(ChannelState calldata s, Lock[] calldata locks, bytes calldata sigA, bytes calldata sigB)
        external
        nonReentrant
    {
        Channel storage c = _requireStatus(s.channelId, Status.Open);
        _participantSide(s.channelId, c, msg.sender);
        if (s.nonce == 0 && sigA.length == 0 && sigB.length == 0) {
            if (
                s.depositA != 0 || s.depositB != 0 || s.balanceA != 0 || s.balanceB != 0
                    || s.locksHash != bytes32(0) || locks.length != 0
            ) revert UnsignedStateNotEmpty(s.channelId);
        } else {
            _validateSignatures(c, s, sigA, sigB);
        }
        _recordState(c, s, locks);
        uint64 settleBlock = uint64(block.number) + c.settleTimeout;
        c.status = Status.Closing;
        c.closer = msg.sender == c.participantA ? Side.A : Side.B;
        c.closedNonce = s.nonce;
        c.settleBlock = settleBlock;
        emit ChannelClosed(s.channelId, msg.sender, s.nonce, settleBlock, locks.length);
    }

    /// @notice Contest a unilateral close with a newer state signed by both, up to and
    /// including the settle block. Anyone may call (the victim or its watchtower).
    /// A state two or more nonces above the closed one (other than the final state) proves
    /// the closer closed on a revoked state: every deposit goes to the other participant
    /// now. The next state (closed nonce + 1) or the final state replaces the recorded one.
    function challenge(ChannelState calldata s, Lock[] calldata locks, bytes calldata sigA, bytes calldata sigB)
        external
        nonReentrant
    {
        Channel storage c = _requireStatus(s.channelId, Status.Closing);
        if (block.number > c.settleBlock) revert ChallengePeriodOver(s.channelId, block.number, c.settleBlock);
        if (s.nonce <= c.nonce) revert StaleState(s.channelId, s.nonce, c.nonce);
        _validateSignatures(c, s, sigA, sigB);
        if (s.nonce != FINAL_NONCE && uint256(s.nonce) >= uint256(c.closedNonce) + 2) {
            address beneficiary = c.closer == Side.A ? c.participantB : c.participantA;
            uint256 amount = c.depositA + c.depositB;
            c.status = Status.Settled;
            c.nonce = s.nonce;
            delete _locks[s.channelId];
            emit ChannelChallenged(s.channelId, msg.sender, beneficiary, c.closedNonce, s.nonce, amount);
            _pay(c.token, beneficiary, amount);
            return;
        }
        _replaceState(c, s, locks);
        emit ChannelUpdated(s.channelId, msg.sender, s.nonce, locks.length);
    }

    // ---------------------------------------------------------------- locks and settlement

    /// @notice Open pending lock `index` of a closing channel with its preimage, up to and
    /// including block `expiry`; credits the receiver. Anyone may call.
    function claimLock(bytes32 channelId, uint256 index, bytes32 preimage) external nonReentrant {
        _requireStatus(channelId, Status.Closing);
        StoredLock[] storage locks = _locks[channelId];
        if (index >= locks.length) revert LockIndexOutOfRange(index, locks.length);
        StoredLock storage lock = locks[index];
        if (lock.claimedAt != 0) revert LockAlreadyClaimed(channelId, index);
        if (block.number > lock.expiry) revert LockExpired(channelId, index, lock.expiry, block.number);
        bytes32 digest = sha256(abi.encodePacked(preimage));
        if (digest != lock.hashlock) revert WrongPreimage(lock.hashlock, digest);
        lock.claimedAt = uint40(block.number);
        emit LockClaimed(channelId, index, lock.hashlock, preimage);
    }

    /// @notice Pay out a closed channel once the settle block has passed and every
    /// unclaimed lock has expired (unclaimed locks return to their payers). Anyone may call.
    function settle(bytes32 channelId) external nonReentrant {
        Channel storage c = _requireStatus(channelId, Status.Closing);
        if (block.number <= c.settleBlock) revert SettleTooEarly(channelId, block.number, c.settleBlock);
        uint256 payA = c.payoutA;
        StoredLock[] storage locks = _locks[channelId];
        uint256 count = locks.length;
        for (uint256 i = 0; i < count; ++i) {
            StoredLock storage lock = locks[i];
            // a lock goes to A when B's lock was claimed or A's lock expired unclaimed
            if (lock.claimedAt != 0) {
                if (!lock.fromA) payA += lock.amount;
            } else {
                if (block.number <= lock.expiry) revert LockNotExpired(channelId, i, lock.expiry, block.number);
                if (lock.fromA) payA += lock.amount;
            }
        }
        uint256 payB = c.depositA + c.depositB - payA;
        c.status = Status.Settled;
        delete _locks[channelId];
        emit ChannelSettled(channelId, payA, payB);
        _pay(c.token, c.participantA, payA);
        _pay(c.token, c.participantB, payB);
    }

    /// @notice Withdraw payouts that could not be pushed to the caller.
    function withdraw(address token) external nonReentrant {
        uint256 amount = owed[msg.sender][token];
        if (amount == 0) revert NothingToWithdraw(msg.sender, token);
        owed[msg.sender][token] = 0;
        emit Withdrawn(msg.sender, token, amount);
        if (token == address(0)) {
            (bool ok,) = payable(msg.sender).call{value: amount}("");
            if (!ok) revert EtherTransferFailed(msg.sender, amount);
        } else {
            IERC20(token).safeTransfer(msg.sender, amount);
        }
    }

    // ---------------------------------------------------------------- views

    function getChannel(bytes32 channelId) external view returns (ChannelInfo memory info) {
        Channel storage c = _channels[channelId];
        if (c.status == Status.None) revert UnknownChannel(channelId);
        StoredLock[] storage locks = _locks[channelId];
        uint256 locked;
        for (uint256 i = 0; i < locks.length; ++i) {
            locked += locks[i].amount;
        }
        bool closing = c.status == Status.Closing;
        address closer = c.closer == Side.A ? c.participantA : c.closer == Side.B ? c.participantB : address(0);
        info = ChannelInfo({
            participantA: c.participantA,
            participantB: c.participantB,
            token: c.token,
            status: c.status,
            settleTimeout: c.settleTimeout,
            settleBlock: c.settleBlock,
            closer: closer,
            nonce: c.nonce,
            closedNonce: c.closedNonce,
            depositA: c.depositA,
            depositB: c.depositB,
            payoutA: closing ? c.payoutA : 0,
            payoutB: closing ? c.depositA + c.depositB - c.payoutA - locked : 0,
            lockCount: locks.length
        });
    }

    /// @notice Pending lock `index` of a closing channel and whether it was claimed.
    function getLock(bytes32 channelId, uint256 index) external view returns (Lock memory lock, bool claimed) {
        StoredLock[] storage locks = _locks[channelId];
        if (index >= locks.length) revert LockIndexOutOfRange(index, locks.length);
        StoredLock storage stored = locks[index];
        lock = Lock({amount: stored.amount, expiry: stored.expiry, hashlock: stored.hashlock, fromA: stored.fromA});
        claimed = stored.claimedAt != 0;
    }

    /// @notice The EIP-712 domain separator of this deployment.
    function domainSeparator() external view returns (bytes32) {
        return _domainSeparatorV4();
    }

    /// @notice The EIP-712 digest both participants sign for `s`.
    function hashState(ChannelState calldata s) public view returns (bytes32) {
        return _hashTypedDataV4(
            keccak256(
                abi.encode(
                    CHANNEL_STATE_TYPEHASH,
                    s.channelId,
                    s.nonce,
                    s.depositA,
                    s.depositB,
                    s.balanceA,
                    s.balanceB,
                    s.locksHash
                )
            )
        );
    }

    /// @notice `keccak256(abi.encode(locks))`, or `bytes32(0)` for no locks.
    function hashLocks(Lock[] calldata locks) public pure returns (bytes32) {
        return locks.length == 0 ? bytes32(0) : keccak256(abi.encode(locks));
    }

    // ---------------------------------------------------------------- internal steps

    function _requireStatus(bytes32 channelId, Status required) private view returns (Channel storage c) {
        c = _channels[channelId];
        if (c.status == Status.None) revert UnknownChannel(channelId);
        if (c.status != required) revert WrongStatus(channelId, c.status, required);
    }

    /// @dev True for participant A, false for B; reverts for anyone else.
    function _participantSide(bytes32 channelId, Channel storage c, address who) private view returns (bool) {
        if (who == c.participantA) return true;
        if (who == c.participantB) return false;
        revert NotParticipant(channelId, who);
    }

    function _validateSignatures(Channel storage c, ChannelState calldata s, bytes calldata sigA, bytes calldata sigB)
        private
        view
    {
        bytes32 digest = hashState(s);
        _validateSigner(s.channelId, digest, sigA, c.participantA);
        _validateSigner(s.channelId, digest, sigB, c.participantB);
    }

    function _validateSigner(bytes32 channelId, bytes32 digest, bytes calldata sig, address expected) private pure {
        (address recovered, ECDSA.RecoverError err,) = ECDSA.tryRecover(digest, sig);
        if (err != ECDSA.RecoverError.NoError || recovered != expected) {
            revert InvalidSignature(channelId, expected, recovered);
        }
    }

    /// @dev Checks the state's deposits against the chain and conservation; returns what
    /// A is owed apart from the locks (B is owed the rest).
    function _validateConservation(Channel storage c, ChannelState calldata s, uint256 locked)
        private
        view
        returns (uint256 payA)
    {
        uint256 depositA = c.depositA;
        uint256 depositB = c.depositB;
        if (s.depositA > depositA) revert StateDepositExceedsOnchain(s.channelId, true, s.depositA, depositA);
        if (s.depositB > depositB) revert StateDepositExceedsOnchain(s.channelId, false, s.depositB, depositB);
        uint256 deposits = s.depositA + s.depositB;
        if (s.balanceA > deposits || s.balanceB > deposits || s.balanceA + s.balanceB + locked != deposits) {
            revert NotConserving(s.channelId, _saturatingSum(s.balanceA, s.balanceB, locked), deposits);
        }
        payA = s.balanceA + (depositA - s.depositA);
    }

    /// @dev Validates `locks` against `s.locksHash` and conservation, then records the
    /// state's payouts, nonce and locks.
    function _recordState(Channel storage c, ChannelState calldata s, Lock[] calldata locks) private {
        uint256 count = locks.length;
        if (count > MAX_LOCKS) revert TooManyLocks(count, MAX_LOCKS);
        bytes32 computed = hashLocks(locks);
        if (computed != s.locksHash) revert LocksHashMismatch(s.channelId, s.locksHash, computed);
        uint256 locked;
        StoredLock[] storage stored = _locks[s.channelId];
        for (uint256 i = 0; i < count; ++i) {
            Lock calldata lock = locks[i];
            if (lock.amount == 0) revert EmptyLock(i);
            locked += lock.amount;
            stored.push(
                StoredLock({
                    amount: uint128(lock.amount),
                    expiry: lock.expiry,
                    fromA: lock.fromA,
                    claimedAt: 0,
                    hashlock: lock.hashlock
                })
            );
        }
        // conservation bounds every amount by the deposits, at most MAX_TOTAL_DEPOSIT, so
        // the narrowing casts above and below are lossless once this check passed
        c.payoutA = uint128(_validateConservation(c, s, locked));
        c.nonce = s.nonce;
    }

    /// @dev Replaces the recorded state by a newer one (a challenge without penalty). A
    /// preimage already shown on-chain stays shown: a new lock with the hashlock of a
    /// claimed one counts as claimed if that claim came by the new lock's expiry, so a
    /// receiver who claimed in time cannot lose the lock to an update submitted later.
    function _replaceState(Channel storage c, ChannelState calldata s, Lock[] calldata locks) private {
        StoredLock[] storage stored = _locks[s.channelId];
        uint256 oldCount = stored.length;
        bytes32[] memory claimedHashes = new bytes32[](oldCount);
        uint40[] memory claimedAt = new uint40[](oldCount);
        uint256 claims;
        for (uint256 i = 0; i < oldCount; ++i) {
            StoredLock storage lock = stored[i];
            if (lock.claimedAt != 0) {
                claimedHashes[claims] = lock.hashlock;
                claimedAt[claims] = lock.claimedAt;
                ++claims;
            }
        }
        delete _locks[s.channelId];
        _recordState(c, s, locks);
        if (claims == 0) return;
        uint256 count = stored.length;
        for (uint256 i = 0; i < count; ++i) {
            StoredLock storage lock = stored[i];
            for (uint256 j = 0; j < claims; ++j) {
                if (claimedHashes[j] == lock.hashlock && claimedAt[j] <= lock.expiry) {
                    lock.claimedAt = claimedAt[j];
                    break;
                }
            }
        }
    }

    /// @dev Takes `amount` from the caller: ETH must come as exactly `msg.value`; an ERC-20
    /// is pulled and must arrive in full.
    function _collect(address token, uint256 amount) private {
        if (token == address(0)) {
            if (msg.value != amount) revert EtherValueMismatch(msg.value, amount);
            return;
        }
        if (msg.value != 0) revert EtherValueMismatch(msg.value, 0);
        if (amount == 0) return;
        IERC20 erc20 = IERC20(token);
        uint256 before = erc20.balanceOf(address(this));
        erc20.safeTransferFrom(msg.sender, address(this), amount);
        uint256 received = erc20.balanceOf(address(this)) - before;
        if (received != amount) revert TransferFeeNotSupported(token, amount, received);
    }

    /// @dev Pushes a payout; on failure credits it to `owed` so settlement never blocks.
    function _pay(address token, address to, uint256 amount) private {
        if (amount == 0) return;
        bool ok;
        if (token == address(0)) {
            (ok,) = payable(to).call{value: amount, gas: ETH_PAYOUT_GAS}("");
        } else {
            ok = IERC20(token).trySafeTransfer(to, amount);
        }
        if (!ok) {
            owed[to][token] += amount;
            emit PaymentDeferred(to, token, amount);
        }
    }

    function _saturatingSum(uint256 a, uint256 b, uint256 c) private pure returns (uint256) {
        unchecked {
            uint256 ab = a + b;
            if (ab < a) return type(uint256).max;
            uint256 abc = ab + c;
            return abc < ab ? type(uint256).max : abc;
        }
    }
}

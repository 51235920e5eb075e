// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {SecureMerkleTrie} from "../lib/optimism/trie/SecureMerkleTrie.sol";
import {RLPReader} from "../lib/optimism/rlp/RLPReader.sol";

/// @title CrossShard: value moves between execution shards by receipts proven against crosslinks
/// @notice One instance lives at the same address on every shard (the system account's first
///         contract). A transfer is the receipt design of eth2 phase 1 and Near:
///         1. `send` on the source shard locks the value here and stores the receipt's hash in
///            `receipts[nonce]`, a storage slot of this contract;
///         2. once the beacon chain has finalized a crosslink of the source shard at some block,
///            the system account posts that block's state root on the destination shard
///            (`postCrosslink`);
///         3. anyone submits `claim` with the EIP-1186 proofs (`eth_getProof`) of this
///            contract's account in that state root and of the receipt's slot in the account's
///            storage root; the contract checks both Merkle-Patricia proofs and pays `to` from
///            its reserve, once per (source shard, nonce).
///         Value is conserved: what `send` locks on one shard, `claim` releases on another.
contract CrossShard {
    /// @notice Storage slot of the `receipts` mapping (its slot index in this layout).
    uint256 public constant RECEIPTS_SLOT = 1;

    /// @notice The beacon system account: the only sender of crosslinks (as EIP-4788's).
    address public immutable system;
    uint256 public immutable shardId;
    uint256 public immutable shardCount;

    /// @notice Receipts sent from this shard so far (slot 0).
    uint256 public nextNonce;
    /// @notice nonce => keccak256(abi.encode(source, dest, nonce, to, value)) (slot 1).
    mapping(uint256 => bytes32) public receipts;
    /// @notice source shard => source block number => finalized state root.
    mapping(uint256 => mapping(uint256 => bytes32)) public crosslinkedRoot;
    /// @notice source shard => nonce => whether its receipt was paid here.
    mapping(uint256 => mapping(uint256 => bool)) public claimed;

    error NotSystem(address sender);
    error WrongShard(uint256 shard, uint256 expected);
    error ZeroValue();
    error NotCrosslinked(uint256 sourceShard, uint256 blockNumber);
    error CrosslinkConflict(uint256 sourceShard, uint256 blockNumber, bytes32 posted, bytes32 stateRoot);
    error BadProof(uint256 sourceShard, uint256 nonce, uint256 blockNumber);
    error AlreadyClaimed(uint256 sourceShard, uint256 nonce);
    error PaymentFailed(address to, uint256 value);
    error MalformedWord(uint256 length);

    event CrossShardSent(
        uint256 indexed nonce, uint256 indexed destShard, address indexed to, uint256 value, bytes32 receiptHash
    );
    event Crosslinked(uint256 indexed sourceShard, uint256 indexed blockNumber, bytes32 stateRoot);
    event Claimed(uint256 indexed sourceShard, uint256 indexed nonce, address indexed to, uint256 value);

    /// @param shardId_ this shard; @param shardCount_ the number of shards. The value sent
    ///        is the reserve claims are paid from.
    constructor(uint256 shardId_, uint256 shardCount_) payable {
        if (shardId_ >= shardCount_) revert WrongShard(shardId_, shardCount_);
        system = msg.sender;
        shardId = shardId_;
        shardCount = shardCount_;
    }

    /// @notice The hash a receipt is stored and proven as.
    function receiptHash(uint256 sourceShard, uint256 destShard, uint256 nonce, address to, uint256 value)
        public
        pure
        returns (bytes32)
    {
        return keccak256(abi.encode(sourceShard, destShard, nonce, to, value));
    }

    /// @notice The storage slot of `receipts[nonce]` (Solidity's mapping layout).
    function receiptSlot(uint256 nonce) public pure returns (bytes32) {
        return keccak256(abi.encode(nonce, RECEIPTS_SLOT));
    }

    /// @notice Lock `msg.value` for `to` on shard `destShard`; returns the receipt's nonce.
    function send(uint256 destShard, address to) external payable returns (uint256 nonce) {
        if (destShard >= shardCount || destShard == shardId) revert WrongShard(destShard, shardId);
        if (msg.value == 0) revert ZeroValue();
        nonce = nextNonce++;
        bytes32 h = receiptHash(shardId, destShard, nonce, to, msg.value);
        receipts[nonce] = h;
        emit CrossShardSent(nonce, destShard, to, msg.value, h);
    }

    /// @notice The beacon finalized a crosslink of `sourceShard` at `blockNumber`, whose
    ///         state root is `stateRoot`. Posting the same root again is a no-op; another
    ///         root for a crosslinked block is refused (a finalized crosslink never changes).
    function postCrosslink(uint256 sourceShard, uint256 blockNumber, bytes32 stateRoot) external {
        if (msg.sender != system) revert NotSystem(msg.sender);
        if (sourceShard >= shardCount || sourceShard == shardId) revert WrongShard(sourceShard, shardId);
        bytes32 posted = crosslinkedRoot[sourceShard][blockNumber];
        if (posted == stateRoot) return;
        if (posted != bytes32(0)) revert CrosslinkConflict(sourceShard, blockNumber, posted, stateRoot);
        crosslinkedRoot[sourceShard][blockNumber] = stateRoot;
        emit Crosslinked(sourceShard, blockNumber, stateRoot);
    }

    /// @notice The value of this contract's storage `slot` in the state `stateRoot`, by the
    ///         account proof of this contract's address and the storage proof of the slot
    ///         (EIP-1186's `accountProof` and `storageProof[0].proof`). Reverts on a bad
    ///         proof (the trie library's errors).
    function provenStorage(bytes32 stateRoot, bytes32 slot, bytes[] calldata accountProof, bytes[] calldata storageProof)
        public
        view
        returns (uint256)
    {
        bytes memory account = SecureMerkleTrie.get(abi.encodePacked(address(this)), accountProof, stateRoot);
        // account = rlp([nonce, balance, storageRoot, codeHash])
        RLPReader.RLPItem[] memory fields = RLPReader.readList(account);
        bytes32 storageRoot = bytes32(RLPReader.readBytes(fields[2]));
        bytes memory word = RLPReader.readBytes(SecureMerkleTrie.get(abi.encodePacked(slot), storageProof, storageRoot));
        if (word.length > 32) revert MalformedWord(word.length);
        return uint256(bytes32(word)) >> (8 * (32 - word.length));
    }

    /// @notice Pay the receipt (sourceShard, destShard, nonce, to, value) sent on
    ///         `sourceShard`, proven in the crosslinked state of its block `blockNumber`.
    function claim(
        uint256 sourceShard,
        uint256 destShard,
        uint256 nonce,
        address to,
        uint256 value,
        uint256 blockNumber,
        bytes[] calldata accountProof,
        bytes[] calldata storageProof
    ) external {
        if (destShard != shardId) revert WrongShard(destShard, shardId);
        bytes32 root = crosslinkedRoot[sourceShard][blockNumber];
        if (root == bytes32(0)) revert NotCrosslinked(sourceShard, blockNumber);
        if (claimed[sourceShard][nonce]) revert AlreadyClaimed(sourceShard, nonce);
        uint256 expected = uint256(receiptHash(sourceShard, destShard, nonce, to, value));
        try this.provenStorage(root, receiptSlot(nonce), accountProof, storageProof) returns (uint256 stored) {
            if (stored != expected) revert BadProof(sourceShard, nonce, blockNumber);
        } catch {
            revert BadProof(sourceShard, nonce, blockNumber);
        }
        claimed[sourceShard][nonce] = true;
        (bool ok,) = to.call{value: value}("");
        if (!ok) revert PaymentFailed(to, value);
        emit Claimed(sourceShard, nonce, to, value);
    }
}

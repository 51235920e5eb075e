// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";
import {ReentrancyGuard} from "@openzeppelin/contracts/utils/ReentrancyGuard.sol";
import {Address} from "@openzeppelin/contracts/utils/Address.sol";

import {IOneStepProver} from "./IOneStepProver.sol";

/// @title OptimisticRollup
/// @notice The L1 side of layerlab's optimistic rollup: a bridge with an L1->L2 message
/// queue, a batch inbox and state-commitment chain posted by a bonded sequencer, forced
/// inclusion for censored users, and an interactive bisection game that proves a wrong
/// state root false on chain.
///
/// Protocol (the OP Stack's and Arbitrum's, in what they guarantee):
///
/// 1. **Deposits.** `depositETH` / `depositERC20` lock funds here and append a *deposit
///    step* to the message queue (`keccak256(step)` and the L1 block it was queued in).
///    Arbitrum's delayed inbox and the OP Stack's deposit transactions work so.
/// 2. **Forced inclusion.** A user the sequencer censors calls `forceInclude` with a signed
///    L2 transaction; it joins the forced queue (Arbitrum's `forceInclusion`).
/// 3. **Batches.** The sequencer posts `submitBatch(steps, stateRoot)`: the batch's steps
///    (L2 transactions, queued deposits, forced transactions) as calldata, and the state
///    root after them. The contract checks that the queued messages the batch carries are
///    the next ones of their queues, in order, byte for byte, and that after the batch no
///    queued message is older than `inclusionDelay` blocks: a sequencer that skips them
///    has every later batch refused, and then any bonded proposer may post batches (the
///    sequencer is *overdue*). It stores a Merkle root of the steps (so a single step can
///    later be shown with a short proof) but never executes them.
/// 4. **Challenge window.** A state root is final `challengeWindow` seconds after it was
///    posted if no dispute of it is open. Withdrawals are paid against final roots only,
///    with a sparse-Merkle proof of the withdrawal leaf (`finalizeWithdrawal`), once.
/// 5. **Fraud proof** (Arbitrum's interactive bisection, 2018 whitepaper section 4): a
///    bonded challenger disputes batch k's root. The game runs over the batch's steps:
///    the state root before step 0 (batch k-1's root) is agreed, the one after the last
///    step (batch k's root) is disputed. The defender (k's proposer) posts the root at the
///    midpoint; the challenger says whether it agrees; the disputed range halves each
///    round. Each move has a deadline (`moveTimeout`): a party that does not move loses.
///    At a single step, the one-step prover re-executes it from Merkle witnesses; if its
///    post-root is not the defender's claim the challenger wins. The loser's bond goes
///    half to the winner, half is burned. A proven-false batch and every batch built on
///    it are removed; the chain continues from the last valid root and the queues from
///    what the remaining batches consumed.
///
/// Steps are concatenated as `uint16 length || bytes`; the first byte of a step is its
/// kind. `DEPOSIT_KIND` and `FORCED_KIND` steps are checked against the queues here; any
/// other kind is an ordinary L2 transaction the prover understands.
contract OptimisticRollup is ReentrancyGuard {
    using SafeERC20 for IERC20;

    uint8 public constant DEPOSIT_KIND = 0xD0;
    uint8 public constant FORCED_KIND = 0xF0;
    uint256 public constant MAX_STEPS = 4096;
    uint256 public constant MAX_STEP_BYTES = 4096;

    struct Config {
        uint64 challengeWindow; // seconds
        uint64 moveTimeout; // seconds per move in a dispute
        uint64 inclusionDelay; // L1 blocks within which queued messages must be included
        uint128 proposerBond; // wei a proposer must have bonded to post
        uint128 challengerBond; // wei a challenger posts with a dispute
    }

    struct Batch {
        bytes32 stateRoot;
        bytes32 stepsRoot;
        uint64 stepCount;
        uint64 depositsUntil; // deposit queue index after this batch
        uint64 forcedUntil; // forced queue index after this batch
        uint64 submittedAt; // timestamp
        address proposer;
        uint32 openDisputes;
    }

    struct QueuedMessage {
        bytes32 stepHash;
        uint64 blockNumber;
    }

    enum Turn {
        None,
        Defender, // must bisect (post the midpoint root)
        Challenger, // must agree or disagree with the midpoint
        OneStep // the single disputed step must be proven
    }

    struct Dispute {
        uint64 batchIndex;
        uint64 lo; // step index: the root before step `lo` is agreed
        uint64 hi; // the root before step `hi` (after step hi-1) is disputed
        uint64 deadline;
        Turn turn;
        address challenger;
        address defender;
        bytes32 loRoot;
        bytes32 hiRoot;
        bytes32 midRoot;
        uint128 challengerBond;
    }

    Config public config;
    address public immutable sequencer;
    IOneStepProver public immutable prover;

    Batch[] internal _batches; // index 0 is the genesis root
    QueuedMessage[] public deposits;
    QueuedMessage[] public forced;
    Dispute[] public disputes;
    mapping(address => uint256) public bonds;
    mapping(address => uint256) public lastBatchOf; // highest batch index a proposer posted
    mapping(uint256 => bool) public withdrawn;
    mapping(address => uint256) public tokenIds; // L1 token -> L2 token id (ETH is 0)
    address[] public tokens; // L2 token id -> L1 token (index 0 is ETH, address(0))
    uint256 public burned;

    event DepositQueued(uint256 indexed queueIndex, address indexed from, address indexed to,
        address token, uint256 amount, bytes step);
    event ForcedQueued(uint256 indexed queueIndex, address indexed sender, bytes step);
    event BatchSubmitted(uint256 indexed batchIndex, address indexed proposer, bytes32 stateRoot,
        bytes32 stepsRoot, uint256 stepCount, uint256 depositsUntil, uint256 forcedUntil);
    event BatchesRemoved(uint256 indexed fromIndex, uint256 count);
    event DisputeOpened(uint256 indexed disputeId, uint256 indexed batchIndex, address challenger);
    event Bisected(uint256 indexed disputeId, uint64 mid, bytes32 midRoot);
    event Chosen(uint256 indexed disputeId, bool agreed, uint64 lo, uint64 hi);
    event DisputeResolved(uint256 indexed disputeId, address winner, address loser, string how);
    event WithdrawalFinalized(uint256 indexed withdrawalId, address indexed recipient, address token,
        uint256 amount);
    event Bonded(address indexed who, uint256 total);

    error NotSequencer(address caller);
    error InsufficientBond(address who, uint256 have, uint256 want);
    error ZeroAmount();
    error TooManySteps(uint256 count, uint256 max);
    error MalformedSteps(uint256 offset, string why);
    error QueueMismatch(string queue, uint256 index, bytes32 expected, bytes32 got);
    error QueueExhausted(string queue, uint256 index, uint256 length);
    error MessageOverdue(string queue, uint256 index, uint256 queuedAt, uint256 deadline);
    error UnknownBatch(uint256 batchIndex, uint256 count);
    error WindowClosed(uint256 batchIndex, uint256 endedAt);
    error NotFinal(uint256 batchIndex, uint256 finalAt, uint256 openDisputes);
    error WrongTurn(uint256 disputeId, Turn expected, Turn actual);
    error NotParty(uint256 disputeId, address caller);
    error DeadlineNotReached(uint256 disputeId, uint256 deadline);
    error DeadlinePassed(uint256 disputeId, uint256 deadline);
    error BadStepProof(uint256 disputeId, uint256 stepIndex);
    error AlreadyWithdrawn(uint256 withdrawalId);
    error BadWithdrawalProof(uint256 withdrawalId, uint256 batchIndex);
    error BondLocked(address who, uint256 lastBatch);
    error GenesisNotDisputable();

    constructor(address sequencer_, IOneStepProver prover_, bytes32 genesisRoot, Config memory config_) {
        sequencer = sequencer_;
        prover = prover_;
        config = config_;
        _batches.push(Batch(genesisRoot, bytes32(0), 0, 0, 0, uint64(block.timestamp), address(0), 0));
        tokens.push(address(0));
    }

    // ------------------------------------------------------------------ views

    function batchCount() external view returns (uint256) {
        return _batches.length;
    }

    function getBatch(uint256 index) external view returns (Batch memory) {
        if (index >= _batches.length) revert UnknownBatch(index, _batches.length);
        return _batches[index];
    }

    function depositCount() external view returns (uint256) {
        return deposits.length;
    }

    function forcedCount() external view returns (uint256) {
        return forced.length;
    }

    function disputeCount() external view returns (uint256) {
        return disputes.length;
    }

    function tokenCount() external view returns (uint256) {
        return tokens.length;
    }

    /// @notice When batch `index`'s root becomes final (ignoring open disputes).
    function finalAt(uint256 index) public view returns (uint256) {
        if (index >= _batches.length) revert UnknownBatch(index, _batches.length);
        if (index == 0) return _batches[0].submittedAt;
        return uint256(_batches[index].submittedAt) + config.challengeWindow;
    }

    function isFinal(uint256 index) public view returns (bool) {
        return index < _batches.length && block.timestamp >= finalAt(index)
            && _batches[index].openDisputes == 0;
    }

    /// @notice True when a queued message has waited longer than `inclusionDelay` blocks
    /// and is not in any batch: the sequencer is censoring, and anyone bonded may post.
    function isSequencerOverdue() public view returns (bool) {
        Batch storage tip = _batches[_batches.length - 1];
        return _isOverdue(deposits, tip.depositsUntil) || _isOverdue(forced, tip.forcedUntil);
    }

    /// @notice The Merkle root over the steps of a batch, as `submitBatch` computes it:
    /// leaves `keccak256(step)` in order, padded with zero leaves to a power of two,
    /// parents `keccak256(left || right)`.
    function computeStepsRoot(bytes calldata steps) external pure returns (bytes32 root, uint256 count) {
        bytes32[] memory leaves = _leaves(steps);
        return (_merkleRoot(leaves), leaves.length);
    }

    // ------------------------------------------------------------------ bridge

    function depositETH(address to) external payable returns (uint256 queueIndex) {
        if (msg.value == 0) revert ZeroAmount();
        return _queueDeposit(to, address(0), msg.value);
    }

    /// @notice Deposit an ERC-20 (approve this contract first). Tokens that charge a fee on
    /// transfer are credited what arrived.
    function depositERC20(address token, uint256 amount, address to) external nonReentrant returns (uint256) {
        if (amount == 0) revert ZeroAmount();
        uint256 before = IERC20(token).balanceOf(address(this));
        IERC20(token).safeTransferFrom(msg.sender, address(this), amount);
        uint256 arrived = IERC20(token).balanceOf(address(this)) - before;
        if (arrived == 0) revert ZeroAmount();
        return _queueDeposit(to, token, arrived);
    }

    function _queueDeposit(address to, address token, uint256 amount) internal returns (uint256 queueIndex) {
        uint256 tokenId = token == address(0) ? 0 : tokenIds[token];
        if (token != address(0) && tokenId == 0) {
            tokenId = tokens.length;
            tokens.push(token);
            tokenIds[token] = tokenId;
        }
        queueIndex = deposits.length;
        bytes memory step = abi.encodePacked(
            DEPOSIT_KIND, uint64(queueIndex), msg.sender, to, token, uint32(tokenId), amount
        );
        deposits.push(QueuedMessage(keccak256(step), uint64(block.number)));
        emit DepositQueued(queueIndex, msg.sender, to, token, amount, step);
    }

    /// @notice Queue a signed L2 transaction that the sequencer must include within
    /// `inclusionDelay` blocks (the step is `FORCED_KIND || tx`).
    function forceInclude(bytes calldata l2Tx) external returns (uint256 queueIndex) {
        if (l2Tx.length == 0 || l2Tx.length + 1 > MAX_STEP_BYTES) {
            revert MalformedSteps(0, "forced transaction empty or too long");
        }
        bytes memory step = abi.encodePacked(FORCED_KIND, l2Tx);
        queueIndex = forced.length;
        forced.push(QueuedMessage(keccak256(step), uint64(block.number)));
        emit ForcedQueued(queueIndex, msg.sender, step);
    }

    // ------------------------------------------------------------------ bonds

    function bond() external payable {
        bonds[msg.sender] += msg.value;
        emit Bonded(msg.sender, bonds[msg.sender]);
    }

    /// @notice Take a bond back once every batch its owner posted is final.
    function unbond(uint256 amount) external nonReentrant {
        uint256 last = lastBatchOf[msg.sender];
        if (last != 0 && last < _batches.length && _batches[last].proposer == msg.sender && !isFinal(last)) {
            revert BondLocked(msg.sender, last);
        }
        if (bonds[msg.sender] < amount) revert InsufficientBond(msg.sender, bonds[msg.sender], amount);
        bonds[msg.sender] -= amount;
        Address.sendValue(payable(msg.sender), amount);
    }

    // ------------------------------------------------------------------ batches

    /// @notice Post a batch: its steps and the state root after them.
    function submitBatch(bytes calldata steps, bytes32 stateRoot) external returns (uint256 batchIndex) {
        if (msg.sender != sequencer && !isSequencerOverdue()) revert NotSequencer(msg.sender);
        if (bonds[msg.sender] < config.proposerBond) {
            revert InsufficientBond(msg.sender, bonds[msg.sender], config.proposerBond);
        }
        Batch storage tip = _batches[_batches.length - 1];
        uint64 nextDeposit = tip.depositsUntil;
        uint64 nextForced = tip.forcedUntil;
        bytes32[] memory leaves = _leaves(steps);
        uint256 offset = 0;
        for (uint256 i = 0; i < leaves.length; ++i) {
            uint256 length = uint16(bytes2(steps[offset:offset + 2]));
            uint8 kind = uint8(steps[offset + 2]);
            if (kind == DEPOSIT_KIND) {
                _checkQueued(deposits, "deposit", nextDeposit, leaves[i]);
                ++nextDeposit;
            } else if (kind == FORCED_KIND) {
                _checkQueued(forced, "forced", nextForced, leaves[i]);
                ++nextForced;
            }
            offset += 2 + length;
        }
        _checkNotOverdue(deposits, "deposit", nextDeposit);
        _checkNotOverdue(forced, "forced", nextForced);
        batchIndex = _batches.length;
        bytes32 stepsRoot = _merkleRoot(leaves);
        _batches.push(Batch(stateRoot, stepsRoot, uint64(leaves.length), nextDeposit, nextForced,
            uint64(block.timestamp), msg.sender, 0));
        lastBatchOf[msg.sender] = batchIndex;
        emit BatchSubmitted(batchIndex, msg.sender, stateRoot, stepsRoot, leaves.length, nextDeposit, nextForced);
    }

    function _checkQueued(QueuedMessage[] storage queue, string memory name, uint256 index, bytes32 stepHash)
        internal
        view
    {
        if (index >= queue.length) revert QueueExhausted(name, index, queue.length);
        if (queue[index].stepHash != stepHash) revert QueueMismatch(name, index, queue[index].stepHash, stepHash);
    }

    function _checkNotOverdue(QueuedMessage[] storage queue, string memory name, uint256 next) internal view {
        if (_isOverdue(queue, next)) {
            uint256 queuedAt = queue[next].blockNumber;
            revert MessageOverdue(name, next, queuedAt, queuedAt + config.inclusionDelay);
        }
    }

    function _isOverdue(QueuedMessage[] storage queue, uint256 next) internal view returns (bool) {
        return next < queue.length && block.number > uint256(queue[next].blockNumber) + config.inclusionDelay;
    }

    function _leaves(bytes calldata steps) internal pure returns (bytes32[] memory leaves) {
        uint256 count = 0;
        uint256 offset = 0;
        while (offset < steps.length) {
            if (offset + 3 > steps.length) revert MalformedSteps(offset, "truncated length prefix");
            uint256 length = uint16(bytes2(steps[offset:offset + 2]));
            if (length == 0 || length > MAX_STEP_BYTES) revert MalformedSteps(offset, "bad step length");
            offset += 2 + length;
            if (offset > steps.length) revert MalformedSteps(offset, "step runs past the end");
            ++count;
        }
        if (count > MAX_STEPS) revert TooManySteps(count, MAX_STEPS);
        if (count == 0) revert MalformedSteps(0, "empty batch");
        leaves = new bytes32[](count);
        offset = 0;
        for (uint256 i = 0; i < count; ++i) {
            uint256 length = uint16(bytes2(steps[offset:offset + 2]));
            leaves[i] = keccak256(steps[offset + 2:offset + 2 + length]);
            offset += 2 + length;
        }
    }

    function _merkleRoot(bytes32[] memory leaves) internal pure returns (bytes32) {
        uint256 width = 1;
        while (width < leaves.length) width <<= 1;
        bytes32[] memory level = new bytes32[](width);
        for (uint256 i = 0; i < leaves.length; ++i) level[i] = leaves[i];
        while (width > 1) {
            width >>= 1;
            for (uint256 i = 0; i < width; ++i) {
                level[i] = keccak256(abi.encodePacked(level[2 * i], level[2 * i + 1]));
            }
        }
        return level[0];
    }

    // ------------------------------------------------------------------ blob batches

    /// @notice Blobs one blob batch may carry (Cancun's per-block maximum).
    uint256 public constant MAX_BATCH_BLOBS = 6;

    /// @dev Batch index -> `keccak256(abi.encode(batch))` of the blob batch stored there
    /// (so an entry left by a removed batch does not describe its successor) and the
    /// keccak256 of its blobs' versioned hashes, in order.
    struct BlobBatch {
        bytes32 batchId;
        bytes32 blobHashesHash;
    }

    mapping(uint256 => BlobBatch) internal _blobBatches;

    /// @dev Who deployed this rollup: the only one who may opt it into blob batches.
    address private immutable _deployer = msg.sender;

    /// @notice Whether this deployment accepts blob batches. Off unless its deployer
    /// turned it on before the first batch (`enableBlobBatches`); fixed from then on, so a
    /// depositor can read, before depositing, whether some roots will be undisputable.
    bool public blobBatchesEnabled;

    event BlobBatchSubmitted(uint256 indexed batchIndex, bytes32[] blobHashes);
    event BlobBatchesEnabled();

    error NoBlobs();
    error BlobBatchNotDisputable(uint256 batchIndex);
    error BlobBatchesDisabled();
    error NotDeployer(address caller);
    error BatchesAlreadyPosted(uint256 batchCount);

    /// @notice Opt this deployment into blob batches: deployer only, and only before any
    /// batch is posted. Because a blob batch cannot be disputed yet (see
    /// `submitBatchBlobs`), a rollup with blob batches trusts its sequencer for the roots
    /// of those batches: that must be a visible choice made at deployment, never one the
    /// sequencer makes later, so it is off by default.
    function enableBlobBatches() external {
        if (msg.sender != _deployer) revert NotDeployer(msg.sender);
        if (_batches.length != 1) revert BatchesAlreadyPosted(_batches.length);
        blobBatchesEnabled = true;
        emit BlobBatchesEnabled();
    }

    /// @notice Post a batch whose steps travel in this transaction's blobs (EIP-4844):
    /// the steps root and count the proposer claims, and the state root after them. The
    /// contract cannot read a blob, only its versioned hash (`blobhash(i)`), which it
    /// records as the batch's data commitment; verifiers fetch the blobs from a beacon
    /// node, check them against these hashes, decode and re-execute (the OP Stack's
    /// derivation works so). A blob batch carries no queued messages (deposits and forced
    /// transactions, whose bytes only calldata lets the contract check): it consumes none,
    /// and it is refused like any batch once one is overdue.
    /// A blob batch cannot be disputed yet: the one-step proof would have to show the
    /// disputed step's bytes against the blob with the point-evaluation precompile (0x0a),
    /// which this contract does not do, so `challenge` refuses it rather than play a game
    /// whose steps are not bound to the posted data.
    function submitBatchBlobs(bytes32 stepsRoot, uint64 stepCount, bytes32 stateRoot)
        external
        returns (uint256 batchIndex)
    {
        if (!blobBatchesEnabled) revert BlobBatchesDisabled();
        if (msg.sender != sequencer && !isSequencerOverdue()) revert NotSequencer(msg.sender);
        if (bonds[msg.sender] < config.proposerBond) {
            revert InsufficientBond(msg.sender, bonds[msg.sender], config.proposerBond);
        }
        if (stepCount == 0) revert MalformedSteps(0, "empty batch");
        if (stepCount > MAX_STEPS) revert TooManySteps(stepCount, MAX_STEPS);
        Batch storage tip = _batches[_batches.length - 1];
        uint64 nextDeposit = tip.depositsUntil;
        uint64 nextForced = tip.forcedUntil;
        _checkNotOverdue(deposits, "deposit", nextDeposit);
        _checkNotOverdue(forced, "forced", nextForced);
        // last check, so that an eth_call (which carries no blobs) that reverts with
        // NoBlobs has passed every other one
        uint256 count = 0;
        while (count < MAX_BATCH_BLOBS && blobhash(count) != bytes32(0)) ++count;
        if (count == 0) revert NoBlobs();
        bytes32[] memory hashes = new bytes32[](count);
        for (uint256 i = 0; i < count; ++i) hashes[i] = blobhash(i);
        batchIndex = _batches.length;
        Batch memory batch = Batch(stateRoot, stepsRoot, stepCount, nextDeposit, nextForced,
            uint64(block.timestamp), msg.sender, 0);
        _batches.push(batch);
        _blobBatches[batchIndex] = BlobBatch(keccak256(abi.encode(batch)), keccak256(abi.encodePacked(hashes)));
        lastBatchOf[msg.sender] = batchIndex;
        emit BatchSubmitted(batchIndex, msg.sender, stateRoot, stepsRoot, stepCount, nextDeposit, nextForced);
        emit BlobBatchSubmitted(batchIndex, hashes);
    }

    /// @notice Whether batch `index` was posted with `submitBatchBlobs`, and the keccak256
    /// of its blobs' versioned hashes (zero for a calldata batch).
    function blobBatch(uint256 index) public view returns (bool isBlob, bytes32 blobHashesHash) {
        if (index >= _batches.length) revert UnknownBatch(index, _batches.length);
        Batch memory batch = _batches[index];
        batch.openDisputes = 0;
        BlobBatch storage b = _blobBatches[index];
        isBlob = b.batchId != bytes32(0) && b.batchId == keccak256(abi.encode(batch));
        blobHashesHash = isBlob ? b.blobHashesHash : bytes32(0);
    }

    // ------------------------------------------------------------------ disputes

    /// @notice Dispute batch `batchIndex`'s state root within its challenge window.
    function challenge(uint256 batchIndex) external payable returns (uint256 disputeId) {
        if (batchIndex == 0) revert GenesisNotDisputable();
        if (batchIndex >= _batches.length) revert UnknownBatch(batchIndex, _batches.length);
        Batch storage batch = _batches[batchIndex];
        if (block.timestamp >= finalAt(batchIndex)) revert WindowClosed(batchIndex, finalAt(batchIndex));
        (bool isBlob,) = blobBatch(batchIndex);
        if (isBlob) revert BlobBatchNotDisputable(batchIndex);
        if (msg.value < config.challengerBond) revert InsufficientBond(msg.sender, msg.value, config.challengerBond);
        disputeId = disputes.length;
        Turn turn = batch.stepCount == 1 ? Turn.OneStep : Turn.Defender;
        disputes.push(Dispute({
            batchIndex: uint64(batchIndex),
            lo: 0,
            hi: batch.stepCount,
            deadline: uint64(block.timestamp) + config.moveTimeout,
            turn: turn,
            challenger: msg.sender,
            defender: batch.proposer,
            loRoot: _batches[batchIndex - 1].stateRoot,
            hiRoot: batch.stateRoot,
            midRoot: bytes32(0),
            challengerBond: uint128(msg.value)
        }));
        batch.openDisputes += 1;
        emit DisputeOpened(disputeId, batchIndex, msg.sender);
    }

    /// @notice The defender's move: the state root before step `mid` = (lo + hi) / 2.
    function bisect(uint256 disputeId, bytes32 midRoot) external {
        Dispute storage d = _move(disputeId, Turn.Defender, disputes[disputeId].defender);
        uint64 mid = (d.lo + d.hi) / 2;
        d.midRoot = midRoot;
        d.turn = Turn.Challenger;
        d.deadline = uint64(block.timestamp) + config.moveTimeout;
        emit Bisected(disputeId, mid, midRoot);
    }

    /// @notice The challenger's move: agree with the midpoint root (the fault is after it)
    /// or not (the fault is before it).
    function choose(uint256 disputeId, bool agree) external {
        Dispute storage d = _move(disputeId, Turn.Challenger, disputes[disputeId].challenger);
        uint64 mid = (d.lo + d.hi) / 2;
        if (agree) {
            d.lo = mid;
            d.loRoot = d.midRoot;
        } else {
            d.hi = mid;
            d.hiRoot = d.midRoot;
        }
        d.turn = d.hi - d.lo == 1 ? Turn.OneStep : Turn.Defender;
        d.deadline = uint64(block.timestamp) + config.moveTimeout;
        emit Chosen(disputeId, agree, d.lo, d.hi);
    }

    /// @notice Settle the single disputed step: re-execute step `lo` of the batch on chain
    /// from the agreed root and Merkle witnesses. Either party may call it.
    /// @param step the step's bytes (without its length prefix)
    /// @param stepProof sibling hashes of leaf `lo` in the batch's steps tree, bottom up
    /// @param witness what the one-step prover needs (leaf values and their proofs)
    function proveStep(uint256 disputeId, bytes calldata step, bytes32[] calldata stepProof,
        bytes calldata witness) external nonReentrant {
        Dispute storage d = disputes[disputeId];
        if (d.turn != Turn.OneStep) revert WrongTurn(disputeId, Turn.OneStep, d.turn);
        if (block.timestamp > d.deadline) revert DeadlinePassed(disputeId, d.deadline);
        Batch storage batch = _batches[d.batchIndex];
        if (!_isStep(batch.stepsRoot, batch.stepCount, d.lo, keccak256(step), stepProof)) {
            revert BadStepProof(disputeId, d.lo);
        }
        bytes32 post = prover.executeStep(d.loRoot, step, witness);
        if (post == d.hiRoot) {
            _resolve(disputeId, d.defender, d.challenger, "one-step proof: the claimed root is right");
        } else {
            _resolve(disputeId, d.challenger, d.defender, "one-step proof: the claimed root is wrong");
        }
    }

    /// @notice The party whose turn it was did not move before the deadline: it loses.
    /// In the one-step phase the challenger (who says the root is wrong) must prove it.
    function timeout(uint256 disputeId) external nonReentrant {
        Dispute storage d = disputes[disputeId];
        if (d.turn == Turn.None) revert WrongTurn(disputeId, Turn.Defender, d.turn);
        if (block.timestamp <= d.deadline) revert DeadlineNotReached(disputeId, d.deadline);
        if (d.turn == Turn.Defender) {
            _resolve(disputeId, d.challenger, d.defender, "defender timed out");
        } else {
            _resolve(disputeId, d.defender, d.challenger, "challenger timed out");
        }
    }

    function _move(uint256 disputeId, Turn turn, address party) internal view returns (Dispute storage d) {
        d = disputes[disputeId];
        if (d.turn != turn) revert WrongTurn(disputeId, turn, d.turn);
        if (msg.sender != party) revert NotParty(disputeId, msg.sender);
        if (block.timestamp > d.deadline) revert DeadlinePassed(disputeId, d.deadline);
    }

    function _isStep(bytes32 root, uint256 count, uint256 index, bytes32 leaf, bytes32[] calldata proof)
        internal
        pure
        returns (bool)
    {
        uint256 width = 1;
        uint256 depth = 0;
        while (width < count) {
            width <<= 1;
            ++depth;
        }
        if (proof.length != depth || index >= count) return false;
        bytes32 node = leaf;
        for (uint256 i = 0; i < depth; ++i) {
            node = (index >> i) & 1 == 0
                ? keccak256(abi.encodePacked(node, proof[i]))
                : keccak256(abi.encodePacked(proof[i], node));
        }
        return node == root;
    }

    function _resolve(uint256 disputeId, address winner, address loser, string memory how) internal {
        Dispute storage d = disputes[disputeId];
        d.turn = Turn.None;
        uint256 batchIndex = d.batchIndex;
        if (winner == d.challenger) {
            uint256 slashed = bonds[loser];
            bonds[loser] = 0;
            uint256 reward = slashed / 2;
            burned += slashed - reward;
            _removeFrom(batchIndex);
            Address.sendValue(payable(winner), uint256(d.challengerBond) + reward);
        } else {
            _batches[batchIndex].openDisputes -= 1;
            uint256 reward = uint256(d.challengerBond) / 2;
            burned += uint256(d.challengerBond) - reward;
            bonds[winner] += reward;
        }
        emit DisputeResolved(disputeId, winner, loser, how);
    }

    /// @dev Remove batch `index` and every later one; cancel their other open disputes
    /// (challengers get their bonds back as withdrawable bond; the dispute being resolved
    /// is already closed and its winner paid directly). The queues resume after what batch index-1
    /// consumed, since the queue positions live in the batches.
    function _removeFrom(uint256 index) internal {
        uint256 count = _batches.length - index;
        for (uint256 id = 0; id < disputes.length; ++id) {
            Dispute storage other = disputes[id];
            if (other.turn != Turn.None && other.batchIndex >= index) {
                other.turn = Turn.None;
                uint256 refund = other.challengerBond;
                other.challengerBond = 0;
                if (refund > 0) bonds[other.challenger] += refund;
            }
        }
        while (_batches.length > index) _batches.pop();
        emit BatchesRemoved(index, count);
    }

    // ------------------------------------------------------------------ withdrawals

    /// @notice Pay a withdrawal made on L2, proven against a final state root.
    /// @param withdrawalId the withdrawal's sequence number on L2 (each is paid once)
    /// @param proof a sparse-Merkle inclusion proof of the withdrawal leaf in batch
    /// `batchIndex`'s state root, checked by the one-step prover's state layout
    function finalizeWithdrawal(uint256 batchIndex, uint256 withdrawalId, address recipient, address token,
        uint256 amount, bytes calldata proof) external nonReentrant {
        if (!isFinal(batchIndex)) {
            revert NotFinal(batchIndex, finalAt(batchIndex), _batches[batchIndex].openDisputes);
        }
        if (withdrawn[withdrawalId]) revert AlreadyWithdrawn(withdrawalId);
        if (!IWithdrawalVerifier(address(prover)).isWithdrawal(
            _batches[batchIndex].stateRoot, withdrawalId, recipient, token, amount, proof)) {
            revert BadWithdrawalProof(withdrawalId, batchIndex);
        }
        withdrawn[withdrawalId] = true;
        if (token == address(0)) {
            Address.sendValue(payable(recipient), amount);
        } else {
            IERC20(token).safeTransfer(recipient, amount);
        }
        emit WithdrawalFinalized(withdrawalId, recipient, token, amount);
    }
}

/// @notice The part of the one-step prover that knows the state layout well enough to
/// check a withdrawal leaf against a state root.
interface IWithdrawalVerifier {
    function isWithdrawal(bytes32 stateRoot, uint256 withdrawalId, address recipient, address token,
        uint256 amount, bytes calldata proof) external view returns (bool);
}

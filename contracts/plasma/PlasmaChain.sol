// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";
import {ReentrancyGuard} from "@openzeppelin/contracts/utils/ReentrancyGuard.sol";
import {ECDSA} from "@openzeppelin/contracts/utils/cryptography/ECDSA.sol";
import {EIP712} from "@openzeppelin/contracts/utils/cryptography/EIP712.sol";
import {Heap} from "@openzeppelin/contracts/utils/structs/Heap.sol";

import {SparseMerkle} from "../lib/SparseMerkle.sol";

/// @title PlasmaChain
/// @notice The L1 contract of layerlab's Plasma child chain: Plasma MVP (Buterin, "Minimal
/// Viable Plasma", ethresear.ch, January 2018) with the in-flight exits of More Viable
/// Plasma (Fichter et al., "More Viable Plasma", ethresear.ch, 2018), in the style of the
/// OMG Network's `plasma-contracts` (PlasmaFramework, PaymentExitGame, ExitableTimestamp,
/// PriorityQueue). The transaction format, signatures, positions and block trees are those
/// of `src/layerlab/l2/plasma/types.py`.
///
/// 1. **Blocks.** The operator commits each child block's root (`submitBlock`): a keccak
///    sparse Merkle tree keyed by transaction index. Child blocks are 1000, 2000, ...; each
///    deposit (`deposit`, `depositToken`) is its own block between two child blocks, whose
///    root this contract computes from the one deposit transaction.
/// 2. **Standard exits** (MVP). The owner of an output included in a committed block exits
///    it with a bond. Anyone holding a transaction the owner signed that spends the output
///    challenges the exit and takes the bond. Unchallenged exits are paid in priority
///    order: by `exitableAt` (OMG's ExitableTimestamp: a child block's outputs wait at least
///    `2 * minExitPeriod` after the block was committed and `minExitPeriod` after the exit
///    started), then by position, so an honest output that predates an invalid block is
///    paid before any output the invalid block made up, however late the honest exit starts
///    within the period.
/// 3. **In-flight exits** (MoreVP, reduced). A transaction whose block was withheld (or not
///    yet made) is exited as a whole: the starter shows the inclusion of each input and the
///    input owners' signatures. Its input and output owners "piggyback" the outputs they
///    want paid. The transaction is *canonical* unless someone shows a competitor (another
///    transaction its input's owner signed spending the same input) that is older; a
///    response with the transaction's own inclusion, older than the competitor, restores it.
///    When processed, a canonical transaction pays its piggybacked outputs; a non-canonical
///    one pays its piggybacked inputs back. Piggybacked inputs spent elsewhere, and
///    piggybacked outputs spent after the transaction was included, are challenged away.
/// 4. **One output, one payment.** An output is identified by `keccak256(abi.encode(txHash,
///    outputIndex))` whichever game exits it; the first exit processed pays and marks it
///    exited, any later exit of it is skipped.
/// @dev Payments never revert the queue: a payment that fails (a reverting recipient, or an
/// empty contract when an invalid block's exits come last) emits its event with
/// `paid = false` and the exit counts as processed, as OMG's vaults do.
contract PlasmaChain is EIP712, ReentrancyGuard {
    using SafeERC20 for IERC20;
    using Heap for Heap.Uint256Heap;

    uint256 public constant CHILD_BLOCK_INTERVAL = 1000;
    uint256 public constant BLOCK_OFFSET = 1_000_000_000;
    uint256 public constant TX_OFFSET = 10_000;
    uint256 public constant MAX_INPUTS = 4;
    uint256 public constant MAX_OUTPUTS = 4;
    uint256 public constant NOT_INCLUDED = type(uint256).max;
    /// @notice Gas forwarded with an ETH payment (a recipient cannot eat the queue's gas).
    uint256 public constant PAYMENT_GAS = 50_000;

    bytes32 public constant OUTPUT_TYPEHASH = keccak256("Output(address owner,address token,uint256 amount)");
    bytes32 public constant TRANSACTION_TYPEHASH = keccak256(
        "Transaction(uint256[] inputs,Output[] outputs,bytes32 metadata)Output(address owner,address token,uint256 amount)"
    );

    struct Config {
        uint64 minExitPeriod; // seconds
        uint128 exitBond; // wei, standard exit
        uint128 piggybackBond; // wei, each piggyback
        uint128 inFlightExitBond; // wei, in-flight exit
    }

    struct Output {
        address owner;
        address token;
        uint256 amount;
    }

    struct Transaction {
        uint256[] inputs;
        Output[] outputs;
        bytes32 metadata;
    }

    struct ChildBlock {
        bytes32 root;
        uint256 timestamp;
    }

    /// @dev Four slots; the exit id is the output's position, the bond is `config.exitBond`.
    struct StandardExit {
        address owner;
        uint64 exitableAt;
        address token;
        uint64 queueId;
        uint256 amount;
        bytes32 outputId;
    }

    struct IfeInput {
        uint256 utxoPos;
        bytes32 outputId;
        address owner;
        uint256 amount;
    }

    struct IfeOutput {
        address owner;
        uint256 amount;
    }

    struct InFlightExit {
        bytes32 txHash;
        address starter;
        uint64 exitableAt;
        address token;
        uint64 queueId;
        uint8 inputCount;
        uint8 outputCount;
        uint8 piggybackedInputs; // bit i: input i is piggybacked
        uint8 piggybackedOutputs; // bit i: output i is piggybacked
        address challenger; // the last successful canonicity challenger
        bool canonical;
        bool finalized;
        uint256 competitorPos; // 0: no competitor shown yet
        IfeInput[4] inputs;
        IfeOutput[4] outputs;
    }

    Config public config;
    address public immutable operator;
    uint256 public nextChildBlock = CHILD_BLOCK_INTERVAL;
    uint64 public nextDepositOffset = 1;
    uint64 public exitCounter; // shares nextDepositOffset's slot

    mapping(uint256 => ChildBlock) public blocks;
    mapping(uint256 => StandardExit) internal _exits; // exitId (= utxoPos) -> exit
    mapping(uint160 => InFlightExit) internal _inFlightExits; // uint160(txHash) -> IFE
    mapping(bytes32 => bool) public exited; // output id -> paid (or processed)
    mapping(bytes32 => uint256) public openExitOf; // output id -> open standard exit id
    mapping(address => Heap.Uint256Heap) internal _queues; // token -> priorities
    mapping(uint64 => uint160) public inFlightQueueIds; // exit counter -> in-flight exit id

    event BlockSubmitted(uint256 blknum, bytes32 root);
    event DepositCreated(uint256 blknum, address owner, address token, uint256 amount);
    event ExitStarted(uint256 exitId, address owner, uint256 utxoPos, address token, uint256 amount);
    event ExitChallenged(uint256 exitId, address challenger);
    event ExitFinalized(uint256 exitId, address owner, address token, uint256 amount, bool paid);
    event ExitSkipped(uint256 exitId, bytes32 outputId);
    event InFlightExitStarted(uint256 exitId, address starter, bytes32 txHash, uint256 priorityPos);
    event InFlightExitPiggybacked(uint256 exitId, address owner, uint8 index, bool isOutput);
    event InFlightExitChallenged(uint256 exitId, address challenger, uint256 competitorPos);
    event InFlightExitChallengeResponded(uint256 exitId, address responder, uint256 txPos);
    event InFlightExitPiggybackChallenged(uint256 exitId, address challenger, uint8 index, bool isOutput);
    event InFlightExitPaid(uint256 exitId, address owner, uint8 index, bool isOutput, uint256 amount, bool paid);
    event InFlightExitFinalized(uint256 exitId, bool canonical);

    error NotOperator(address sender);
    error WrongBlockNumber(uint256 blknum, uint256 expected);
    error WrongBond(uint256 sent, uint256 required);
    error TooManyDeposits(uint256 nextChildBlock);
    error ZeroDeposit();
    error UnknownBlock(uint256 blknum);
    error NotIncluded(uint256 txPos, bytes32 txHash);
    error BadPosition(uint256 utxoPos);
    error NoSuchOutput(uint256 utxoPos);
    error NotOwner(address sender, address owner);
    error OutputAlreadyExited(bytes32 outputId);
    error ExitExists(uint256 exitId);
    error NoSuchExit(uint256 exitId);
    error BadSignature(address signer, address owner);
    error NotSpendingExitedOutput(uint256 spent, uint256 exited);
    error MalformedTransaction();
    error NonCanonicalEncoding();
    error ValueNotConserved(uint256 inputs, uint256 outputs);
    error MixedTokens(address expected, address found);
    error NoInputs();
    error WrongInputCount(uint256 inputs, uint256 proofsOrSignatures);
    error InFlightExitExists(uint256 exitId);
    error NoSuchInFlightExit(uint256 exitId);
    error InFlightExitFinished(uint256 exitId);
    error PiggybackPeriodOver(uint256 exitId, uint64 exitableAt);
    error CanonicityChallengePeriodOver(uint256 exitId, uint64 exitableAt);
    error NotAToken(address token);
    error AlreadyPiggybacked(uint256 exitId, uint8 index, bool isOutput);
    error NotPiggybacked(uint256 exitId, uint8 index, bool isOutput);
    error BadIndex(uint8 index);
    error SameTransaction();
    error CompetitorNotOlder(uint256 competitorPos, uint256 recorded);
    error ResponseNotOlder(uint256 txPos, uint256 competitorPos);
    error TokenTransferFailed(address token);

    /// @param operator_ the only address that commits child blocks
    constructor(address operator_, Config memory config_) EIP712("layerlab-plasma", "1") {
        operator = operator_;
        config = config_;
    }

    // ------------------------------------------------------------------ blocks and deposits

    /// @notice Commit child block `blknum`, which must be `nextChildBlock`, with its
    /// transaction tree's `root`. Naming the number makes a resubmission idempotent: an
    /// operator that restarts while its first `submitBlock` is still in the mempool cannot
    /// commit the same block's root again under the next number (the retry reverts).
    function submitBlock(uint256 blknum, bytes32 root) external {
        if (msg.sender != operator) revert NotOperator(msg.sender);
        if (blknum != nextChildBlock) revert WrongBlockNumber(blknum, nextChildBlock);
        blocks[blknum] = ChildBlock(root, block.timestamp);
        nextChildBlock = blknum + CHILD_BLOCK_INTERVAL;
        nextDepositOffset = 1;
        emit BlockSubmitted(blknum, root);
    }

    /// @notice Deposit ETH: a deposit block holding one output of `msg.value` to the sender.
    function deposit() external payable nonReentrant returns (uint256) {
        return _deposit(msg.sender, address(0), msg.value);
    }

    /// @notice Deposit `amount` of an ERC-20 (approved to this contract first).
    function depositToken(address token, uint256 amount) external nonReentrant returns (uint256) {
        if (token.code.length == 0) revert NotAToken(token);
        uint256 before = IERC20(token).balanceOf(address(this));
        IERC20(token).safeTransferFrom(msg.sender, address(this), amount);
        // a fee-on-transfer token credits what arrived
        return _deposit(msg.sender, token, IERC20(token).balanceOf(address(this)) - before);
    }

    function _deposit(address owner, address token, uint256 amount) internal returns (uint256 blknum) {
        if (amount == 0) revert ZeroDeposit();
        uint256 offset = nextDepositOffset;
        if (offset >= CHILD_BLOCK_INTERVAL) revert TooManyDeposits(nextChildBlock);
        blknum = nextChildBlock - CHILD_BLOCK_INTERVAL + offset;
        nextDepositOffset = uint64(offset + 1);
        Transaction memory t;
        t.inputs = new uint256[](0);
        t.outputs = new Output[](1);
        t.outputs[0] = Output(owner, token, amount);
        t.metadata = bytes32(blknum);
        bytes32 root = bytes32(SparseMerkle.hashLeaf(0, uint256(keccak256(abi.encode(t)))));
        blocks[blknum] = ChildBlock(root, block.timestamp);
        emit DepositCreated(blknum, owner, token, amount);
    }

    // ------------------------------------------------------------------ transactions

    /// @notice A transaction's EIP-712 digest under this contract's domain.
    function txDigest(bytes calldata txBytes) external view returns (bytes32) {
        return _digest(_decode(txBytes));
    }

    /// @notice The address `sig` over `txBytes`'s digest recovers to (zero when none).
    function txSigner(bytes calldata txBytes, bytes calldata sig) external view returns (address) {
        return _signer(_digest(_decode(txBytes)), sig);
    }

    /// @notice The output id of `txHash`'s output `index` (shared by both exit games).
    function outputId(bytes32 txHash, uint256 index) public pure returns (bytes32) {
        return keccak256(abi.encode(txHash, index));
    }

    function _decode(bytes calldata txBytes) internal pure returns (Transaction memory t) {
        t = abi.decode(txBytes, (Transaction));
        // one transaction, one byte string: otherwise a re-encoding would exit its outputs
        // again under other output ids
        if (keccak256(abi.encode(t)) != keccak256(txBytes)) revert NonCanonicalEncoding();
        uint256 n = t.outputs.length;
        if (t.inputs.length > MAX_INPUTS || n == 0 || n > MAX_OUTPUTS) revert MalformedTransaction();
        address token = t.outputs[0].token;
        for (uint256 i = 0; i < n; ++i) {
            if (t.outputs[i].amount == 0) revert MalformedTransaction();
            if (t.outputs[i].token != token) revert MixedTokens(token, t.outputs[i].token);
        }
        for (uint256 i = 0; i < t.inputs.length; ++i) {
            _checkPosition(t.inputs[i]);
            for (uint256 j = 0; j < i; ++j) {
                if (t.inputs[i] == t.inputs[j]) revert MalformedTransaction();
            }
        }
    }

    function _digest(Transaction memory t) internal view returns (bytes32) {
        uint256 n = t.outputs.length;
        bytes32[] memory hashes = new bytes32[](n);
        for (uint256 i = 0; i < n; ++i) {
            Output memory o = t.outputs[i];
            hashes[i] = keccak256(abi.encode(OUTPUT_TYPEHASH, o.owner, o.token, o.amount));
        }
        bytes32 structHash = keccak256(abi.encode(
            TRANSACTION_TYPEHASH, keccak256(abi.encodePacked(t.inputs)), keccak256(abi.encodePacked(hashes)),
            t.metadata));
        return _hashTypedDataV4(structHash);
    }

    function _signer(bytes32 digest, bytes calldata sig) internal pure returns (address signer) {
        (signer,,) = ECDSA.tryRecover(digest, sig);
    }

    function _checkSigned(bytes32 digest, bytes calldata sig, address owner) internal pure {
        address signer = _signer(digest, sig);
        if (signer == address(0) || signer != owner) revert BadSignature(signer, owner);
    }

    function _checkPosition(uint256 utxoPos) internal pure {
        if (
            utxoPos >= 1 << 128 || utxoPos / BLOCK_OFFSET == 0 || (utxoPos % BLOCK_OFFSET) / TX_OFFSET >= TX_OFFSET
                || utxoPos % TX_OFFSET >= MAX_OUTPUTS
        ) {
            revert BadPosition(utxoPos);
        }
    }

    /// @dev Reverts unless `txHash` is at `txPos`'s (blknum, txindex) in a committed block;
    /// returns that block's timestamp.
    function _checkIncluded(uint256 txPos, bytes32 txHash, uint256[] calldata proof)
        internal
        view
        returns (uint256)
    {
        _checkPosition(txPos);
        uint256 blknum = txPos / BLOCK_OFFSET;
        ChildBlock storage b = blocks[blknum];
        if (b.timestamp == 0) revert UnknownBlock(blknum);
        uint256 txindex = (txPos % BLOCK_OFFSET) / TX_OFFSET;
        if (!SparseMerkle.verifyInclusion(uint256(b.root), txindex, uint256(txHash), proof)) {
            revert NotIncluded(txPos, txHash);
        }
        return b.timestamp;
    }

    /// @notice OMG's ExitableTimestamp: outputs of a child block wait 2 periods after the
    /// block and 1 after the exit; deposits 1 after the exit.
    function _exitableAt(uint256 utxoPos, uint256 blockTimestamp) internal view returns (uint64) {
        uint256 period = config.minExitPeriod;
        uint256 late = block.timestamp + period;
        if ((utxoPos / BLOCK_OFFSET) % CHILD_BLOCK_INTERVAL != 0) return uint64(late);
        uint256 early = blockTimestamp + 2 * period;
        return uint64(early > late ? early : late);
    }

    /// @dev A standard exit's id is the position in its priority; an in-flight exit's is
    /// kept by its counter.
    function _enqueue(address token, uint64 exitableAt, uint256 pos, uint160 inFlightExitId)
        internal
        returns (uint64 queueId)
    {
        queueId = ++exitCounter;
        if (inFlightExitId != 0) inFlightQueueIds[queueId] = inFlightExitId;
        _queues[token].insert((uint256(exitableAt) << 192) | (pos << 64) | queueId);
    }

    // ------------------------------------------------------------------ standard exits

    /// @notice Exit the output at `utxoPos`, created by `txBytes`, included by `inclusionProof`.
    /// @return exitId the exit's id, which is `utxoPos`
    function startStandardExit(uint256 utxoPos, bytes calldata txBytes, uint256[] calldata inclusionProof)
        external
        payable
        nonReentrant
        returns (uint256 exitId)
    {
        if (msg.value != config.exitBond) revert WrongBond(msg.value, config.exitBond);
        (Output memory o, bytes32 oid, uint256 blockTimestamp) = _exitedOutput(utxoPos, txBytes, inclusionProof);
        if (o.owner != msg.sender) revert NotOwner(msg.sender, o.owner);
        if (exited[oid]) revert OutputAlreadyExited(oid);
        if (openExitOf[oid] != 0) revert ExitExists(openExitOf[oid]);
        exitId = utxoPos;
        uint64 exitableAt = _exitableAt(utxoPos, blockTimestamp);
        _exits[exitId] = StandardExit(o.owner, exitableAt, o.token, _enqueue(o.token, exitableAt, utxoPos, 0),
            o.amount, oid);
        openExitOf[oid] = exitId;
        emit ExitStarted(exitId, o.owner, utxoPos, o.token, o.amount);
    }

    /// @dev The output at `utxoPos` of `txBytes`, included by `proof`; its id and block time.
    function _exitedOutput(uint256 utxoPos, bytes calldata txBytes, uint256[] calldata proof)
        internal
        view
        returns (Output memory, bytes32, uint256)
    {
        Transaction memory t = _decode(txBytes);
        bytes32 txHash = keccak256(txBytes);
        uint256 oindex = utxoPos % TX_OFFSET;
        uint256 blockTimestamp = _checkIncluded(utxoPos - oindex, txHash, proof);
        if (oindex >= t.outputs.length) revert NoSuchOutput(utxoPos);
        return (t.outputs[oindex], outputId(txHash, oindex), blockTimestamp);
    }

    /// @notice Show that the exit's owner signed `spendingTxBytes`, which spends the exited
    /// output at `inputIndex`: the output is spent (the spending transaction need not be
    /// included anywhere), the exit is deleted and its bond is the challenger's.
    function challengeStandardExit(uint256 exitId, bytes calldata spendingTxBytes, uint256 inputIndex,
        bytes calldata signature) external nonReentrant {
        StandardExit memory e = _exits[exitId];
        if (e.owner == address(0)) revert NoSuchExit(exitId);
        Transaction memory s = _decode(spendingTxBytes);
        if (inputIndex >= s.inputs.length || s.inputs[inputIndex] != exitId) {
            revert NotSpendingExitedOutput(inputIndex < s.inputs.length ? s.inputs[inputIndex] : 0, exitId);
        }
        _checkSigned(_digest(s), signature, e.owner);
        delete _exits[exitId];
        delete openExitOf[e.outputId];
        emit ExitChallenged(exitId, msg.sender);
        _pay(msg.sender, address(0), config.exitBond);
    }

    /// @notice Pay up to `maxCount` exits of `token` whose time has come, oldest priority
    /// first. Anyone may call it.
    function processExits(address token, uint256 maxCount) external nonReentrant returns (uint256 processed) {
        Heap.Uint256Heap storage queue = _queues[token];
        while (processed < maxCount && queue.length() > 0) {
            uint256 top = queue.peek();
            if (top >> 192 > block.timestamp) break;
            queue.pop();
            ++processed;
            uint64 queueId = uint64(top);
            uint160 inFlightExitId = inFlightQueueIds[queueId];
            if (inFlightExitId != 0) {
                delete inFlightQueueIds[queueId];
                _processInFlightExit(inFlightExitId);
            } else {
                _processStandardExit(uint128(top >> 64), queueId);
            }
        }
    }

    function _processStandardExit(uint256 exitId, uint64 queueId) internal {
        StandardExit memory e = _exits[exitId];
        if (e.owner == address(0) || e.queueId != queueId) return; // challenged
        delete _exits[exitId];
        delete openExitOf[e.outputId];
        if (exited[e.outputId]) {
            emit ExitSkipped(exitId, e.outputId);
            _pay(e.owner, address(0), config.exitBond);
            return;
        }
        exited[e.outputId] = true;
        bool paid;
        if (e.token == address(0)) {
            paid = _pay(e.owner, address(0), e.amount + config.exitBond);
        } else {
            paid = _pay(e.owner, e.token, e.amount);
            _pay(e.owner, address(0), config.exitBond);
        }
        emit ExitFinalized(exitId, e.owner, e.token, e.amount, paid);
    }

    /// @dev ETH with bounded gas, ERC-20 with SafeERC20's try; never reverts.
    function _pay(address to, address token, uint256 amount) internal returns (bool ok) {
        if (amount == 0) return true;
        if (token == address(0)) {
            if (amount > address(this).balance) return false;
            uint256 gasLimit = PAYMENT_GAS;
            assembly ("memory-safe") {
                ok := call(gasLimit, to, amount, 0, 0, 0, 0)
            }
            return ok;
        }
        return IERC20(token).trySafeTransfer(to, amount);
    }

    // ------------------------------------------------------------------ in-flight exits

    /// @notice Exit `txBytes` in flight: `inputTxs[i]` created input i and is included at
    /// its position (`inputProofs[i]`), `signatures[i]` is input i's owner's over txBytes.
    /// @return exitId `uint160(uint256(keccak256(txBytes)))`
    function startInFlightExit(bytes calldata txBytes, bytes[] calldata inputTxs,
        uint256[][] calldata inputProofs, bytes[] calldata signatures)
        external
        payable
        nonReentrant
        returns (uint256 exitId)
    {
        if (msg.value != config.inFlightExitBond) revert WrongBond(msg.value, config.inFlightExitBond);
        Transaction memory t = _decode(txBytes);
        uint256 n = t.inputs.length;
        if (n == 0) revert NoInputs();
        if (inputTxs.length != n || inputProofs.length != n) revert WrongInputCount(n, inputTxs.length);
        if (signatures.length != n) revert WrongInputCount(n, signatures.length);
        bytes32 txHash = keccak256(txBytes);
        exitId = uint160(uint256(txHash));
        InFlightExit storage ife = _inFlightExits[uint160(exitId)];
        if (ife.starter != address(0)) revert InFlightExitExists(exitId);
        ife.txHash = txHash;
        ife.starter = msg.sender;
        ife.token = t.outputs[0].token;
        ife.canonical = true;
        ife.inputCount = uint8(n);
        (uint256 youngest, uint256 youngestTimestamp) = _recordInputs(ife, t, inputTxs, inputProofs, signatures);
        ife.exitableAt = _exitableAt(youngest, youngestTimestamp);
        ife.queueId = _enqueue(ife.token, ife.exitableAt, youngest, uint160(exitId));
        emit InFlightExitStarted(exitId, msg.sender, txHash, youngest);
    }

    /// @dev What the input checks of one in-flight exit carry along.
    struct InputScan {
        Transaction t;
        bytes32 digest;
        uint256 inSum;
        uint256 youngest;
        uint256 youngestTimestamp;
    }

    /// @dev Check and store each input and output; returns the youngest input and its block time.
    function _recordInputs(InFlightExit storage ife, Transaction memory t, bytes[] calldata inputTxs,
        uint256[][] calldata inputProofs, bytes[] calldata signatures)
        internal
        returns (uint256, uint256)
    {
        InputScan memory scan = InputScan(t, _digest(t), 0, 0, 0);
        for (uint256 i = 0; i < t.inputs.length; ++i) {
            _recordInput(ife, scan, i, inputTxs[i], inputProofs[i], signatures[i]);
        }
        uint256 outSum;
        ife.outputCount = uint8(t.outputs.length);
        for (uint256 i = 0; i < t.outputs.length; ++i) {
            ife.outputs[i] = IfeOutput(t.outputs[i].owner, t.outputs[i].amount);
            outSum += t.outputs[i].amount;
        }
        if (outSum > scan.inSum) revert ValueNotConserved(scan.inSum, outSum);
        return (scan.youngest, scan.youngestTimestamp);
    }

    function _recordInput(InFlightExit storage ife, InputScan memory scan, uint256 i, bytes calldata inputTx,
        uint256[] calldata proof, bytes calldata sig) internal {
        uint256 utxoPos = scan.t.inputs[i];
        (Output memory o, bytes32 oid, uint256 ts) = _exitedOutput(utxoPos, inputTx, proof);
        if (o.token != ife.token) revert MixedTokens(ife.token, o.token);
        _checkSigned(scan.digest, sig, o.owner);
        ife.inputs[i] = IfeInput(utxoPos, oid, o.owner, o.amount);
        scan.inSum += o.amount;
        if (utxoPos > scan.youngest) (scan.youngest, scan.youngestTimestamp) = (utxoPos, ts);
    }

    /// @notice Ask for input `index` (`isOutput` false) or output `index` of the in-flight
    /// transaction to be paid when it is processed; only its owner may, with the bond.
    function piggybackInFlightExit(bytes calldata txBytes, uint8 index, bool isOutput) external payable nonReentrant {
        if (msg.value != config.piggybackBond) revert WrongBond(msg.value, config.piggybackBond);
        (InFlightExit storage ife, uint256 exitId) = _openIfe(txBytes);
        if (block.timestamp >= _firstHalfEnd(ife)) revert PiggybackPeriodOver(exitId, ife.exitableAt);
        address owner;
        uint8 bit = uint8(1) << (index & 7);
        if (isOutput) {
            if (index >= ife.outputCount) revert BadIndex(index);
            if (ife.piggybackedOutputs & bit != 0) revert AlreadyPiggybacked(exitId, index, true);
            owner = ife.outputs[index].owner;
            if (exited[outputId(ife.txHash, index)]) revert OutputAlreadyExited(outputId(ife.txHash, index));
            ife.piggybackedOutputs |= bit;
        } else {
            if (index >= ife.inputCount) revert BadIndex(index);
            if (ife.piggybackedInputs & bit != 0) revert AlreadyPiggybacked(exitId, index, false);
            owner = ife.inputs[index].owner;
            if (exited[ife.inputs[index].outputId]) revert OutputAlreadyExited(ife.inputs[index].outputId);
            ife.piggybackedInputs |= bit;
        }
        if (owner != msg.sender) revert NotOwner(msg.sender, owner);
        emit InFlightExitPiggybacked(exitId, msg.sender, index, isOutput);
    }

    /// @dev Piggybacks and canonicity challenges come in the first half of the exit's
    /// period (MoreVP, OMG), so that their challenges and responses have the second half.
    function _firstHalfEnd(InFlightExit storage ife) internal view returns (uint256) {
        return ife.exitableAt - config.minExitPeriod / 2;
    }

    function _openIfe(bytes calldata txBytes) internal view returns (InFlightExit storage ife, uint256 exitId) {
        exitId = uint160(uint256(keccak256(txBytes)));
        ife = _inFlightExits[uint160(exitId)];
        if (ife.starter == address(0)) revert NoSuchInFlightExit(exitId);
        if (ife.finalized) revert InFlightExitFinished(exitId);
    }

    /// @notice Show a competitor: another transaction, signed by the owner of input
    /// `inputIndex`, spending the same output. Included at `competitorPos` (with
    /// `competitorProof`) or, with `competitorPos` 0, known but not included (the youngest
    /// possible position). It must be older than the competitor recorded so far; the
    /// in-flight transaction becomes non-canonical.
    function challengeInFlightExitNotCanonical(bytes calldata txBytes, uint8 inputIndex,
        bytes calldata competitorTxBytes, uint8 competitorInputIndex, uint256 competitorPos,
        uint256[] calldata competitorProof, bytes calldata competitorSignature) external nonReentrant {
        (InFlightExit storage ife, uint256 exitId) = _openIfe(txBytes);
        if (block.timestamp >= _firstHalfEnd(ife)) revert CanonicityChallengePeriodOver(exitId, ife.exitableAt);
        if (inputIndex >= ife.inputCount) revert BadIndex(inputIndex);
        bytes32 competitorHash = keccak256(competitorTxBytes);
        if (competitorHash == ife.txHash) revert SameTransaction();
        IfeInput memory input = ife.inputs[inputIndex];
        _checkSpends(competitorTxBytes, competitorInputIndex, input.utxoPos, competitorSignature, input.owner);
        uint256 pos = NOT_INCLUDED;
        if (competitorPos != 0) {
            if (competitorPos % TX_OFFSET != 0) revert BadPosition(competitorPos);
            _checkIncluded(competitorPos, competitorHash, competitorProof);
            pos = competitorPos;
        }
        uint256 recorded = ife.competitorPos;
        if (recorded != 0 && pos >= recorded) revert CompetitorNotOlder(pos, recorded);
        ife.competitorPos = pos;
        ife.canonical = false;
        ife.challenger = msg.sender;
        emit InFlightExitChallenged(exitId, msg.sender, pos);
    }

    /// @dev Reverts unless `spendingTxBytes`'s input `spendingIndex` is `utxoPos` and `sig`
    /// over its digest recovers to `owner`.
    function _checkSpends(bytes calldata spendingTxBytes, uint8 spendingIndex, uint256 utxoPos,
        bytes calldata sig, address owner) internal view {
        Transaction memory s = _decode(spendingTxBytes);
        uint256 spent = spendingIndex < s.inputs.length ? s.inputs[spendingIndex] : 0;
        if (spent != utxoPos) revert NotSpendingExitedOutput(spent, utxoPos);
        _checkSigned(_digest(s), sig, owner);
    }

    /// @notice Answer a canonicity challenge with the in-flight transaction's own inclusion
    /// at `txPos` (`blknum * 1e9 + txindex * 1e4`), older than the competitor: it is
    /// canonical again, and later competitors must be older than it.
    function respondToNonCanonicalChallenge(bytes calldata txBytes, uint256 txPos, uint256[] calldata proof)
        external
        nonReentrant
    {
        (InFlightExit storage ife, uint256 exitId) = _openIfe(txBytes);
        if (txPos % TX_OFFSET != 0) revert BadPosition(txPos);
        _checkIncluded(txPos, ife.txHash, proof);
        if (ife.competitorPos == 0 || txPos >= ife.competitorPos) revert ResponseNotOlder(txPos, ife.competitorPos);
        ife.competitorPos = txPos;
        ife.canonical = true;
        emit InFlightExitChallengeResponded(exitId, msg.sender, txPos);
    }

    /// @notice A piggybacked input was spent by another transaction its owner signed: the
    /// input is not paid, its piggyback bond is the challenger's.
    function challengeInFlightExitInputSpent(bytes calldata txBytes, uint8 inputIndex,
        bytes calldata spendingTxBytes, uint8 spendingInputIndex, bytes calldata spendingSignature)
        external
        nonReentrant
    {
        (InFlightExit storage ife, uint256 exitId) = _openIfe(txBytes);
        if (inputIndex >= ife.inputCount) revert BadIndex(inputIndex);
        uint8 bit = uint8(1) << inputIndex;
        if (ife.piggybackedInputs & bit == 0) revert NotPiggybacked(exitId, inputIndex, false);
        if (keccak256(spendingTxBytes) == ife.txHash) revert SameTransaction();
        IfeInput memory input = ife.inputs[inputIndex];
        _checkSpends(spendingTxBytes, spendingInputIndex, input.utxoPos, spendingSignature, input.owner);
        ife.piggybackedInputs &= ~bit;
        emit InFlightExitPiggybackChallenged(exitId, msg.sender, inputIndex, false);
        _pay(msg.sender, address(0), config.piggybackBond);
    }

    /// @notice A piggybacked output of the transaction, included at `txPos`, was spent by a
    /// transaction its owner signed: the output is not paid, its bond is the challenger's.
    function challengeInFlightExitOutputSpent(bytes calldata txBytes, uint256 txPos, uint256[] calldata txProof,
        uint8 outputIndex, bytes calldata spendingTxBytes, uint8 spendingInputIndex,
        bytes calldata spendingSignature) external nonReentrant {
        InFlightExit storage ife = _piggybackedIncludedOutput(txBytes, txPos, txProof, outputIndex);
        _checkSpends(spendingTxBytes, spendingInputIndex, txPos + outputIndex, spendingSignature,
            ife.outputs[outputIndex].owner);
        ife.piggybackedOutputs &= ~(uint8(1) << outputIndex);
        emit InFlightExitPiggybackChallenged(uint160(uint256(ife.txHash)), msg.sender, outputIndex, true);
        _pay(msg.sender, address(0), config.piggybackBond);
    }

    function _piggybackedIncludedOutput(bytes calldata txBytes, uint256 txPos, uint256[] calldata txProof,
        uint8 outputIndex) internal view returns (InFlightExit storage ife) {
        uint256 exitId;
        (ife, exitId) = _openIfe(txBytes);
        if (outputIndex >= ife.outputCount) revert BadIndex(outputIndex);
        if (ife.piggybackedOutputs & (uint8(1) << outputIndex) == 0) revert NotPiggybacked(exitId, outputIndex, true);
        if (txPos % TX_OFFSET != 0) revert BadPosition(txPos);
        _checkIncluded(txPos, ife.txHash, txProof);
    }

    function _processInFlightExit(uint160 exitId) internal {
        InFlightExit storage ife = _inFlightExits[exitId];
        ife.finalized = true;
        uint256 bond = config.piggybackBond;
        address token = ife.token;
        bool canonical = ife.canonical;
        // MoreVP: an input already paid by another exit makes the outputs unpayable (that
        // value left already); the inputs left are paid back instead
        bool payOutputs = canonical;
        for (uint8 i = 0; i < ife.inputCount; ++i) {
            if (exited[ife.inputs[i].outputId]) payOutputs = false;
        }
        for (uint8 i = 0; i < ife.inputCount; ++i) {
            IfeInput memory input = ife.inputs[i];
            bool piggybacked = ife.piggybackedInputs & (uint8(1) << i) != 0;
            if (piggybacked) _pay(input.owner, address(0), bond);
            if (payOutputs) {
                exited[input.outputId] = true; // spent by the canonical transaction
            } else if (piggybacked && !exited[input.outputId]) {
                exited[input.outputId] = true;
                emit InFlightExitPaid(exitId, input.owner, i, false, input.amount,
                    _pay(input.owner, token, input.amount));
            }
        }
        for (uint8 i = 0; i < ife.outputCount; ++i) {
            if (ife.piggybackedOutputs & (uint8(1) << i) == 0) continue;
            IfeOutput memory o = ife.outputs[i];
            _pay(o.owner, address(0), bond);
            bytes32 oid = outputId(ife.txHash, i);
            if (payOutputs && !exited[oid]) {
                exited[oid] = true;
                emit InFlightExitPaid(exitId, o.owner, i, true, o.amount, _pay(o.owner, token, o.amount));
            }
        }
        _pay(canonical ? ife.starter : ife.challenger, address(0), config.inFlightExitBond);
        emit InFlightExitFinalized(exitId, canonical);
    }

    // ------------------------------------------------------------------ views

    function exits(uint256 exitId) external view returns (StandardExit memory) {
        return _exits[exitId];
    }

    function inFlightExits(uint160 exitId) external view returns (InFlightExit memory) {
        return _inFlightExits[exitId];
    }

    function queueLength(address token) external view returns (uint256) {
        return _queues[token].length();
    }

    /// @notice The next priority of `token`'s queue (exitableAt << 192 | pos << 64 | id).
    function queueTop(address token) external view returns (uint256) {
        return _queues[token].length() == 0 ? 0 : _queues[token].peek();
    }

    function domainSeparator() external view returns (bytes32) {
        return _domainSeparatorV4();
    }
}

// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

/// snarkjs's Groth16 verifier with one public input (rendered per key at build time by
/// scripts/zk_verifier.mjs into build/zk/<key>/ZkVerifier.sol).
interface IGroth16Verifier {
    function verifyProof(uint256[2] calldata pA, uint256[2][2] calldata pB, uint256[2] calldata pC,
                         uint256[1] calldata pubSignals) external view returns (bool);
}

/// circomlibjs's generated Poseidon contracts (poseidon_gencontract.js), one per input count.
interface IPoseidon2 {
    function poseidon(uint256[2] calldata inputs) external pure returns (uint256);
}

interface IPoseidon3 {
    function poseidon(uint256[3] calldata inputs) external pure returns (uint256);
}

interface IPoseidon4 {
    function poseidon(uint256[4] calldata inputs) external pure returns (uint256);
}

/// The layerlab ZK rollup on L1 (circuits/zk_rollup.circom).
///
/// It keeps the Poseidon root of the L2 accounts and moves it only with a Groth16 proof whose
/// one public input is sha256(oldRoot || newRoot || data || depositRecords) with the top 3
/// bits cleared, where `data` is the batch's calldata (N transfers, the account index of each
/// consumed deposit, W withdrawals) and `depositRecords` are the next M deposits of the queue
/// (ax || ay || uint48 gwei each, zero padded), which this contract supplies itself so that a
/// batch cannot skip them. Withdrawals in a verified batch are paid at once.
///
/// Escape hatch: when no batch has landed for `escapeBlocks` blocks, anyone may freeze the
/// rollup. Then no batch or deposit is taken, each account is paid its balance in the last
/// verified root once, on a Merkle proof of its leaf (circomlib's sparse Merkle tree, checked
/// with circomlibjs's Poseidon contracts, ~30k gas a hash), to the L1 address that first
/// deposited to its key (the L1 cannot afford to check the key's EdDSA signature), and each
/// deposit still queued is refunded to its depositor.
contract ZkRollup {
    uint256 internal constant FIELD =
        21888242871839275222246405745257275088548364400416034343698204186575808495617;
    uint256 internal constant GWEI = 1 gwei;
    uint256 internal constant MAX_AMOUNT = 2 ** 48 - 1;
    uint256 internal constant PAY_GAS = 30_000;

    struct QueuedDeposit {
        uint256 ax;
        uint256 ay;
        uint48 amount;
    }

    IGroth16Verifier public immutable verifier;
    address public immutable operator;
    uint256 public immutable nTransfers;
    uint256 public immutable nDeposits;
    uint256 public immutable nWithdrawals;
    uint256 public immutable indexBytes;
    uint256 public immutable depth;
    uint256 public immutable escapeBlocks;
    IPoseidon2 public immutable poseidon2;
    IPoseidon3 public immutable poseidon3;
    IPoseidon4 public immutable poseidon4;

    uint256 public stateRoot;
    uint256 public batchCount;
    uint256 public nextDeposit;
    QueuedDeposit[] public deposits;
    mapping(address => uint256) public owed;
    uint256 public lastBatchBlock;
    bool public frozen;
    mapping(uint256 => address) public depositor;
    mapping(bytes32 => address) public keyOwner;
    mapping(uint256 => bool) public escaped;
    mapping(uint256 => bool) public refunded;

    event Deposited(uint256 indexed id, uint256 ax, uint256 ay, uint256 amountGwei);
    event BatchVerified(uint256 indexed batch, uint256 oldRoot, uint256 newRoot, uint256 depositsConsumed);
    event WithdrawalPaid(address indexed recipient, uint256 amountWei, bool sent);
    event RollupFrozen(uint256 atBlock, uint256 root);
    event Escaped(uint256 indexed account, address indexed owner, uint256 amountWei);
    event DepositRefunded(uint256 indexed id, address indexed depositor, uint256 amountWei);

    error NotOperator(address caller);
    error BadDeposit(uint256 valueWei);
    error KeyNotInField(uint256 ax, uint256 ay);
    error BadDataLength(uint256 got, uint256 expected);
    error RootNotInField(uint256 newRoot);
    error InvalidProof(uint256 publicHash);
    error NothingOwed(address recipient);
    error IsFrozen();
    error NotFrozen();
    error TooEarly(uint256 lastBatchBlock, uint256 escapeBlocks);
    error AlreadyEscaped(uint256 account);
    error BadMerkleProof(uint256 computedRoot);
    error NoOwner(uint256 ax, uint256 ay);
    error NotRefundable(uint256 id);

    constructor(IGroth16Verifier verifier_, address operator_, uint256 genesisRoot, uint256 nTransfers_,
                uint256 nDeposits_, uint256 nWithdrawals_, uint256 depth_, uint256 escapeBlocks_,
                IPoseidon2 p2, IPoseidon3 p3, IPoseidon4 p4) {
        verifier = verifier_;
        operator = operator_;
        stateRoot = genesisRoot;
        nTransfers = nTransfers_;
        nDeposits = nDeposits_;
        nWithdrawals = nWithdrawals_;
        indexBytes = depth_ / 8;
        depth = depth_;
        escapeBlocks = escapeBlocks_;
        poseidon2 = p2;
        poseidon3 = p3;
        poseidon4 = p4;
        lastBatchBlock = block.number;
    }

    /// Queue a deposit of msg.value (a whole number of gwei, below 2^48 gwei) to the L2 account
    /// of Baby Jubjub key (ax, ay).
    function deposit(uint256 ax, uint256 ay) external payable {
        if (frozen) revert IsFrozen();
        if (msg.value == 0 || msg.value % GWEI != 0 || msg.value / GWEI > MAX_AMOUNT) {
            revert BadDeposit(msg.value);
        }
        if (ax >= FIELD || ay >= FIELD) revert KeyNotInField(ax, ay);
        deposits.push(QueuedDeposit(ax, ay, uint48(msg.value / GWEI)));
        depositor[deposits.length - 1] = msg.sender;
        bytes32 key = keccak256(abi.encode(ax, ay));
        if (keyOwner[key] == address(0)) keyOwner[key] = msg.sender;
        emit Deposited(deposits.length - 1, ax, ay, msg.value / GWEI);
    }

    function depositCount() external view returns (uint256) {
        return deposits.length;
    }

    function dataLength() public view returns (uint256) {
        return nTransfers * (2 * indexBytes + 6) + nDeposits * indexBytes
            + nWithdrawals * (indexBytes + 26);
    }

    /// The deposit records the next batch must consume, and how many are real.
    function pendingDepositRecords() public view returns (bytes memory records, uint256 count) {
        uint256 pending = deposits.length - nextDeposit;
        count = pending < nDeposits ? pending : nDeposits;
        records = new bytes(nDeposits * 70);
        for (uint256 i = 0; i < count; i++) {
            QueuedDeposit storage d = deposits[nextDeposit + i];
            bytes memory one = abi.encodePacked(d.ax, d.ay, d.amount);
            for (uint256 j = 0; j < 70; j++) records[i * 70 + j] = one[j];
        }
    }

    function publicHash(uint256 newRoot, bytes calldata data) public view returns (uint256) {
        (bytes memory records,) = pendingDepositRecords();
        return uint256(sha256(abi.encodePacked(stateRoot, newRoot, data, records))) & ((1 << 253) - 1);
    }

    function submitBatch(uint256 newRoot, bytes calldata data, uint256[8] calldata proof) external {
        if (frozen) revert IsFrozen();
        if (msg.sender != operator) revert NotOperator(msg.sender);
        if (data.length != dataLength()) revert BadDataLength(data.length, dataLength());
        if (newRoot >= FIELD) revert RootNotInField(newRoot);
        (bytes memory records, uint256 consumed) = pendingDepositRecords();
        uint256 oldRoot = stateRoot;
        uint256 h = uint256(sha256(abi.encodePacked(oldRoot, newRoot, data, records))) & ((1 << 253) - 1);
        bool ok = verifier.verifyProof([proof[0], proof[1]], [[proof[2], proof[3]], [proof[4], proof[5]]],
                                       [proof[6], proof[7]], [h]);
        if (!ok) revert InvalidProof(h);
        stateRoot = newRoot;
        nextDeposit += consumed;
        lastBatchBlock = block.number;
        emit BatchVerified(batchCount++, oldRoot, newRoot, consumed);
        _payWithdrawals(data);
    }

    /// Freeze the rollup once no batch has landed for more than `escapeBlocks` blocks.
    function freeze() external {
        if (frozen) revert IsFrozen();
        if (block.number <= lastBatchBlock + escapeBlocks) revert TooEarly(lastBatchBlock, escapeBlocks);
        frozen = true;
        emit RollupFrozen(block.number, stateRoot);
    }

    /// The root of the tree with account `index` = (ax, ay, balance, nonce) on `siblings`
    /// (circomlib's SMT: leaf Poseidon(index, Poseidon(ax, ay, balance, nonce), 1), the path
    /// is the index's bits from the least significant, the root's child first).
    function accountRoot(uint256 index, uint256 ax, uint256 ay, uint256 balance, uint256 nonce,
                         uint256[] calldata siblings) public view returns (uint256 node) {
        uint256 value = poseidon4.poseidon([ax, ay, balance, nonce]);
        node = poseidon3.poseidon([index, value, 1]);
        for (uint256 level = siblings.length; level > 0; level--) {
            uint256 sibling = siblings[level - 1];
            node = (index >> (level - 1)) & 1 == 1 ? poseidon2.poseidon([sibling, node])
                                                  : poseidon2.poseidon([node, sibling]);
        }
    }

    /// Once frozen: pay account `index` its balance in the last verified root, once.
    function escape(uint256 index, uint256 ax, uint256 ay, uint256 balance, uint256 nonce,
                    uint256[] calldata siblings) external {
        if (!frozen) revert NotFrozen();
        if (escaped[index]) revert AlreadyEscaped(index);
        address owner = keyOwner[keccak256(abi.encode(ax, ay))];
        if (owner == address(0)) revert NoOwner(ax, ay);
        if (index >> depth != 0 || siblings.length > depth) revert BadMerkleProof(0);
        uint256 root = accountRoot(index, ax, ay, balance, nonce, siblings);
        if (root != stateRoot) revert BadMerkleProof(root);
        escaped[index] = true;
        uint256 amount = balance * GWEI;
        (bool sent,) = owner.call{value: amount, gas: PAY_GAS}("");
        if (!sent) owed[owner] += amount;
        emit Escaped(index, owner, amount);
    }

    /// Once frozen: refund deposit `id`, which no verified batch consumed, to its depositor.
    function refundDeposit(uint256 id) external {
        if (!frozen) revert NotFrozen();
        if (id < nextDeposit || id >= deposits.length || refunded[id]) revert NotRefundable(id);
        refunded[id] = true;
        uint256 amount = uint256(deposits[id].amount) * GWEI;
        address to = depositor[id];
        (bool sent,) = to.call{value: amount, gas: PAY_GAS}("");
        if (!sent) owed[to] += amount;
        emit DepositRefunded(id, to, amount);
    }

    /// Withdraw what a recipient that refused a payment is owed.
    function claim() external {
        uint256 amount = owed[msg.sender];
        if (amount == 0) revert NothingOwed(msg.sender);
        owed[msg.sender] = 0;
        (bool sent,) = msg.sender.call{value: amount}("");
        require(sent, "claim transfer failed");
    }

    function _payWithdrawals(bytes calldata data) internal {
        uint256 ib = indexBytes;
        uint256 at = nTransfers * (2 * ib + 6) + nDeposits * ib;
        for (uint256 i = 0; i < nWithdrawals; i++) {
            at += ib;
            address recipient = address(bytes20(data[at:at + 20]));
            uint256 amount = uint256(uint48(bytes6(data[at + 20:at + 26]))) * GWEI;
            at += 26;
            if (amount == 0) continue;
            // A recipient that reverts cannot block the rollup: it is owed instead.
            (bool sent,) = recipient.call{value: amount, gas: PAY_GAS}("");
            if (!sent) owed[recipient] += amount;
            emit WithdrawalPaid(recipient, amount, sent);
        }
    }
}

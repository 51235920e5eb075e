// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

/// snarkjs's Groth16 verifier with one public input (rendered per key at build time by
/// scripts/zk_verifier.mjs into build/zk/<key>/ZkVerifier.sol).
interface IGroth16Verifier {
    function verifyProof(uint256[2] calldata pA, uint256[2][2] calldata pB, uint256[2] calldata pC,
                         uint256[1] calldata pubSignals) external view returns (bool);
}

/// The layerlab ZK rollup on L1 (circuits/zk_rollup.circom).
///
/// It keeps the Poseidon root of the L2 accounts and moves it only with a Groth16 proof whose
/// one public input is sha256(oldRoot || newRoot || data || depositRecords) with the top 3
/// bits cleared, where `data` is the batch's calldata (N transfers, the account index of each
/// consumed deposit, W withdrawals) and `depositRecords` are the next M deposits of the queue
/// (ax || ay || uint48 gwei each, zero padded), which this contract supplies itself so that a
/// batch cannot skip them. Withdrawals in a verified batch are paid at once.
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

    uint256 public stateRoot;
    uint256 public batchCount;
    uint256 public nextDeposit;
    QueuedDeposit[] public deposits;
    mapping(address => uint256) public owed;

    event Deposited(uint256 indexed id, uint256 ax, uint256 ay, uint256 amountGwei);
    event BatchVerified(uint256 indexed batch, uint256 oldRoot, uint256 newRoot, uint256 depositsConsumed);
    event WithdrawalPaid(address indexed recipient, uint256 amountWei, bool sent);

    error NotOperator(address caller);
    error BadDeposit(uint256 valueWei);
    error KeyNotInField(uint256 ax, uint256 ay);
    error BadDataLength(uint256 got, uint256 expected);
    error RootNotInField(uint256 newRoot);
    error InvalidProof(uint256 publicHash);
    error NothingOwed(address recipient);

    constructor(IGroth16Verifier verifier_, address operator_, uint256 genesisRoot, uint256 nTransfers_,
                uint256 nDeposits_, uint256 nWithdrawals_, uint256 depth) {
        verifier = verifier_;
        operator = operator_;
        stateRoot = genesisRoot;
        nTransfers = nTransfers_;
        nDeposits = nDeposits_;
        nWithdrawals = nWithdrawals_;
        indexBytes = depth / 8;
    }

    /// Queue a deposit of msg.value (a whole number of gwei, below 2^48 gwei) to the L2 account
    /// of Baby Jubjub key (ax, ay).
    function deposit(uint256 ax, uint256 ay) external payable {
        if (msg.value == 0 || msg.value % GWEI != 0 || msg.value / GWEI > MAX_AMOUNT) {
            revert BadDeposit(msg.value);
        }
        if (ax >= FIELD || ay >= FIELD) revert KeyNotInField(ax, ay);
        deposits.push(QueuedDeposit(ax, ay, uint48(msg.value / GWEI)));
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
        emit BatchVerified(batchCount++, oldRoot, newRoot, consumed);
        _payWithdrawals(data);
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

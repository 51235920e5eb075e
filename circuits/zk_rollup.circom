pragma circom 2.1.0;

// A batch of the layerlab ZK rollup: M deposits, then N transfers, then W withdrawals, each
// moving the Poseidon sparse Merkle root of the accounts (circomlib's SMT, depth D), and one
// public output: the SHA-256 of the bytes the L1 contract publishes and recomputes, with its
// top 3 bits cleared so that it is a field element.
//
// Account leaf: key = account index, value = Poseidon(ax, ay, balance, nonce), where (ax, ay)
// is the owner's Baby Jubjub key; balances and amounts are in gwei.
//
// Hashed bytes (big-endian), IB = D / 8:
//   oldRoot (32) || newRoot (32)
//   || N x [from (IB) || to (IB) || amount (6)]
//   || M x [account index of deposit i (IB)]
//   || W x [from (IB) || recipient (20) || amount (6)]
//   || M x [ax (32) || ay (32) || amount (6)]      (the contract's deposit queue, not calldata)
// A slot whose amount is 0 is padding and changes nothing.
//
// Signed messages: transfer Poseidon(1, from, to, amount, nonce),
//                  withdrawal Poseidon(2, from, recipient, amount, nonce).

include "circomlib/circuits/poseidon.circom";
include "circomlib/circuits/bitify.circom";
include "circomlib/circuits/comparators.circom";
include "circomlib/circuits/eddsaposeidon.circom";
include "circomlib/circuits/smt/smtprocessor.circom";
include "circomlib/circuits/sha256/sha256.circom";

// The bits of an n-bit number, most significant first (range-checks it to n bits).
template BitsBE(n) {
    signal input in;
    signal output out[n];
    component b = Num2Bits(n);
    b.in <== in;
    for (var i = 0; i < n; i++) out[i] <== b.out[n - 1 - i];
}

// A field element as 32 bytes, most significant bit first (the unique representative < p).
template FieldBitsBE() {
    signal input in;
    signal output out[256];
    component b = Num2Bits_strict();
    b.in <== in;
    out[0] <== 0;
    out[1] <== 0;
    for (var i = 0; i < 254; i++) out[2 + i] <== b.out[253 - i];
}

template AccountLeaf() {
    signal input ax;
    signal input ay;
    signal input balance;
    signal input nonce;
    signal output out;
    component h = Poseidon(4);
    h.inputs[0] <== ax;
    h.inputs[1] <== ay;
    h.inputs[2] <== balance;
    h.inputs[3] <== nonce;
    out <== h.out;
}

// Update the leaf of `index` (when enabled) from (ax, ay, balance, nonce) to newBalance,
// newNonce, checking the old leaf against oldRoot.
template UpdateAccount(D) {
    signal input enabled;
    signal input oldRoot;
    signal input index;
    signal input ax;
    signal input ay;
    signal input balance;
    signal input nonce;
    signal input newBalance;
    signal input newNonce;
    signal input siblings[D];
    signal output newRoot;

    component oldLeaf = AccountLeaf();
    oldLeaf.ax <== ax;
    oldLeaf.ay <== ay;
    oldLeaf.balance <== balance;
    oldLeaf.nonce <== nonce;
    component newLeaf = AccountLeaf();
    newLeaf.ax <== ax;
    newLeaf.ay <== ay;
    newLeaf.balance <== newBalance;
    newLeaf.nonce <== newNonce;

    component p = SMTProcessor(D);
    p.oldRoot <== oldRoot;
    for (var i = 0; i < D; i++) p.siblings[i] <== siblings[i];
    p.oldKey <== index;
    p.oldValue <== oldLeaf.out;
    p.isOld0 <== 0;
    p.newKey <== index;
    p.newValue <== newLeaf.out;
    p.fnc[0] <== 0;
    p.fnc[1] <== enabled;
    newRoot <== p.newRoot;
}

template SignedBy() {
    signal input enabled;
    signal input msg;
    signal input ax;
    signal input ay;
    signal input r8x;
    signal input r8y;
    signal input s;
    component v = EdDSAPoseidonVerifier();
    v.enabled <== enabled;
    v.Ax <== ax;
    v.Ay <== ay;
    v.S <== s;
    v.R8x <== r8x;
    v.R8y <== r8y;
    v.M <== msg;
}

template Transfer(D) {
    signal input oldRoot;
    signal output newRoot;
    signal input from;
    signal input to;
    signal input amount;
    // sender
    signal input ax;
    signal input ay;
    signal input balance;
    signal input nonce;
    signal input siblings[D];
    signal input r8x;
    signal input r8y;
    signal input s;
    // receiver, in the tree after the sender's update
    signal input toAx;
    signal input toAy;
    signal input toBalance;
    signal input toNonce;
    signal input toSiblings[D];

    component isPad = IsZero();
    isPad.in <== amount;
    signal enabled <== 1 - isPad.out;

    component msg = Poseidon(5);
    msg.inputs[0] <== 1;
    msg.inputs[1] <== from;
    msg.inputs[2] <== to;
    msg.inputs[3] <== amount;
    msg.inputs[4] <== nonce;
    component sig = SignedBy();
    sig.enabled <== enabled;
    sig.msg <== msg.out;
    sig.ax <== ax;
    sig.ay <== ay;
    sig.r8x <== r8x;
    sig.r8y <== r8y;
    sig.s <== s;

    // balance - amount >= 0 and toBalance + amount < 2^64
    component left = Num2Bits(64);
    left.in <== balance - amount;
    component credited = Num2Bits(64);
    credited.in <== toBalance + amount;

    component debit = UpdateAccount(D);
    debit.enabled <== enabled;
    debit.oldRoot <== oldRoot;
    debit.index <== from;
    debit.ax <== ax;
    debit.ay <== ay;
    debit.balance <== balance;
    debit.nonce <== nonce;
    debit.newBalance <== balance - amount;
    debit.newNonce <== nonce + 1;
    for (var i = 0; i < D; i++) debit.siblings[i] <== siblings[i];

    component credit = UpdateAccount(D);
    credit.enabled <== enabled;
    credit.oldRoot <== debit.newRoot;
    credit.index <== to;
    credit.ax <== toAx;
    credit.ay <== toAy;
    credit.balance <== toBalance;
    credit.nonce <== toNonce;
    credit.newBalance <== toBalance + amount;
    credit.newNonce <== toNonce;
    for (var i = 0; i < D; i++) credit.siblings[i] <== toSiblings[i];
    newRoot <== credit.newRoot;
}

template Withdrawal(D) {
    signal input oldRoot;
    signal output newRoot;
    signal input from;
    signal input recipient;
    signal input amount;
    signal input ax;
    signal input ay;
    signal input balance;
    signal input nonce;
    signal input siblings[D];
    signal input r8x;
    signal input r8y;
    signal input s;

    component isPad = IsZero();
    isPad.in <== amount;
    signal enabled <== 1 - isPad.out;

    component msg = Poseidon(5);
    msg.inputs[0] <== 2;
    msg.inputs[1] <== from;
    msg.inputs[2] <== recipient;
    msg.inputs[3] <== amount;
    msg.inputs[4] <== nonce;
    component sig = SignedBy();
    sig.enabled <== enabled;
    sig.msg <== msg.out;
    sig.ax <== ax;
    sig.ay <== ay;
    sig.r8x <== r8x;
    sig.r8y <== r8y;
    sig.s <== s;

    component left = Num2Bits(64);
    left.in <== balance - amount;

    component debit = UpdateAccount(D);
    debit.enabled <== enabled;
    debit.oldRoot <== oldRoot;
    debit.index <== from;
    debit.ax <== ax;
    debit.ay <== ay;
    debit.balance <== balance;
    debit.nonce <== nonce;
    debit.newBalance <== balance - amount;
    debit.newNonce <== nonce + 1;
    for (var i = 0; i < D; i++) debit.siblings[i] <== siblings[i];
    newRoot <== debit.newRoot;
}

// Credit a queued deposit to `index`: an existing account of the same key (isNew = 0), or a
// new leaf inserted where the tree has none (isNew = 1; otherKey, otherValue, isOld0 are the
// non-inclusion proof's).
template Deposit(D) {
    signal input oldRoot;
    signal output newRoot;
    signal input index;
    signal input ax;
    signal input ay;
    signal input amount;
    signal input isNew;
    signal input balance;
    signal input nonce;
    signal input siblings[D];
    signal input otherKey;
    signal input otherValue;
    signal input isOld0;

    component isPad = IsZero();
    isPad.in <== amount;
    signal enabled <== 1 - isPad.out;
    isNew * (isNew - 1) === 0;
    isNew * balance === 0;
    isNew * nonce === 0;
    component credited = Num2Bits(64);
    credited.in <== balance + amount;

    component oldLeaf = AccountLeaf();
    oldLeaf.ax <== ax;
    oldLeaf.ay <== ay;
    oldLeaf.balance <== balance;
    oldLeaf.nonce <== nonce;
    component newLeaf = AccountLeaf();
    newLeaf.ax <== ax;
    newLeaf.ay <== ay;
    newLeaf.balance <== balance + amount;
    newLeaf.nonce <== nonce;

    component p = SMTProcessor(D);
    p.oldRoot <== oldRoot;
    for (var i = 0; i < D; i++) p.siblings[i] <== siblings[i];
    p.oldKey <== index + isNew * (otherKey - index);
    p.oldValue <== oldLeaf.out + isNew * (otherValue - oldLeaf.out);
    p.isOld0 <== isNew * isOld0;
    p.newKey <== index;
    p.newValue <== newLeaf.out;
    p.fnc[0] <== enabled * isNew;
    p.fnc[1] <== enabled - enabled * isNew;
    newRoot <== p.newRoot;
}

template ZkRollupBatch(N, M, W, D) {
    assert(D % 8 == 0);
    var NBITS = 512 + N * (2 * D + 48) + M * D + W * (D + 208) + M * 560;

    signal input oldRoot;
    signal input newRoot;

    signal input txFrom[N];
    signal input txTo[N];
    signal input txAmount[N];
    signal input txAx[N];
    signal input txAy[N];
    signal input txBalance[N];
    signal input txNonce[N];
    signal input txSiblings[N][D];
    signal input txR8x[N];
    signal input txR8y[N];
    signal input txS[N];
    signal input txToAx[N];
    signal input txToAy[N];
    signal input txToBalance[N];
    signal input txToNonce[N];
    signal input txToSiblings[N][D];

    signal input depIndex[M];
    signal input depAx[M];
    signal input depAy[M];
    signal input depAmount[M];
    signal input depIsNew[M];
    signal input depBalance[M];
    signal input depNonce[M];
    signal input depSiblings[M][D];
    signal input depOtherKey[M];
    signal input depOtherValue[M];
    signal input depIsOld0[M];

    signal input wFrom[W];
    signal input wRecipient[W];
    signal input wAmount[W];
    signal input wAx[W];
    signal input wAy[W];
    signal input wBalance[W];
    signal input wNonce[W];
    signal input wSiblings[W][D];
    signal input wR8x[W];
    signal input wR8y[W];
    signal input wS[W];

    signal output dataHash;

    // -- the state transition --------------------------------------------------------
    signal roots[M + N + W + 1];
    roots[0] <== oldRoot;
    component deposits[M];
    for (var i = 0; i < M; i++) {
        deposits[i] = Deposit(D);
        deposits[i].oldRoot <== roots[i];
        deposits[i].index <== depIndex[i];
        deposits[i].ax <== depAx[i];
        deposits[i].ay <== depAy[i];
        deposits[i].amount <== depAmount[i];
        deposits[i].isNew <== depIsNew[i];
        deposits[i].balance <== depBalance[i];
        deposits[i].nonce <== depNonce[i];
        for (var j = 0; j < D; j++) deposits[i].siblings[j] <== depSiblings[i][j];
        deposits[i].otherKey <== depOtherKey[i];
        deposits[i].otherValue <== depOtherValue[i];
        deposits[i].isOld0 <== depIsOld0[i];
        roots[i + 1] <== deposits[i].newRoot;
    }
    component transfers[N];
    for (var i = 0; i < N; i++) {
        transfers[i] = Transfer(D);
        transfers[i].oldRoot <== roots[M + i];
        transfers[i].from <== txFrom[i];
        transfers[i].to <== txTo[i];
        transfers[i].amount <== txAmount[i];
        transfers[i].ax <== txAx[i];
        transfers[i].ay <== txAy[i];
        transfers[i].balance <== txBalance[i];
        transfers[i].nonce <== txNonce[i];
        for (var j = 0; j < D; j++) transfers[i].siblings[j] <== txSiblings[i][j];
        transfers[i].r8x <== txR8x[i];
        transfers[i].r8y <== txR8y[i];
        transfers[i].s <== txS[i];
        transfers[i].toAx <== txToAx[i];
        transfers[i].toAy <== txToAy[i];
        transfers[i].toBalance <== txToBalance[i];
        transfers[i].toNonce <== txToNonce[i];
        for (var j = 0; j < D; j++) transfers[i].toSiblings[j] <== txToSiblings[i][j];
        roots[M + i + 1] <== transfers[i].newRoot;
    }
    component withdrawals[W];
    for (var i = 0; i < W; i++) {
        withdrawals[i] = Withdrawal(D);
        withdrawals[i].oldRoot <== roots[M + N + i];
        withdrawals[i].from <== wFrom[i];
        withdrawals[i].recipient <== wRecipient[i];
        withdrawals[i].amount <== wAmount[i];
        withdrawals[i].ax <== wAx[i];
        withdrawals[i].ay <== wAy[i];
        withdrawals[i].balance <== wBalance[i];
        withdrawals[i].nonce <== wNonce[i];
        for (var j = 0; j < D; j++) withdrawals[i].siblings[j] <== wSiblings[i][j];
        withdrawals[i].r8x <== wR8x[i];
        withdrawals[i].r8y <== wR8y[i];
        withdrawals[i].s <== wS[i];
        roots[M + N + i + 1] <== withdrawals[i].newRoot;
    }
    roots[M + N + W] === newRoot;

    // -- the published bytes (each field range-checked by its bit decomposition) -----------
    component sha = Sha256(NBITS);
    var at = 0;
    component rootBits[2];
    rootBits[0] = FieldBitsBE();
    rootBits[0].in <== oldRoot;
    rootBits[1] = FieldBitsBE();
    rootBits[1].in <== newRoot;
    for (var r = 0; r < 2; r++) {
        for (var k = 0; k < 256; k++) sha.in[at + k] <== rootBits[r].out[k];
        at += 256;
    }
    component txIndexBits[N][2];
    component txAmountBits[N];
    for (var i = 0; i < N; i++) {
        txIndexBits[i][0] = BitsBE(D);
        txIndexBits[i][0].in <== txFrom[i];
        txIndexBits[i][1] = BitsBE(D);
        txIndexBits[i][1].in <== txTo[i];
        txAmountBits[i] = BitsBE(48);
        txAmountBits[i].in <== txAmount[i];
        for (var k = 0; k < D; k++) sha.in[at + k] <== txIndexBits[i][0].out[k];
        at += D;
        for (var k = 0; k < D; k++) sha.in[at + k] <== txIndexBits[i][1].out[k];
        at += D;
        for (var k = 0; k < 48; k++) sha.in[at + k] <== txAmountBits[i].out[k];
        at += 48;
    }
    component depIndexBits[M];
    for (var i = 0; i < M; i++) {
        depIndexBits[i] = BitsBE(D);
        depIndexBits[i].in <== depIndex[i];
        for (var k = 0; k < D; k++) sha.in[at + k] <== depIndexBits[i].out[k];
        at += D;
    }
    component wFromBits[W];
    component wRecipientBits[W];
    component wAmountBits[W];
    for (var i = 0; i < W; i++) {
        wFromBits[i] = BitsBE(D);
        wFromBits[i].in <== wFrom[i];
        wRecipientBits[i] = BitsBE(160);
        wRecipientBits[i].in <== wRecipient[i];
        wAmountBits[i] = BitsBE(48);
        wAmountBits[i].in <== wAmount[i];
        for (var k = 0; k < D; k++) sha.in[at + k] <== wFromBits[i].out[k];
        at += D;
        for (var k = 0; k < 160; k++) sha.in[at + k] <== wRecipientBits[i].out[k];
        at += 160;
        for (var k = 0; k < 48; k++) sha.in[at + k] <== wAmountBits[i].out[k];
        at += 48;
    }
    component depKeyBits[M][2];
    component depAmountBits[M];
    for (var i = 0; i < M; i++) {
        depKeyBits[i][0] = FieldBitsBE();
        depKeyBits[i][0].in <== depAx[i];
        depKeyBits[i][1] = FieldBitsBE();
        depKeyBits[i][1].in <== depAy[i];
        depAmountBits[i] = BitsBE(48);
        depAmountBits[i].in <== depAmount[i];
        for (var c = 0; c < 2; c++) {
            for (var k = 0; k < 256; k++) sha.in[at + k] <== depKeyBits[i][c].out[k];
            at += 256;
        }
        for (var k = 0; k < 48; k++) sha.in[at + k] <== depAmountBits[i].out[k];
        at += 48;
    }
    assert(at == NBITS);

    var acc = 0;
    for (var k = 3; k < 256; k++) acc += sha.out[k] * (1 << (255 - k));
    dataHash <== acc;
}

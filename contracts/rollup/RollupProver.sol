// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {ECDSA} from "@openzeppelin/contracts/utils/cryptography/ECDSA.sol";
import {EIP712} from "@openzeppelin/contracts/utils/cryptography/EIP712.sol";
import {Math} from "@openzeppelin/contracts/utils/math/Math.sol";

import {SparseMerkle} from "../lib/SparseMerkle.sol";
import {IOneStepProver} from "./IOneStepProver.sol";
import {IWithdrawalVerifier} from "./OptimisticRollup.sol";

/// @title RollupProver
/// @notice The one-step prover of layerlab's rollup: the rules of ONE L2 step
/// (`layerlab.l2.rollup.machine`, whose docstring holds the state layout) executed on L1
/// from sparse-Merkle witnesses of the leaves the step touches. This is what makes the
/// optimistic rollup's fraud proof real: at the end of the bisection game the contract
/// re-executes the single disputed step here (Arbitrum's one-step proof, OP Stack's
/// FaultDisputeGame `step`), and the post-state root it gets decides who lied.
///
/// Every L2 transaction is an EIP-712 message under the domain
/// `{name: "layerlab-rollup", version: "1", chainId, verifyingContract: this prover}`,
/// recovered with OpenZeppelin's ECDSA (low-s only, v = 27 or 28, as the Python side).
///
/// Witness: `abi.encode(Read[] reads, SparseMerkle.Proof[] writes)`. Each read proves a
/// leaf's value against the pre-state root (inclusion or non-inclusion) and, for a leaf
/// whose value is a hash (META, POOL, TOKEN), may carry its opening: the words whose
/// `keccak256(abi.encode(...))` is the value. The step then runs on those values in
/// memory; a step that the rules refuse returns `preRoot` (an invalid transaction is a
/// no-op). Otherwise each leaf whose value changed is written, in the order of the reads,
/// each with one proof against the root after the writes before it. A read or write proof
/// that does not verify reverts (`BadWitness`): a party cannot win with made-up leaves,
/// and a witness that lacks a leaf the step needs reverts (`MissingWitness`), so the
/// post-root is a function of the pre-state alone.
///
/// Arithmetic is uint256 and refuses (never wraps, never reverts) where a product or sum
/// would not fit, exactly as the Python machine does.
contract RollupProver is IOneStepProver, IWithdrawalVerifier, EIP712 {
    uint256 internal constant META = 0;
    uint256 internal constant ACCOUNT = 1;
    uint256 internal constant ADDRESS = 2;
    uint256 internal constant BALANCE = 3;
    uint256 internal constant NFT = 4;
    uint256 internal constant POOL = 5;
    uint256 internal constant SHARES = 6;
    uint256 internal constant WITHDRAW = 7;
    uint256 internal constant TOKEN = 8;

    uint8 internal constant DEPOSIT_KIND = 0xD0;
    uint8 internal constant FORCED_KIND = 0xF0;
    uint256 internal constant DEPOSIT_STEP_BYTES = 105;

    struct Read {
        SparseMerkle.Proof proof;
        uint256[] opening;
    }

    struct Entry {
        uint256 key;
        uint256 old;
        uint256 value;
        uint256[] opening;
    }

    struct Meta {
        bool loaded;
        bool dirty;
        uint256 accounts;
        uint256 nextDeposit;
        uint256 withdrawals;
    }

    /// @dev One step's working state: the leaves it may touch, and the META leaf's fields.
    struct Ctx {
        Entry[] entries;
        Meta meta;
    }

    /// @dev A parsed L2 transaction: its kind, its fields in EIP-712 member order (addresses
    /// as uint160), and the sender's account index once known.
    struct Tx {
        uint8 kind;
        uint256[6] f;
        uint256 n;
        address signer;
        uint256 sender;
    }

    error BadWitness(uint256 key, string why);
    error MissingWitness(uint256 key);
    error InvalidDeposit(string why);

    constructor() EIP712("layerlab-rollup", "1") {}

    /// @notice The EIP-712 domain separator L2 transactions are signed under.
    function domainSeparator() external view returns (bytes32) {
        return _domainSeparatorV4();
    }

    /// @notice `uint256(keccak256(abi.encode(kind, a, b)))`, machine.py's `compute_leaf_key`.
    function leafKey(uint256 kind, uint256 a, uint256 b) public pure returns (uint256) {
        return uint256(keccak256(abi.encode(kind, a, b)));
    }

    /// @inheritdoc IOneStepProver
    function executeStep(bytes32 preRoot, bytes calldata step, bytes calldata witness)
        external
        view
        returns (bytes32)
    {
        (Read[] memory reads, SparseMerkle.Proof[] memory writes) =
            abi.decode(witness, (Read[], SparseMerkle.Proof[]));
        Ctx memory c = _load(uint256(preRoot), reads);
        bool changed;
        if (step.length > 0 && uint8(step[0]) == DEPOSIT_KIND) {
            changed = _deposit(c, step);
        } else {
            bytes calldata body = step.length > 0 && uint8(step[0]) == FORCED_KIND ? step[1:] : step;
            changed = _transaction(c, body);
        }
        if (!changed) return preRoot;
        if (c.meta.dirty) {
            _set(c, leafKey(META, 0, 0), _hash3(c.meta.accounts, c.meta.nextDeposit, c.meta.withdrawals));
        }
        return bytes32(_writeAll(c, uint256(preRoot), writes));
    }

    /// @inheritdoc IWithdrawalVerifier
    function isWithdrawal(bytes32 stateRoot, uint256 withdrawalId, address recipient, address token,
        uint256 amount, bytes calldata proof) external pure returns (bool) {
        SparseMerkle.Proof memory p = abi.decode(proof, (SparseMerkle.Proof));
        return p.root == uint256(stateRoot) && p.found && p.key == leafKey(WITHDRAW, withdrawalId, 0)
            && p.value == uint256(keccak256(abi.encode(recipient, token, amount))) && SparseMerkle.verify(p);
    }

    // ------------------------------------------------------------------ witness

    function _load(uint256 preRoot, Read[] memory reads) internal pure returns (Ctx memory c) {
        c.entries = new Entry[](reads.length);
        for (uint256 i = 0; i < reads.length; ++i) {
            SparseMerkle.Proof memory p = reads[i].proof;
            if (p.root != preRoot) revert BadWitness(p.key, "read proof is not against the pre-state root");
            if (!SparseMerkle.verify(p)) revert BadWitness(p.key, "read proof does not verify");
            for (uint256 j = 0; j < i; ++j) {
                if (c.entries[j].key == p.key) revert BadWitness(p.key, "leaf read twice");
            }
            uint256 value = p.found ? p.value : 0;
            uint256[] memory opening = reads[i].opening;
            if (opening.length > 0 && _hashWords(opening) != value) {
                revert BadWitness(p.key, "opening does not hash to the leaf");
            }
            c.entries[i] = Entry(p.key, value, value, opening);
        }
    }

    function _hashWords(uint256[] memory words) internal pure returns (uint256 h) {
        assembly ("memory-safe") {
            h := keccak256(add(words, 0x20), mul(mload(words), 0x20))
        }
    }

    function _hash2(uint256 a, uint256 b) internal pure returns (uint256) {
        return uint256(keccak256(abi.encode(a, b)));
    }

    function _hash3(uint256 a, uint256 b, uint256 d) internal pure returns (uint256) {
        return uint256(keccak256(abi.encode(a, b, d)));
    }

    function _find(Ctx memory c, uint256 key) internal pure returns (Entry memory) {
        for (uint256 i = 0; i < c.entries.length; ++i) {
            if (c.entries[i].key == key) return c.entries[i];
        }
        revert MissingWitness(key);
    }

    function _get(Ctx memory c, uint256 key) internal pure returns (uint256) {
        return _find(c, key).value;
    }

    function _set(Ctx memory c, uint256 key, uint256 value) internal pure {
        _find(c, key).value = value;
    }

    /// @dev The `n` words a hashed leaf commits to (zeros when the leaf is absent).
    function _open(Ctx memory c, uint256 key, uint256 n) internal pure returns (uint256[] memory words) {
        Entry memory e = _find(c, key);
        if (e.old == 0) return new uint256[](n);
        if (e.opening.length != n) revert BadWitness(key, "leaf needs its opening");
        return e.opening;
    }

    function _writeAll(Ctx memory c, uint256 root, SparseMerkle.Proof[] memory writes)
        internal
        pure
        returns (uint256)
    {
        uint256 w = 0;
        for (uint256 i = 0; i < c.entries.length; ++i) {
            Entry memory e = c.entries[i];
            if (e.value == e.old) continue;
            if (w == writes.length) revert MissingWitness(e.key);
            SparseMerkle.Proof memory p = writes[w++];
            if (p.key != e.key || p.root != root || (p.found ? p.value != e.old : e.old != 0)) {
                revert BadWitness(e.key, "write proof is not of this leaf at the current root");
            }
            root = SparseMerkle.computeRootAfter(p, e.value);
        }
        if (w != writes.length) revert BadWitness(0, "unused write proofs");
        return root;
    }

    // ------------------------------------------------------------------ accounts

    function _loadMeta(Ctx memory c) internal pure {
        if (c.meta.loaded) return;
        uint256[] memory m = _open(c, leafKey(META, 0, 0), 3);
        c.meta = Meta(true, false, m[0], m[1], m[2]);
    }

    function _indexOf(Ctx memory c, address who) internal pure returns (bool, uint256) {
        uint256 v = _get(c, leafKey(ADDRESS, uint160(who), 0));
        return v == 0 ? (false, 0) : (true, v - 1);
    }

    /// @dev The recipient's index, creating its account (ADDRESS, ACCOUNT, META) if new.
    function _account(Ctx memory c, address who) internal pure returns (uint256 index) {
        bool exists;
        (exists, index) = _indexOf(c, who);
        if (exists) return index;
        _loadMeta(c);
        index = c.meta.accounts++;
        c.meta.dirty = true;
        _set(c, leafKey(ADDRESS, uint160(who), 0), index + 1);
        _set(c, leafKey(ACCOUNT, index, 0), _hash2(uint160(who), 0));
    }

    function _balanceKey(uint256 token, uint256 index) internal pure returns (uint256) {
        return leafKey(BALANCE, token, index);
    }

    // ------------------------------------------------------------------ deposits

    /// @dev An L1 -> L2 message. The rollup contract only accepts batches whose deposit
    /// steps are its queue's, byte for byte and in order, so one that does not fit the state
    /// is not a refused step but an impossible one: it reverts.
    function _deposit(Ctx memory c, bytes calldata step) internal pure returns (bool) {
        if (step.length != DEPOSIT_STEP_BYTES) revert InvalidDeposit("length");
        uint256 index = uint64(bytes8(step[1:9]));
        address to = address(bytes20(step[29:49]));
        address l1Token = address(bytes20(step[49:69]));
        uint256 token = uint32(bytes4(step[69:73]));
        uint256 amount = uint256(bytes32(step[73:105]));
        _loadMeta(c);
        if (index != c.meta.nextDeposit) revert InvalidDeposit("out of queue order");
        if (amount == 0) revert InvalidDeposit("zero amount");
        uint256 tokenKey = leafKey(TOKEN, token, 0);
        uint256 expected = uint256(keccak256(abi.encode(l1Token)));
        uint256 known = _get(c, tokenKey);
        if (known != 0 && known != expected) revert InvalidDeposit("token id of another L1 token");
        _set(c, tokenKey, expected);
        c.meta.nextDeposit += 1;
        c.meta.dirty = true;
        (bool exists, uint256 at) = _indexOf(c, to);
        uint256 held = exists ? _get(c, _balanceKey(token, at)) : 0;
        if (held > type(uint256).max - amount) return true; // consumed, credits nothing
        at = _account(c, to);
        _set(c, _balanceKey(token, at), held + amount);
        return true;
    }

    // ------------------------------------------------------------------ transactions

    /// @dev Field widths of each kind, in EIP-712 member order (nonce last); 20 = address.
    function _widths(uint8 kind) internal pure returns (uint8[6] memory w, uint256 n) {
        if (kind == 1) return ([4, 20, 32, 8, 0, 0], 4); // Transfer(token,to,amount,nonce)
        if (kind == 2) return ([8, 20, 8, 0, 0, 0], 3); // MintNFT(tokenId,to,nonce)
        if (kind == 3) return ([8, 8, 20, 8, 0, 0], 4); // TransferNFT(collection,tokenId,to,nonce)
        if (kind == 4) return ([4, 4, 32, 32, 8, 0], 5); // Swap(tokenIn,tokenOut,amountIn,minOut,nonce)
        if (kind == 5 || kind == 6) return ([4, 4, 32, 32, 32, 8], 6); // Add/RemoveLiquidity
        if (kind == 7) return ([4, 32, 20, 8, 0, 0], 4); // Withdraw(token,amount,recipient,nonce)
        return (w, 0);
    }

    function _typeHash(uint8 kind) internal pure returns (bytes32) {
        if (kind == 1) return keccak256("Transfer(uint32 token,address to,uint256 amount,uint64 nonce)");
        if (kind == 2) return keccak256("MintNFT(uint64 tokenId,address to,uint64 nonce)");
        if (kind == 3) return keccak256("TransferNFT(uint64 collection,uint64 tokenId,address to,uint64 nonce)");
        if (kind == 4) {
            return keccak256("Swap(uint32 tokenIn,uint32 tokenOut,uint256 amountIn,uint256 minOut,uint64 nonce)");
        }
        if (kind == 5) {
            return keccak256(
                "AddLiquidity(uint32 token0,uint32 token1,uint256 amount0,uint256 amount1,uint256 minShares,uint64 nonce)"
            );
        }
        return keccak256(
            kind == 6
                ? bytes("RemoveLiquidity(uint32 token0,uint32 token1,uint256 shares,uint256 min0,uint256 min1,uint64 nonce)")
                : bytes("Withdraw(uint32 token,uint256 amount,address recipient,uint64 nonce)")
        );
    }

    /// @dev Parse a transaction step; false for anything malformed (a no-op step).
    function _parse(bytes calldata body) internal view returns (bool ok, Tx memory t) {
        if (body.length == 0) return (false, t);
        t.kind = uint8(body[0]);
        (uint8[6] memory w, uint256 n) = _widths(t.kind);
        if (n == 0) return (false, t);
        uint256 at = 1;
        for (uint256 i = 0; i < n; ++i) at += w[i];
        if (body.length != at + 65) return (false, t);
        t.n = n;
        at = 1;
        for (uint256 i = 0; i < n; ++i) {
            uint256 width = w[i];
            t.f[i] = uint256(bytes32(body[at:at + width])) >> (256 - 8 * width);
            at += width;
        }
        bytes32 structHash;
        {
            bytes memory packed = abi.encodePacked(_typeHash(t.kind));
            for (uint256 i = 0; i < n; ++i) packed = bytes.concat(packed, bytes32(t.f[i]));
            structHash = keccak256(packed);
        }
        (address signer, ECDSA.RecoverError err,) = ECDSA.tryRecover(
            _hashTypedDataV4(structHash), uint8(body[at + 64]), bytes32(body[at:at + 32]),
            bytes32(body[at + 32:at + 64])
        );
        if (err != ECDSA.RecoverError.NoError) return (false, t);
        t.signer = signer;
        return (true, t);
    }

    function _transaction(Ctx memory c, bytes calldata body) internal view returns (bool) {
        (bool ok, Tx memory t) = _parse(body);
        if (!ok) return false;
        (bool exists, uint256 sender) = _indexOf(c, t.signer);
        if (!exists) return false; // unknown-account
        uint256 nonce = t.f[t.n - 1];
        uint256 accountKey = leafKey(ACCOUNT, sender, 0);
        if (_get(c, accountKey) != _hash2(uint160(t.signer), nonce)) return false; // nonce
        t.sender = sender;
        if (t.kind == 1) ok = _transfer(c, t);
        else if (t.kind == 2) ok = _mint(c, t);
        else if (t.kind == 3) ok = _transferNft(c, t);
        else if (t.kind == 4) ok = _swap(c, t);
        else if (t.kind == 5) ok = _addLiquidity(c, t);
        else if (t.kind == 6) ok = _removeLiquidity(c, t);
        else ok = _withdraw(c, t);
        if (!ok) return false;
        _set(c, accountKey, _hash2(uint160(t.signer), nonce + 1));
        return true;
    }

    function _transfer(Ctx memory c, Tx memory t) internal pure returns (bool) {
        (uint256 token, uint256 amount) = (t.f[0], t.f[2]);
        if (amount == 0) return false; // zero-amount
        if (_get(c, leafKey(TOKEN, token, 0)) == 0) return false; // unknown-token
        if (!_debit(c, _balanceKey(token, t.sender), amount)) return false; // balance
        return _credit(c, _balanceKey(token, _account(c, address(uint160(t.f[1])))), amount); // overflow
    }

    function _mint(Ctx memory c, Tx memory t) internal pure returns (bool) {
        uint256 nftKey = leafKey(NFT, t.sender, t.f[0]);
        if (_get(c, nftKey) != 0) return false; // nft-exists
        _set(c, nftKey, _account(c, address(uint160(t.f[1]))) + 1);
        return true;
    }

    function _transferNft(Ctx memory c, Tx memory t) internal pure returns (bool) {
        uint256 nftKey = leafKey(NFT, t.f[0], t.f[1]);
        uint256 owner = _get(c, nftKey);
        if (owner == 0 || owner - 1 != t.sender) return false; // unknown-nft, not-owner
        _set(c, nftKey, _account(c, address(uint160(t.f[2]))) + 1);
        return true;
    }

    function _poolKey(uint256 t0, uint256 t1) internal pure returns (uint256) {
        return leafKey(POOL, t0, t1);
    }

    /// @dev Uniswap v2 `getAmountOut` with the 0.3% fee; ok = false where it would overflow.
    function _amountOut(uint256 amountIn, uint256 rIn, uint256 rOut) internal pure returns (bool, uint256) {
        (bool a, uint256 withFee) = Math.tryMul(amountIn, 997);
        (bool b, uint256 num) = Math.tryMul(withFee, rOut);
        (bool d, uint256 scaled) = Math.tryMul(rIn, 1000);
        (bool e, uint256 den) = Math.tryAdd(scaled, withFee);
        if (!(a && b && d && e)) return (false, 0);
        return (true, num / den);
    }

    /// @dev Take `amount` from a balance leaf; false when it holds less. (Refused steps
    /// discard the whole context, so writing before a later check fails is harmless.)
    function _debit(Ctx memory c, uint256 key, uint256 amount) internal pure returns (bool) {
        uint256 held = _get(c, key);
        if (held < amount) return false;
        _set(c, key, held - amount);
        return true;
    }

    /// @dev Add `amount` to a balance leaf; false when it would overflow.
    function _credit(Ctx memory c, uint256 key, uint256 amount) internal pure returns (bool) {
        uint256 held = _get(c, key);
        if (held > type(uint256).max - amount) return false;
        _set(c, key, held + amount);
        return true;
    }

    function _swap(Ctx memory c, Tx memory t) internal pure returns (bool) {
        uint256 amountIn = t.f[2];
        if (amountIn == 0 || t.f[0] == t.f[1]) return false; // zero-amount, same-token
        bool zeroForOne = t.f[0] < t.f[1];
        uint256 poolKey = zeroForOne ? _poolKey(t.f[0], t.f[1]) : _poolKey(t.f[1], t.f[0]);
        uint256[] memory p = _open(c, poolKey, 3);
        if (p[2] == 0) return false; // unknown-pool
        uint256 rIn = zeroForOne ? p[0] : p[1];
        uint256 rOut = zeroForOne ? p[1] : p[0];
        if (rIn > type(uint256).max - amountIn) return false;
        (bool ok, uint256 out) = _amountOut(amountIn, rIn, rOut);
        if (!ok || out == 0 || out < t.f[3]) return false; // overflow, slippage
        if (!_debit(c, _balanceKey(t.f[0], t.sender), amountIn)) return false;
        if (!_credit(c, _balanceKey(t.f[1], t.sender), out)) return false;
        _set(c, poolKey, zeroForOne ? _hash3(rIn + amountIn, rOut - out, p[2]) : _hash3(rOut - out, rIn + amountIn, p[2]));
        return true;
    }

    function _addLiquidity(Ctx memory c, Tx memory t) internal pure returns (bool) {
        (uint256 t0, uint256 t1) = (t.f[0], t.f[1]);
        if (t0 >= t1 || t.f[2] == 0 || t.f[3] == 0) return false;
        if (!_debit(c, _balanceKey(t0, t.sender), t.f[2])) return false;
        if (!_debit(c, _balanceKey(t1, t.sender), t.f[3])) return false;
        uint256 poolKey = _poolKey(t0, t1);
        uint256[] memory p = _open(c, poolKey, 3);
        (bool ok, uint256 minted) = _sharesFor(p, t.f[2], t.f[3]);
        if (!ok || minted == 0 || minted < t.f[4]) return false; // overflow, slippage
        if (p[0] > type(uint256).max - t.f[2] || p[1] > type(uint256).max - t.f[3]
            || p[2] > type(uint256).max - minted) {
            return false;
        }
        _set(c, poolKey, _hash3(p[0] + t.f[2], p[1] + t.f[3], p[2] + minted));
        uint256 sharesKey = leafKey(SHARES, t0 << 32 | t1, t.sender);
        _set(c, sharesKey, _get(c, sharesKey) + minted);
        return true;
    }

    /// @dev Uniswap v2's shares for a deposit: isqrt(a0 * a1) first, then
    /// min(a0 * S / r0, a1 * S / r1); ok = false where a product would overflow.
    function _sharesFor(uint256[] memory p, uint256 a0, uint256 a1) internal pure returns (bool, uint256) {
        if (p[2] == 0) {
            (bool ok, uint256 product) = Math.tryMul(a0, a1);
            return (ok, ok ? Math.sqrt(product) : 0);
        }
        (bool ok0, uint256 m0) = Math.tryMul(a0, p[2]);
        (bool ok1, uint256 m1) = Math.tryMul(a1, p[2]);
        if (!(ok0 && ok1)) return (false, 0);
        return (true, Math.min(m0 / p[0], m1 / p[1]));
    }

    function _removeLiquidity(Ctx memory c, Tx memory t) internal pure returns (bool) {
        (uint256 t0, uint256 t1, uint256 shares) = (t.f[0], t.f[1], t.f[2]);
        if (t0 >= t1 || shares == 0) return false; // no pool has token0 >= token1
        uint256 poolKey = _poolKey(t0, t1);
        uint256[] memory p = _open(c, poolKey, 3);
        if (p[2] == 0) return false; // unknown-pool
        if (!_debit(c, leafKey(SHARES, t0 << 32 | t1, t.sender), shares)) return false;
        (bool ok0, uint256 m0) = Math.tryMul(shares, p[0]);
        (bool ok1, uint256 m1) = Math.tryMul(shares, p[1]);
        if (!(ok0 && ok1)) return false;
        (m0, m1) = (m0 / p[2], m1 / p[2]);
        if (m0 < t.f[3] || m1 < t.f[4]) return false; // slippage
        if (!_credit(c, _balanceKey(t0, t.sender), m0)) return false;
        if (!_credit(c, _balanceKey(t1, t.sender), m1)) return false;
        _set(c, poolKey, _hash3(p[0] - m0, p[1] - m1, p[2] - shares));
        return true;
    }

    function _withdraw(Ctx memory c, Tx memory t) internal pure returns (bool) {
        (uint256 token, uint256 amount) = (t.f[0], t.f[1]);
        if (amount == 0) return false; // zero-amount
        uint256 tokenKey = leafKey(TOKEN, token, 0);
        if (_get(c, tokenKey) == 0) return false; // unknown-token
        uint256[] memory l1 = _open(c, tokenKey, 1);
        if (!_debit(c, _balanceKey(token, t.sender), amount)) return false; // balance
        _loadMeta(c);
        _set(c, leafKey(WITHDRAW, c.meta.withdrawals, 0),
            uint256(keccak256(abi.encode(address(uint160(t.f[2])), address(uint160(l1[0])), amount))));
        c.meta.withdrawals += 1;
        c.meta.dirty = true;
        return true;
    }
}

"""RollupProver.sol against the Python machine: the same step gives the same root.

Differential: random histories of every step kind (valid and refused, deposits, forced
steps, garbage) run through ``layerlab.l2.rollup.machine``; each step is also executed by
the on-chain one-step prover from the witness ``witness.py`` builds, and the roots must be
equal. Then the attacks on the prover itself: made-up leaves, a missing leaf, a write proof
of another leaf, a forged withdrawal proof. py-evm runs in process (eth-tester).
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from typing import Any

import pytest
from eth_abi import decode as abi_decode
from eth_abi import encode as abi_encode
from eth_account import Account
from web3 import Web3
from web3.contract import Contract
from web3.exceptions import ContractCustomError, ContractLogicError

from layerlab.contracts import compile_all, deploy
from layerlab.crypto.eip712 import Domain
from layerlab.l2.rollup.machine import ETH, RollupState, apply_step
from layerlab.l2.rollup.txs import (
    AddLiquidity,
    Deposit,
    L2Tx,
    MintNFT,
    RemoveLiquidity,
    Swap,
    Transfer,
    TransferNFT,
    Withdraw,
    rollup_domain,
    sign_tx,
)
from layerlab.l2.rollup.witness import PROOF_ABI, compute_step_witness, prove_withdrawal

pytestmark = pytest.mark.slow

try:
    from eth_tester.exceptions import TransactionFailed

    REVERTED: tuple[type[Exception], ...] = (ContractLogicError, ContractCustomError, TransactionFailed)
except ImportError:  # pragma: no cover
    REVERTED = (ContractLogicError, ContractCustomError)

KEYS = [bytes([i + 7]) * 32 for i in range(5)]
ADDR = [bytes.fromhex(Account.from_key(k).address[2:]) for k in KEYS]
TOKEN_L1 = b"\xab" * 20
NEWCOMERS = [bytes([0xE0 + i]) * 20 for i in range(6)]


@pytest.fixture(scope="module")
def prover() -> Iterator[tuple[Contract, Domain]]:
    pytest.importorskip("eth_tester", reason="eth-tester[py-evm] is not installed")
    from web3 import EthereumTesterProvider

    w3 = Web3(EthereumTesterProvider())
    contract = deploy(w3, compile_all()["RollupProver"], sender=w3.eth.accounts[0])
    domain = rollup_domain(w3.eth.chain_id, bytes.fromhex(contract.address[2:]))
    yield contract, domain


def execute(contract: Contract, pre_root: int, step: bytes, witness: bytes) -> int:
    return int.from_bytes(contract.functions.executeStep(pre_root.to_bytes(32, "big"), step,
                                                         witness).call(), "big")


def test_domain_separator_is_the_python_one(prover: tuple[Contract, Domain]) -> None:
    contract, domain = prover
    assert bytes(contract.functions.domainSeparator().call()) == domain.separator


class Driver:
    """Random steps over a small world, valid about half the time."""

    def __init__(self, rng: random.Random, domain: Domain) -> None:
        self.rng, self.domain, self.state = rng, domain, RollupState()

    def deposit(self) -> bytes:
        token = self.rng.choice([0, 1])
        l1 = TOKEN_L1 if token == 1 else b"\0" * 20
        to = self.rng.choice(ADDR + NEWCOMERS[:2])
        amount = self.rng.choice([1, 10**6, 10**18, 2**255]) if self.rng.random() < 0.1 \
            else self.rng.randrange(1, 10**7)
        return Deposit(self.state.next_deposit, ADDR[0], to, l1, token, amount).encode()

    def transaction(self) -> bytes:
        rng = self.rng
        known = [i for i, a in enumerate(ADDR) if a in self.state.index_of]
        who = rng.choice(known) if known and rng.random() < 0.9 else rng.randrange(len(KEYS))
        nonce = self.state.nonce(ADDR[who]) + (rng.choice([-1, 1]) if rng.random() < 0.08 else 0)
        nonce = max(nonce, 0)
        to = rng.choice(ADDR + NEWCOMERS)
        tok = rng.choice([0, 0, 1, 1, 2])
        held = self.state.balance(tok, ADDR[who])
        amt = rng.randrange(1, held // 2 + 2) if rng.random() < 0.75 else \
            rng.choice([0, 1, held + 1, 2**256 - 1])
        kind = rng.choice([0, 1, 2, 3, 3, 4, 5, 5, 6])
        tx: L2Tx
        if kind == 0:
            tx = Transfer(nonce=nonce, token=tok, to=to, amount=amt)
        elif kind == 1:
            tx = MintNFT(nonce=nonce, token_id=rng.randrange(4), to=to)
        elif kind == 2:
            mine = [k for k, owner in self.state.nfts.items()
                    if owner == self.state.index_of.get(ADDR[who])]
            collection, token_id = rng.choice(mine) if mine and rng.random() < 0.8 else \
                (rng.randrange(len(KEYS)), rng.randrange(4))
            tx = TransferNFT(nonce=nonce, collection=collection, token_id=token_id, to=to)
        elif kind == 3:
            a, b = rng.sample([0, 1, 2], 2) if rng.random() < 0.9 else (0, 0)
            tx = Swap(nonce=nonce, token_in=a, token_out=b, amount_in=amt,
                      min_out=rng.choice([0, 0, 1, 10**9]))
        elif kind == 4:
            t0, t1 = (0, 1) if rng.random() < 0.85 else (1, 0)
            cap0 = self.state.balance(0, ADDR[who]) // 3 + 2
            cap1 = self.state.balance(1, ADDR[who]) // 3 + 2
            tx = AddLiquidity(nonce=nonce, token0=t0, token1=t1, amount0=rng.randrange(1, cap0),
                              amount1=rng.randrange(1, cap1), min_shares=rng.choice([0, 0, 10**9]))
        elif kind == 5:
            held = self.state.shares.get((0, 1, self.state.index_of.get(ADDR[who], -1)), 0)
            tx = RemoveLiquidity(nonce=nonce, token0=0, token1=1,
                                 shares=rng.choice([held, held // 2, held + 1, 1]),
                                 min0=0, min1=rng.choice([0, 10**12]))
        else:
            tx = Withdraw(nonce=nonce, token=tok, amount=amt, recipient=to)
        signer = KEYS[who] if rng.random() < 0.95 else KEYS[(who + 1) % len(KEYS)]
        step = sign_tx(tx, signer, self.domain).encode()
        roll = rng.random()
        if roll < 0.05:
            return b"\xf0" + step
        if roll < 0.07:
            return step[:-1]  # malformed
        if roll < 0.08:
            return step[:-65] + b"\x00" * 64 + b"\x1b"  # a signature that recovers nothing
        return step

    def step(self) -> bytes:
        return self.deposit() if self.rng.random() < 0.25 else self.transaction()


def test_the_prover_computes_the_machines_root_for_every_step(
        prover: tuple[Contract, Domain]) -> None:
    contract, domain = prover
    kinds: dict[str, int] = {}
    checks: set[str] = set()
    for seed in range(3):
        _run(contract, domain, random.Random(seed), kinds, checks)
    # the histories really exercised the machine: every kind succeeded, and most refusals
    assert sorted(kinds) == sorted(["Deposit", "Transfer", "MintNFT", "TransferNFT", "Swap",
                                    "AddLiquidity", "RemoveLiquidity", "Withdraw"]), kinds
    assert {"signature", "nonce", "balance", "slippage", "unknown-account", "unknown-pool",
            "malformed", "not-owner", "zero-amount"} <= checks, checks


def _run(contract: Contract, domain: Domain, rng: random.Random, kinds: dict[str, int],
         checks: set[str]) -> None:
    driver = Driver(rng, domain)
    for _ in range(150):
        step = driver.step()
        w = compute_step_witness(driver.state, step, domain)
        assert w.post_root == driver.state.root
        on_chain = execute(contract, w.pre_root, step, w.witness)
        assert on_chain == w.post_root, (w.receipt, step.hex())
        if w.receipt.ok:
            kinds[w.receipt.kind] = kinds.get(w.receipt.kind, 0) + 1
        else:
            checks.add(w.receipt.check)
            assert on_chain == w.pre_root or w.receipt.kind == "Deposit"


def _world(domain: Domain) -> RollupState:
    state = RollupState()
    for i, (to, token, amount) in enumerate([(ADDR[0], ETH, 1000), (ADDR[0], 1, 5000),
                                             (ADDR[1], ETH, 10)]):
        apply_step(state, Deposit(i, to, to, TOKEN_L1 if token else b"\0" * 20, token,
                                  amount).encode(), domain)
    return state


def _transfer(state: RollupState, domain: Domain, amount: int = 300) -> bytes:
    return sign_tx(Transfer(nonce=state.nonce(ADDR[0]), token=ETH, to=ADDR[1], amount=amount),
                   KEYS[0], domain).encode()


def _decode(witness: bytes) -> list[Any]:
    return [list(x) for x in abi_decode([f"({PROOF_ABI},uint256[])[]", f"{PROOF_ABI}[]"], witness)]


def _encode(reads: list[Any], writes: list[Any]) -> bytes:
    return abi_encode([f"({PROOF_ABI},uint256[])[]", f"{PROOF_ABI}[]"], [reads, writes])


def test_made_up_leaves_revert(prover: tuple[Contract, Domain]) -> None:
    """A challenger who claims the sender holds more than it does cannot prove it."""
    contract, domain = prover
    state = _world(domain)
    step = _transfer(state, domain, 2000)  # more than the 1000 held: a no-op
    w = compute_step_witness(state, step, domain)
    assert not w.receipt.ok and execute(contract, w.pre_root, step, w.witness) == w.pre_root
    reads, writes = _decode(w.witness)
    forged = []
    for proof, opening in reads:
        proof = list(proof)
        if proof[2] and proof[3] == 1000:
            proof[3] = 5000  # the balance leaf, made up
        forged.append((tuple(proof), list(opening)))
    with pytest.raises(REVERTED):
        execute(contract, w.pre_root, step, _encode(forged, writes))


def test_a_missing_leaf_and_a_foreign_write_proof_revert(prover: tuple[Contract, Domain]) -> None:
    contract, domain = prover
    state = _world(domain)
    step = _transfer(state, domain)
    w = compute_step_witness(state, step, domain)
    assert w.receipt.ok and w.writes >= 2
    assert execute(contract, w.pre_root, step, w.witness) == w.post_root
    reads, writes = _decode(w.witness)
    with pytest.raises(REVERTED):
        execute(contract, w.pre_root, step, _encode(reads[:-1], writes))
    with pytest.raises(REVERTED):
        execute(contract, w.pre_root, step, _encode(reads, [writes[1], writes[0], *writes[2:]]))
    with pytest.raises(REVERTED):
        execute(contract, w.pre_root, step, _encode(reads, writes[:-1]))
    with pytest.raises(REVERTED):  # the witness of another root
        execute(contract, w.post_root, step, w.witness)


def test_a_withdrawal_is_proven_against_the_state_root(prover: tuple[Contract, Domain]) -> None:
    contract, domain = prover
    state = _world(domain)
    recipient = Web3.to_checksum_address(NEWCOMERS[0])
    step = sign_tx(Withdraw(nonce=0, token=1, amount=42, recipient=NEWCOMERS[0]), KEYS[0],
                   domain).encode()
    assert apply_step(state, step, domain).withdrawal_id == 0
    proof = prove_withdrawal(state, 0)
    root = state.root.to_bytes(32, "big")
    token = Web3.to_checksum_address(TOKEN_L1)
    check = contract.functions.isWithdrawal
    assert check(root, 0, recipient, token, 42, proof).call()
    assert not check(root, 0, recipient, token, 43, proof).call()
    assert not check(root, 1, recipient, token, 42, proof).call()
    assert not check(root, 0, Web3.to_checksum_address(ADDR[0]), token, 42, proof).call()
    assert not check(b"\x01" * 32, 0, recipient, token, 42, proof).call()


def test_gas_of_one_step_proofs(prover: tuple[Contract, Domain]) -> None:
    """What a one-step proof costs on L1 (printed; bounded so a regression shows)."""
    contract, domain = prover
    state = _world(domain)
    gas = {}
    for name, step in [
        ("transfer", _transfer(state, domain)),
        ("transfer-new", sign_tx(Transfer(nonce=0, token=ETH, to=NEWCOMERS[3], amount=1),
                                 KEYS[1], domain).encode()),
    ]:
        w = compute_step_witness(state, step, domain)
        assert w.receipt.ok
        gas[name] = contract.functions.executeStep(w.pre_root.to_bytes(32, "big"), step,
                                                   w.witness).estimate_gas()
    print("one-step proof gas:", gas)
    assert all(30_000 < g < 600_000 for g in gas.values()), gas

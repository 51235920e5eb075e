"""The Plasma child chain's L1 contract, ``PlasmaChain.sol``, through the shared L1 client.

Plasma (Poon and Buterin, "Plasma: Scalable Autonomous Smart Contracts", 2017) keeps the
child chain's transactions off L1: the operator commits only each block's root. Safety
rests on *exits*: anyone holding an output can take its value back to L1 after a waiting
period, during which anyone who knows better can challenge. This module is the client of
the two exit games of ``contracts/plasma/PlasmaChain.sol``:

- **Standard exits** (Buterin, "Minimal Viable Plasma", ethresear.ch, 2018): the owner of
  an output included in a committed block exits it with a bond
  (:meth:`PlasmaContract.start_standard_exit`); a transaction the owner signed that spends
  it challenges the exit and takes the bond (:meth:`~PlasmaContract.challenge_standard_exit`);
  after the period exits are paid oldest first (:meth:`~PlasmaContract.process_exits`), by
  OMG's *exitable timestamp* then position, so the outputs an invalid block made up are
  paid after every honest output older than it.
- **In-flight exits** (Fichter et al., "More Viable Plasma", ethresear.ch, 2018, as OMG's
  ``PaymentExitGame`` built them): a transaction whose block was withheld exits as a whole
  (:meth:`~PlasmaContract.start_in_flight_exit`); its input and output owners piggyback
  what they want paid (:meth:`~PlasmaContract.piggyback`); a competitor spending the same
  input makes it non-canonical (:meth:`~PlasmaContract.challenge_not_canonical`), its own
  older inclusion makes it canonical again (:meth:`~PlasmaContract.respond_canonical`);
  piggybacks of spent inputs or outputs are challenged away
  (:meth:`~PlasmaContract.challenge_ife_input_spent`,
  :meth:`~PlasmaContract.challenge_ife_output_spent`). Canonical transactions pay their
  piggybacked outputs, non-canonical ones their piggybacked inputs.

Transactions, positions and proofs are those of :mod:`layerlab.l2.plasma.types`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from web3 import Web3
from web3.contract import Contract
from web3.types import TxReceipt

from layerlab.contracts import deploy, get_contract, load_artifact
from layerlab.crypto.eip712 import Domain
from layerlab.l2.l1client import ContractEvent, L1Contract, ProtocolTxError
from layerlab.l2.plasma.types import (
    ETH,
    PlasmaError,
    SignedTransaction,
    Transaction,
    plasma_domain,
)

__all__ = [
    "MAINNET_LIKE",
    "MINIMAL",
    "InFlightExit",
    "PlasmaConfig",
    "PlasmaContract",
    "PlasmaTxError",
    "StandardExit",
    "deploy_plasma",
    "in_flight_exit_id",
]

ETHER: Final = 10**18
PROCESS_BASE_GAS: Final = 60_000
PROCESS_EXIT_GAS: Final = 1_100_000
"""Upper bound of one exit in ``processExits``: an in-flight exit of 4 inputs and 4 outputs
makes up to 17 ETH payments, each forwarding at most ``PAYMENT_GAS`` (50k) to a recipient
that may burn it all, plus its storage (only the gas used is charged)."""


class PlasmaTxError(ProtocolTxError, PlasmaError):
    """A ``PlasmaChain`` call or transaction was refused (its custom error by name in
    ``error_name``, which is also the :class:`PlasmaError` ``check``)."""


@dataclass(frozen=True, slots=True)
class PlasmaConfig:
    """``PlasmaChain.Config``: the exit period (seconds) and the three bonds (wei)."""

    min_exit_period: int
    exit_bond: int
    piggyback_bond: int
    in_flight_exit_bond: int

    def as_tuple(self) -> tuple[int, int, int, int]:
        return (self.min_exit_period, self.exit_bond, self.piggyback_bond, self.in_flight_exit_bond)


MINIMAL: Final = PlasmaConfig(min_exit_period=60, exit_bond=ETHER // 100,
                              piggyback_bond=ETHER // 200, in_flight_exit_bond=ETHER // 50)
"""For tests: a one-minute period (child-block outputs wait two)."""
MAINNET_LIKE: Final = PlasmaConfig(min_exit_period=7 * 24 * 3600, exit_bond=14 * ETHER // 100,
                                   piggyback_bond=14 * ETHER // 100,
                                   in_flight_exit_bond=37 * ETHER // 100)
"""OMG Network's mainnet: a 7-day minimum exit period; bonds of the order of its
(adjustable) 0.14 ETH standard-exit and piggyback bonds and 0.37 ETH in-flight-exit bond."""


@dataclass(frozen=True, slots=True)
class StandardExit:
    """A standard exit as stored (its id is the exited output's position)."""

    owner: str
    exitable_at: int
    token: str
    queue_id: int
    amount: int
    output_id: bytes

    @property
    def exists(self) -> bool:
        return int(self.owner, 16) != 0


@dataclass(frozen=True, slots=True)
class InFlightExit:
    """An in-flight exit as stored (``inputs``: ``(utxoPos, outputId, owner, amount)``,
    ``outputs``: ``(owner, amount)``; piggybacks are bit sets by index)."""

    tx_hash: bytes
    starter: str
    exitable_at: int
    token: str
    queue_id: int
    input_count: int
    output_count: int
    piggybacked_inputs: int
    piggybacked_outputs: int
    challenger: str
    canonical: bool
    finalized: bool
    competitor_pos: int
    inputs: tuple[tuple[int, bytes, str, int], ...]
    outputs: tuple[tuple[str, int], ...]

    @property
    def exists(self) -> bool:
        return int(self.starter, 16) != 0


def in_flight_exit_id(tx: Transaction) -> int:
    """``uint160(uint256(keccak256(txBytes)))``: one in-flight exit per transaction."""
    return int.from_bytes(tx.tx_hash, "big") & (2**160 - 1)


def deploy_plasma(w3: Web3, deployer: str, operator: str,
                  config: PlasmaConfig = MINIMAL) -> PlasmaContract:
    """Deploy ``PlasmaChain`` from ``deployer`` with ``operator`` committing blocks."""
    contract = deploy(w3, load_artifact("PlasmaChain"), operator, config.as_tuple(), sender=deployer)
    return PlasmaContract(w3, contract)


def _token(token: bytes | str) -> str:
    if isinstance(token, bytes):
        token = "0x" + token.hex()
    return Web3.to_checksum_address(token)


def _sig(signed: SignedTransaction, index: int) -> bytes:
    if not 0 <= index < len(signed.signatures):
        raise PlasmaError("signature", f"input {index}: the transaction has "
                                       f"{len(signed.signatures)} signatures")
    return signed.signatures[index]


class PlasmaContract:
    """``PlasmaChain`` through :class:`L1Contract`; each move takes the sender's key first
    and returns its receipt (and the exit id where it makes one)."""

    def __init__(self, w3: Web3, contract: Contract) -> None:
        self.w3 = w3
        self.l1 = L1Contract(w3, contract, name="PlasmaChain", error=PlasmaTxError)
        self.fn = contract.functions
        self.domain: Domain = plasma_domain(w3.eth.chain_id, bytes.fromhex(contract.address[2:]))

    @classmethod
    def at(cls, w3: Web3, address: str) -> PlasmaContract:
        return cls(w3, get_contract(w3, load_artifact("PlasmaChain"), address))

    @property
    def address(self) -> str:
        return str(self.l1.address)

    # -- reads
    def config(self) -> PlasmaConfig:
        return PlasmaConfig(*(int(v) for v in self.l1.call("config")))

    def operator(self) -> str:
        return str(self.l1.call("operator"))

    def next_child_block(self) -> int:
        return int(self.l1.call("nextChildBlock"))

    def block(self, blknum: int) -> tuple[bytes, int]:
        """``(root, timestamp)`` of a committed child or deposit block (timestamp 0: none)."""
        root, timestamp = self.l1.call("blocks", blknum)
        return bytes(root), int(timestamp)

    def exit(self, exit_id: int) -> StandardExit:
        e = self.l1.call("exits", exit_id)
        return StandardExit(str(e[0]), int(e[1]), str(e[2]), int(e[3]), int(e[4]), bytes(e[5]))

    def in_flight_exit(self, tx: Transaction | bytes) -> InFlightExit:
        if isinstance(tx, bytes):
            tx = Transaction.decode(tx)
        f = self.l1.call("inFlightExits", in_flight_exit_id(tx))
        inputs = tuple((int(i[0]), bytes(i[1]), str(i[2]), int(i[3])) for i in f[13][:int(f[5])])
        outputs = tuple((str(o[0]), int(o[1])) for o in f[14][:int(f[6])])
        return InFlightExit(bytes(f[0]), str(f[1]), int(f[2]), str(f[3]), int(f[4]), int(f[5]),
                            int(f[6]), int(f[7]), int(f[8]), str(f[9]), bool(f[10]), bool(f[11]),
                            int(f[12]), inputs, outputs)

    def is_exited(self, output_id: bytes) -> bool:
        return bool(self.l1.call("exited", output_id))

    def queue_length(self, token: bytes | str = ETH) -> int:
        return int(self.l1.call("queueLength", _token(token)))

    def tx_signer(self, signed: SignedTransaction, index: int = 0) -> str:
        """The address the contract recovers from signature ``index`` (zero address: none)."""
        return str(self.l1.call("txSigner", signed.tx.encoded, _sig(signed, index)))

    def tx_digest(self, tx: Transaction) -> bytes:
        return bytes(self.l1.call("txDigest", tx.encoded))

    def events(self, from_block: int = 0) -> list[ContractEvent]:
        return self.l1.events(from_block)

    def _event(self, receipt: TxReceipt, name: str) -> ContractEvent:
        found = [e for e in self.l1.receipt_events(receipt) if e.name == name]
        if len(found) != 1:
            raise PlasmaTxError(f"PlasmaChain: expected one {name} event, found {len(found)}")
        return found[0]

    # -- the operator
    def submit_block(self, key: bytes, root: bytes, blknum: int | None = None
                     ) -> tuple[TxReceipt, int]:
        """Commit child block ``blknum``'s root (operator only; default: the next one, read
        from the contract); returns its number. A number that is not the next is refused
        (``WrongBlockNumber``), so a retried submission never commits a root twice."""
        if blknum is None:
            blknum = self.next_child_block()
        receipt = self.l1.transact(key, "submitBlock", self.fn.submitBlock(blknum, root))
        return receipt, int(self._event(receipt, "BlockSubmitted").args["blknum"])

    # -- deposits
    def deposit(self, key: bytes, amount: int) -> tuple[TxReceipt, int]:
        """Deposit ``amount`` wei; returns the receipt and the deposit's block number (its
        output is at ``encode_position(blknum, 0, 0)``, its transaction is
        ``deposit_transaction(blknum, sender, ETH, amount)``)."""
        receipt = self.l1.transact(key, "deposit", self.fn.deposit(), amount)
        return receipt, int(self._event(receipt, "DepositCreated").args["blknum"])

    def deposit_token(self, key: bytes, token: bytes | str, amount: int) -> tuple[TxReceipt, int]:
        """Deposit ``amount`` of an ERC-20 approved to this contract beforehand."""
        receipt = self.l1.transact(key, "depositToken", self.fn.depositToken(_token(token), amount))
        return receipt, int(self._event(receipt, "DepositCreated").args["blknum"])

    # -- standard exits (Plasma MVP)
    def start_standard_exit(self, key: bytes, utxo_pos: int, tx: Transaction,
                            proof: Sequence[int]) -> tuple[TxReceipt, int]:
        """Exit the output at ``utxo_pos`` of ``tx``, ``proof`` its inclusion in its block
        (``prove_inclusion``), with the exit bond; returns the exit id (= ``utxo_pos``)."""
        bond = self.config().exit_bond
        receipt = self.l1.transact(key, "startStandardExit",
                                   self.fn.startStandardExit(utxo_pos, tx.encoded, list(proof)), bond)
        return receipt, int(self._event(receipt, "ExitStarted").args["exitId"])

    def challenge_standard_exit(self, key: bytes, exit_id: int, spending: SignedTransaction,
                                input_index: int) -> TxReceipt:
        """The exited output is spent: ``spending``'s input ``input_index`` is it, and the
        exit's owner signed ``spending``. The exit is deleted, its bond is the sender's."""
        return self.l1.transact(key, "challengeStandardExit", self.fn.challengeStandardExit(
            exit_id, spending.tx.encoded, input_index, _sig(spending, input_index)))

    def process_exits(self, key: bytes, token: bytes | str = ETH, max_count: int = 16) -> TxReceipt:
        """Pay up to ``max_count`` of ``token``'s exits whose time has come, by priority.

        Its gas limit is a bound, not an estimate: which exits are due depends on the
        including block's timestamp, and an estimate made on an earlier one may pop fewer
        (measured: ~60k gas a standard exit, ~150k an in-flight exit with one piggyback)."""
        gas = PROCESS_BASE_GAS + max(max_count, 0) * PROCESS_EXIT_GAS
        gas = min(gas, int(self.w3.eth.get_block("latest")["gasLimit"]))
        return self.l1.transact(key, "processExits", self.fn.processExits(_token(token), max_count),
                                gas=gas)

    # -- in-flight exits (MoreVP)
    def start_in_flight_exit(self, key: bytes, signed_tx: SignedTransaction,
                             input_txs: Sequence[Transaction],
                             input_proofs: Sequence[Sequence[int]]) -> tuple[TxReceipt, int]:
        """Exit ``signed_tx`` whether or not its block is available: ``input_txs[i]`` created
        input ``i`` and ``input_proofs[i]`` is its inclusion; with the in-flight bond.
        Returns the exit id (:func:`in_flight_exit_id`)."""
        bond = self.config().in_flight_exit_bond
        fn = self.fn.startInFlightExit(signed_tx.tx.encoded, [t.encoded for t in input_txs],
                                       [list(p) for p in input_proofs], list(signed_tx.signatures))
        receipt = self.l1.transact(key, "startInFlightExit", fn, bond)
        return receipt, int(self._event(receipt, "InFlightExitStarted").args["exitId"])

    def piggyback(self, key: bytes, tx: Transaction, index: int, is_output: bool) -> TxReceipt:
        """Ask for input (``is_output`` False) or output ``index`` of the in-flight ``tx``
        to be paid to its owner, the sender, with the piggyback bond."""
        bond = self.config().piggyback_bond
        return self.l1.transact(key, "piggybackInFlightExit",
                                self.fn.piggybackInFlightExit(tx.encoded, index, is_output), bond)

    def challenge_not_canonical(self, key: bytes, tx: Transaction, input_index: int,
                                competitor: SignedTransaction, competitor_input_index: int,
                                competitor_pos: int = 0,
                                competitor_proof: Sequence[int] = ()) -> TxReceipt:
        """Show ``competitor``, signed by input ``input_index``'s owner and spending it too,
        included at ``competitor_pos`` (0: known but not included). ``tx`` becomes
        non-canonical: its piggybacked inputs, not outputs, will be paid."""
        fn = self.fn.challengeInFlightExitNotCanonical(
            tx.encoded, input_index, competitor.tx.encoded, competitor_input_index, competitor_pos,
            list(competitor_proof), _sig(competitor, competitor_input_index))
        return self.l1.transact(key, "challengeInFlightExitNotCanonical", fn)

    def respond_canonical(self, key: bytes, tx: Transaction, tx_pos: int,
                          proof: Sequence[int]) -> TxReceipt:
        """Show ``tx`` included at ``tx_pos`` (``blknum * 1e9 + txindex * 1e4``), older than
        the competitor: it is canonical again."""
        return self.l1.transact(key, "respondToNonCanonicalChallenge",
                                self.fn.respondToNonCanonicalChallenge(tx.encoded, tx_pos, list(proof)))

    def challenge_ife_input_spent(self, key: bytes, tx: Transaction, input_index: int,
                                  spending: SignedTransaction, spending_input_index: int) -> TxReceipt:
        """Piggybacked input ``input_index`` of ``tx`` was spent by ``spending`` (another
        transaction its owner signed): it is not paid, its bond is the sender's."""
        fn = self.fn.challengeInFlightExitInputSpent(
            tx.encoded, input_index, spending.tx.encoded, spending_input_index,
            _sig(spending, spending_input_index))
        return self.l1.transact(key, "challengeInFlightExitInputSpent", fn)

    def challenge_ife_output_spent(self, key: bytes, tx: Transaction, tx_pos: int,
                                   tx_proof: Sequence[int], output_index: int,
                                   spending: SignedTransaction,
                                   spending_input_index: int) -> TxReceipt:
        """``tx`` is included at ``tx_pos`` and its piggybacked output ``output_index`` was
        spent by ``spending``, signed by its owner: it is not paid, its bond is the sender's."""
        fn = self.fn.challengeInFlightExitOutputSpent(
            tx.encoded, tx_pos, list(tx_proof), output_index, spending.tx.encoded,
            spending_input_index, _sig(spending, spending_input_index))
        return self.l1.transact(key, "challengeInFlightExitOutputSpent", fn)


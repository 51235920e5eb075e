"""The shared L1 contract client against a real node process: typed reverts, receipts,
nonces and events."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from eth_account import Account
from web3 import Web3

from layerlab.contracts import compile_all, deploy
from layerlab.crypto.keys import derive_dev_accounts
from layerlab.errors import LayerlabError
from layerlab.l2.l1client import L1Contract, L1TxError

pytestmark = pytest.mark.slow


class ToyError(L1TxError):
    """A protocol's own error class, to check the client raises the one it is given."""


@pytest.fixture(scope="module")
def reverter(w3: Web3) -> Iterator[tuple[Web3, L1Contract, bytes]]:
    deployer = derive_dev_accounts()[0]
    contract = deploy(w3, compile_all()["Reverter"], sender=deployer.address)
    key = bytes(derive_dev_accounts()[5].private_key)
    yield w3, L1Contract(w3, contract, name="Reverter", error=ToyError), key


def test_custom_error_is_decoded_with_named_arguments(reverter) -> None:
    _, client, _ = reverter
    with pytest.raises(ToyError) as err:
        client.call("failWithCode", 42)
    assert err.value.error_name == "Nope" and err.value.error_args == {"code": 42}
    assert isinstance(err.value, LayerlabError)
    assert "Nope(code=42)" in str(err.value)


def test_require_strings_are_decoded(reverter) -> None:
    _, client, _ = reverter
    with pytest.raises(ToyError) as err:
        client.call("requirePositive", 0)
    assert err.value.error_name == "Error"
    assert err.value.error_args == {"reason": "x must be positive"}
    assert client.call("requirePositive", 5) == 5


def test_transactions_get_nonces_receipts_and_events(reverter) -> None:
    w3, client, key = reverter
    sender = Account.from_key(key).address
    receipts = [client.transact(key, "set", client.contract.functions.set(v)) for v in (7, 8)]
    assert [r["status"] for r in receipts] == [1, 1]
    assert client.call("get") == 8
    events = client.receipt_events(receipts[1])
    assert [(e.name, e.args["value"], e.args["who"]) for e in events] == [("Set", 8, sender)]
    history = client.events(0)
    assert [e.args["value"] for e in history if e.name == "Set"][-2:] == [7, 8]
    assert w3.eth.get_transaction_count(sender) >= 2


def test_a_refused_transaction_raises_the_contracts_reason(reverter) -> None:
    _, client, key = reverter
    with pytest.raises(ToyError) as err:
        client.transact(key, "failWithCode", client.contract.functions.failWithCode(3))
    assert err.value.error_name == "Nope" and err.value.error_args == {"code": 3}


def test_undecodable_payloads_are_reported_raw(reverter) -> None:
    _, client, _ = reverter
    assert client.decode_error(b"\x12\x34\x56\x78" + b"\0" * 32) == (None, {})
    assert client.decode_error(b"\x01") == (None, {})

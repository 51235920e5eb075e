"""crypto/eip712: digests equal eth-account's reference encoder; signatures round-trip."""

from __future__ import annotations

import pytest
from eth_account import Account
from eth_account.messages import encode_typed_data
from hypothesis import given, settings
from hypothesis import strategies as st

from layerlab.crypto.eip712 import Domain, StructType, is_signed_by, recover_signer, sign_digest
from layerlab.crypto.secp256k1 import BadSignature

KEY = bytes.fromhex("ac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80")
ADDRESS = bytes.fromhex("f39fd6e51aad88f6f4ce6ab8827279cfffb92266")

TRANSFER = StructType("Transfer", (
    ("address", "to"), ("uint256", "amount"), ("uint64", "nonce"), ("bytes", "memo"),
    ("string", "note"), ("bytes32", "tag"),
))
PERSON = StructType("Person", (("string", "name"), ("address", "wallet")))
MAIL = StructType("Mail", (("Person", "from"), ("Person", "to"), ("string", "contents")),
                  referenced=(PERSON,))


def _reference(domain: Domain, primary: str, types: dict[str, list[dict[str, str]]],
               message: dict[str, object]) -> bytes:
    signable = encode_typed_data(full_message={
        "types": {"EIP712Domain": [
            {"name": "name", "type": "string"}, {"name": "version", "type": "string"},
            {"name": "chainId", "type": "uint256"}, {"name": "verifyingContract", "type": "address"},
        ], **types},
        "primaryType": primary,
        "domain": domain.as_typed_data_domain(),
        "message": message,
    })
    return bytes(Account.sign_message(signable, KEY).message_hash)


@settings(max_examples=40, deadline=None)
@given(to=st.binary(min_size=20, max_size=20), amount=st.integers(0, 2**256 - 1),
       nonce=st.integers(0, 2**64 - 1), memo=st.binary(max_size=70), note=st.text(max_size=20),
       tag=st.binary(min_size=32, max_size=32), chain_id=st.integers(1, 2**64))
def test_digest_equals_eth_account(to: bytes, amount: int, nonce: int, memo: bytes, note: str,
                                   tag: bytes, chain_id: int) -> None:
    domain = Domain("layerlab-test", "1", chain_id, b"\x11" * 20)
    ours = domain.digest(TRANSFER.hash_struct([to, amount, nonce, memo, note, tag]))
    types = {"Transfer": [{"name": n, "type": t} for t, n in TRANSFER.members]}
    ref = _reference(domain, "Transfer", types, {
        "to": "0x" + to.hex(), "amount": amount, "nonce": nonce, "memo": memo, "note": note,
        "tag": tag,
    })
    assert ours == ref


def test_nested_struct_matches_the_eip_example() -> None:
    """EIP-712's own Mail example: encodeType appends the referenced Person type."""
    assert MAIL.encoded_type == (
        "Mail(Person from,Person to,string contents)Person(string name,address wallet)")
    domain = Domain("Ether Mail", "1", 1, bytes.fromhex("CcCCccccCCCCcCCCCCCcCcCccCcCCCcCcccccccC"))
    alice = PERSON.hash_struct(["Cow", bytes.fromhex("CD2a3d9F938E13CD947Ec05AbC7FE734Df8DD826")])
    bob = PERSON.hash_struct(["Bob", bytes.fromhex("bBbBBBBbbBBBbbbBbbBbbbbBBbBbbbbBbBbbBBbB")])
    digest = domain.digest(MAIL.hash_struct([alice, bob, "Hello, Bob!"]))
    # the digest printed in EIP-712's reference implementation (Example.js)
    assert digest.hex() == "be609aee343fb3c4b28e1df9e632fca64fcfaede20f02e86244efddf30957bd2"


def test_sign_and_recover() -> None:
    domain = Domain("layerlab-test", "1", 31337, b"\x22" * 20)
    digest = domain.digest(TRANSFER.hash_struct([b"\x01" * 20, 5, 0, b"", "", b"\x00" * 32]))
    sig = sign_digest(digest, KEY)
    assert recover_signer(digest, sig) == ADDRESS
    assert is_signed_by(digest, sig, ADDRESS)
    other = Domain("layerlab-test", "1", 31338, b"\x22" * 20).digest(
        TRANSFER.hash_struct([b"\x01" * 20, 5, 0, b"", "", b"\x00" * 32]))
    assert not is_signed_by(other, sig, ADDRESS)  # signed for another chain


@pytest.mark.parametrize("bad", [b"", b"\x00" * 64, b"\x01" * 64 + b"\x1d"])
def test_malformed_signatures_are_refused(bad: bytes) -> None:
    with pytest.raises(BadSignature):
        recover_signer(b"\x00" * 32, bad)
    assert not is_signed_by(b"\x00" * 32, bad, ADDRESS)


def test_domain_checks_contract_length() -> None:
    with pytest.raises(ValueError, match="20 bytes"):
        Domain("x", "1", 1, b"\x00" * 19)

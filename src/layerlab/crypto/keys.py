"""Development keys derived from a BIP-39 mnemonic (BIP-32/BIP-44 path m/44'/60'/0'/0/i).

The default mnemonic "test test ... junk" gives the same ten funded accounts that Anvil
and Hardhat print, so wallets and scripts written for them work unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from eth_account import Account
from eth_account.hdaccount import key_from_seed, seed_from_mnemonic

DEFAULT_MNEMONIC = "test test test test test test test test test test test junk"


@dataclass(frozen=True, slots=True)
class DevAccount:
    """A development account: checksummed address and its 32-byte private key."""

    address: str
    private_key: bytes

    @property
    def address_bytes(self) -> bytes:
        return bytes.fromhex(self.address[2:])


@lru_cache(maxsize=16)
def derive_dev_accounts(mnemonic: str = DEFAULT_MNEMONIC, count: int = 10) -> tuple[DevAccount, ...]:
    """Derive ``count`` accounts along m/44'/60'/0'/0/i (as Anvil, Hardhat and MetaMask do).

    The BIP-39 seed (2,048 PBKDF2 rounds) is computed once, not once per account as
    ``Account.from_mnemonic`` does; the keys are the same.
    """
    seed = seed_from_mnemonic(mnemonic, "")
    accounts = []
    for i in range(count):
        key = bytes(key_from_seed(seed, f"m/44'/60'/0'/0/{i}"))
        accounts.append(DevAccount(address=Account.from_key(key).address, private_key=key))
    return tuple(accounts)

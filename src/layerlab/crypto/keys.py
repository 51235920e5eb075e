"""Development keys derived from a BIP-39 mnemonic (BIP-32/BIP-44 path m/44'/60'/0'/0/i).

The default mnemonic "test test ... junk" gives the same ten funded accounts that Anvil
and Hardhat print, so wallets and scripts written for them work unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from eth_account import Account

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
    """Derive ``count`` accounts along m/44'/60'/0'/0/i (as Anvil, Hardhat and MetaMask do)."""
    Account.enable_unaudited_hdwallet_features()
    accounts = []
    for i in range(count):
        acct = Account.from_mnemonic(mnemonic, account_path=f"m/44'/60'/0'/0/{i}")
        accounts.append(DevAccount(address=acct.address, private_key=bytes(acct.key)))
    return tuple(accounts)

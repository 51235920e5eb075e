"""Write geth's built-in genesis specs (mainnet, Sepolia, Holesky) as geth-style genesis JSON.

Source: go-ethereum at commit 02b73d4ea7181464175e0a6cbecc0a3a2655a562:
``core/genesis_alloc.go`` (the allocs, RLP in Go string literals, decoded as geth's
``decodePrealloc``), ``core/genesis.go`` (``Default*GenesisBlock``: nonce, extraData,
gasLimit, difficulty, timestamp) and ``params/config.go`` (chain ids and fork schedules).
Run with the text of ``core/genesis_alloc.go`` on stdin; writes ``<name>.json.gz`` here.
"""

import gzip
import json
import re
import sys
from pathlib import Path

import rlp

HERE = Path(__file__).parent
BLOBS = {"cancun": {"target": 3, "max": 6, "baseFeeUpdateFraction": 3338477},
         "prague": {"target": 6, "max": 9, "baseFeeUpdateFraction": 5007716},
         "bpo1": {"target": 10, "max": 15, "baseFeeUpdateFraction": 8346193},
         "bpo2": {"target": 14, "max": 21, "baseFeeUpdateFraction": 11684671}}
PRE_MERGE = {"homesteadBlock": 0, "eip150Block": 0, "eip155Block": 0, "eip158Block": 0,
             "byzantiumBlock": 0, "constantinopleBlock": 0, "petersburgBlock": 0,
             "istanbulBlock": 0, "berlinBlock": 0, "londonBlock": 0}
SPECS = {
    "mainnet": {
        "config": {"chainId": 1, "homesteadBlock": 1150000, "daoForkBlock": 1920000,
                   "daoForkSupport": True, "eip150Block": 2463000, "eip155Block": 2675000,
                   "eip158Block": 2675000, "byzantiumBlock": 4370000,
                   "constantinopleBlock": 7280000, "petersburgBlock": 7280000,
                   "istanbulBlock": 9069000, "muirGlacierBlock": 9200000,
                   "berlinBlock": 12244000, "londonBlock": 12965000,
                   "arrowGlacierBlock": 13773000, "grayGlacierBlock": 15050000,
                   "terminalTotalDifficulty": 58750000000000000000000,
                   "shanghaiTime": 1681338455, "cancunTime": 1710338135,
                   "pragueTime": 1746612311, "osakaTime": 1764798551, "bpo1Time": 1765290071,
                   "bpo2Time": 1767747671,
                   "depositContractAddress": "0x00000000219ab540356cbb839cbe05303d7705fa",
                   "ethash": {}, "blobSchedule": BLOBS},
        "nonce": "0x42",
        "extraData": "0x11bbe8db4e347b4e8c937c1c8370e4b5ed33adb3db69cbdb7a38e1e50b1b82fa",
        "gasLimit": "0x1388", "difficulty": "0x400000000", "timestamp": "0x0",
        "var": "mainnetAllocData",
    },
    "sepolia": {
        "config": {"chainId": 11155111, **PRE_MERGE, "muirGlacierBlock": 0,
                   "terminalTotalDifficulty": 17000000000000000, "mergeNetsplitBlock": 1735371,
                   "shanghaiTime": 1677557088, "cancunTime": 1706655072,
                   "pragueTime": 1741159776, "osakaTime": 1760427360, "bpo1Time": 1761017184,
                   "bpo2Time": 1761607008,
                   "depositContractAddress": "0x7f02c3e3c98b133055b8b348b2ac625669ed295d",
                   "ethash": {}, "blobSchedule": BLOBS},
        "nonce": "0x0", "extraData": "0x" + b"Sepolia, Athens, Attica, Greece!".hex(),
        "gasLimit": "0x1c9c380", "difficulty": "0x20000", "timestamp": hex(1633267481),
        "var": "sepoliaAllocData",
    },
    "holesky": {
        "config": {"chainId": 17000, **PRE_MERGE, "terminalTotalDifficulty": 0,
                   "shanghaiTime": 1696000704, "cancunTime": 1707305664,
                   "pragueTime": 1740434112, "osakaTime": 1759308480, "bpo1Time": 1759800000,
                   "bpo2Time": 1760389824,
                   "depositContractAddress": "0x4242424242424242424242424242424242424242",
                   "ethash": {}, "blobSchedule": BLOBS},
        "nonce": "0x1234", "extraData": "0x", "gasLimit": "0x17d7840", "difficulty": "0x1",
        "timestamp": hex(1695902100), "var": "holeskyAllocData",
    },
}
_ESC = {"a": 7, "b": 8, "f": 12, "n": 10, "r": 13, "t": 9, "v": 11, "\\": 92, '"': 34}


def go_string(literal: str) -> bytes:
    """The bytes of a Go interpreted string literal (without its quotes)."""
    out = bytearray()
    i = 0
    while i < len(literal):
        c = literal[i]
        if c != "\\":
            out += c.encode()
            i += 1
            continue
        k = literal[i + 1]
        if k == "x":
            out.append(int(literal[i + 2:i + 4], 16))
            i += 4
        elif k in "uU":
            n = 4 if k == "u" else 8
            out += chr(int(literal[i + 2:i + 2 + n], 16)).encode()
            i += 2 + n
        elif k in "01234567":
            out.append(int(literal[i + 1:i + 4], 8))
            i += 4
        else:
            out.append(_ESC[k])
            i += 2
    return bytes(out)


def alloc(data: bytes) -> dict:
    accounts = {}
    for item in rlp.decode(data):
        address = "0x" + item[0].rjust(20, b"\0").hex()
        entry = {"balance": hex(int.from_bytes(item[1], "big"))}
        if len(item) > 2:
            nonce, code, slots = item[2]
            entry["nonce"] = hex(int.from_bytes(nonce, "big"))
            entry["code"] = "0x" + code.hex()
            entry["storage"] = {"0x" + k.hex(): "0x" + v.hex() for k, v in slots}
        accounts[address] = entry
    return accounts


def main() -> None:
    source = sys.stdin.read()
    for name, spec in SPECS.items():
        m = re.search(r'const ' + spec.pop("var") + r' = "((?:[^"\\]|\\.)*)"', source)
        genesis = {**spec, "alloc": alloc(go_string(m.group(1)))}
        with gzip.open(HERE / f"{name}.json.gz", "wt", compresslevel=9) as f:
            json.dump(genesis, f, separators=(",", ":"))
        print(name, len(genesis["alloc"]), "accounts")


if __name__ == "__main__":
    main()

"""Cache circomlib's Poseidon constants (t = 2..7) into the repository as data.

Reads ``node_modules/circomlibjs/src/poseidon_constants.json`` (the unoptimised round
constants ``C`` and MDS matrices ``M`` of circomlibjs's ``poseidon_reference.js``, made by
the reference ``generate_parameters_grain.sage`` for BN254) and writes the first six widths
to ``src/layerlab/crypto/poseidon_constants.json``, which :mod:`layerlab.crypto.poseidon`
loads at run time. Run once after changing the circomlibjs version:

    python scripts/gen_poseidon_constants.py
"""

from __future__ import annotations

import json
from pathlib import Path

MAX_T = 7
ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    source = ROOT / "node_modules" / "circomlibjs" / "src" / "poseidon_constants.json"
    data = json.loads(source.read_text())
    version = json.loads((ROOT / "node_modules" / "circomlibjs" / "package.json").read_text())["version"]
    out = {
        "source": f"circomlibjs {version} src/poseidon_constants.json",
        "C": [[int(x, 16) for x in row] for row in data["C"][: MAX_T - 1]],
        "M": [[[int(x, 16) for x in r] for r in m] for m in data["M"][: MAX_T - 1]],
    }
    target = ROOT / "src" / "layerlab" / "crypto" / "poseidon_constants.json"
    target.write_text(json.dumps({k: (v if k == "source" else [[str(x) for x in row] if k == "C"
                                                                 else [[str(x) for x in r] for r in row]
                                                                 for row in v])
                                  for k, v in out.items()}, separators=(",", ":")) + "\n")
    print(f"wrote {target} ({target.stat().st_size} bytes)")


if __name__ == "__main__":
    main()

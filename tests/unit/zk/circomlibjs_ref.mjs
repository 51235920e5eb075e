// Reference outputs from circomlibjs for tests/unit/zk/test_crypto_vs_circomlibjs.py.
// Reads a JSON request on stdin, prints a JSON answer; numbers travel as decimal strings.
import { buildPoseidon, buildEddsa, newMemEmptyTrie } from "circomlibjs";

const chunks = [];
for await (const chunk of process.stdin) chunks.push(chunk);
const req = JSON.parse(Buffer.concat(chunks).toString());
const poseidon = await buildPoseidon();
const eddsa = await buildEddsa();
const F = poseidon.F;
const out = { poseidon: [], keys: [], smt: [] };
for (const inputs of req.poseidon) out.poseidon.push(F.toString(poseidon(inputs.map(BigInt))));
for (const { prv, msg } of req.sign) {
  const key = Buffer.from(prv, "hex");
  const A = eddsa.prv2pub(key);
  const sig = eddsa.signPoseidon(key, eddsa.F.e(BigInt(msg)));
  out.keys.push({
    A: [eddsa.F.toString(A[0]), eddsa.F.toString(A[1])],
    R8: [eddsa.F.toString(sig.R8[0]), eddsa.F.toString(sig.R8[1])],
    S: sig.S.toString(),
    ok: eddsa.verifyPoseidon(eddsa.F.e(BigInt(msg)), sig, A),
  });
}
const tree = await newMemEmptyTrie();
for (const [op, key, value] of req.smt) {
  if (op === "insert") await tree.insert(BigInt(key), BigInt(value));
  else if (op === "update") await tree.update(BigInt(key), BigInt(value));
  else await tree.delete(BigInt(key));
  out.smt.push(tree.F.toString(tree.root));
}
process.stdout.write(JSON.stringify(out));
process.exit(0);

// Bytecode of circomlibjs's generated Poseidon contracts (poseidon_gencontract.js, by Jordi
// Baylina) for the input counts given, as JSON {"<n>": {"bytecode": "0x..", "abi": [...]}}.
// usage: node scripts/poseidon_contracts.mjs 2 3 4 > poseidon.json
import { poseidonContract } from "circomlibjs";

const out = {};
for (const arg of process.argv.slice(2)) {
    const n = Number(arg);
    out[n] = { bytecode: poseidonContract.createCode(n), abi: poseidonContract.generateABI(n) };
}
process.stdout.write(JSON.stringify(out));

// Render snarkjs's own Groth16 Solidity verifier template from a verification key JSON
// (snarkjs's verification_key.json shape, as groth16py's vk.to_json() writes it).
// usage: node scripts/zk_verifier.mjs vk.json out.sol
import fs from "fs";
import path from "path";
import { fileURLToPath } from "url";
import ejs from "ejs";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const snarkjsDir = path.join(root, "node_modules", "snarkjs");
const template = fs.readFileSync(path.join(snarkjsDir, "templates", "verifier_groth16.sol.ejs"), "utf8");
const vk = JSON.parse(fs.readFileSync(process.argv[2], "utf8"));
fs.writeFileSync(process.argv[3], ejs.render(template, vk));

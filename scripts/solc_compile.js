#!/usr/bin/env node
// Compile Solidity with the pinned npm `solc` (solcjs): standard-JSON input on stdin,
// standard-JSON output on stdout (https://docs.soliditylang.org/en/latest/using-the-compiler.html).
//
//   node scripts/solc_compile.js [--base-path DIR] [--include-path DIR]... < input.json
//   node scripts/solc_compile.js --version
//
// Imports that are not in the input's `sources` are resolved by a callback:
//   - `@scope/pkg/...` from each --include-path (default: this repository's node_modules);
//   - anything else from --base-path (default: this repository's contracts/), then from the
//     include paths (for unscoped packages).
// solc has already resolved relative imports (`./x.sol`, `../y.sol`) against the importing
// source unit's name, so the callback only sees normalised unit names; a name that would
// escape its root directory is refused.
//
// Exit codes: 0 = solc ran (compile errors are reported inside the JSON output),
// 2 = solc is not installed (run `npm ci`), 1 = any other failure.
'use strict';

const fs = require('fs');
const path = require('path');

const REPO = path.resolve(__dirname, '..');

function parseArgs(argv) {
  const opts = { basePath: path.join(REPO, 'contracts'), includePaths: [], version: false };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (arg === '--version') {
      opts.version = true;
    } else if (arg === '--base-path' || arg === '--include-path') {
      const value = argv[++i];
      if (value === undefined) throw new Error(`${arg} needs a directory`);
      if (arg === '--base-path') opts.basePath = path.resolve(value);
      else opts.includePaths.push(path.resolve(value));
    } else {
      throw new Error(`unknown argument: ${arg}`);
    }
  }
  if (opts.includePaths.length === 0) opts.includePaths.push(path.join(REPO, 'node_modules'));
  return opts;
}

function loadSolc() {
  try {
    return require('solc');
  } catch (err) {
    process.stderr.write(
      `layerlab: cannot load the npm package "solc" (${err.message}); run \`npm ci\` in ${REPO}\n`,
    );
    process.exit(2);
  }
}

/** Read `unitName` below `root`, or return null if it is not there or escapes `root`. */
function readBelow(root, unitName) {
  const full = path.resolve(root, unitName);
  if (full !== root && !full.startsWith(root + path.sep)) return null;
  try {
    return fs.readFileSync(full, 'utf8');
  } catch {
    return null;
  }
}

function makeImportCallback(opts) {
  return function findImports(unitName) {
    if (path.isAbsolute(unitName)) return { error: `absolute import not allowed: ${unitName}` };
    const roots = unitName.startsWith('@')
      ? opts.includePaths
      : [opts.basePath, ...opts.includePaths];
    for (const root of roots) {
      const contents = readBelow(root, unitName);
      if (contents !== null) return { contents };
    }
    return { error: `file not found: ${unitName} (searched ${roots.join(', ')})` };
  };
}

function main() {
  const opts = parseArgs(process.argv.slice(2));
  const solc = loadSolc();
  if (opts.version) {
    process.stdout.write(`${solc.version()}\n`);
    return;
  }
  const input = fs.readFileSync(0, 'utf8');
  const output = solc.compile(input, { import: makeImportCallback(opts) });
  process.stdout.write(output);
}

try {
  main();
} catch (err) {
  process.stderr.write(`layerlab: solc_compile.js failed: ${err && err.stack ? err.stack : err}\n`);
  process.exit(1);
}

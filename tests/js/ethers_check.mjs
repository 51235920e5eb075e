// ethers.js v6 against a layerlab node: the client-compatibility check of issue 3.
//
// Usage: node tests/js/ethers_check.mjs <http-rpc-url> <artifacts-dir> [ws-url]
//
// With ethers' defaults (a JsonRpcProvider with a static network, a Wallet holding the
// first "test test ... junk" dev key, a WebSocketProvider for subscriptions) it
//   - deploys LabToken (OpenZeppelin ERC-20), LabNFT (ERC-721) and Reverter,
//   - transfers tokens and an NFT,
//   - reads the Transfer / Set events back with contract.queryFilter (eth_getLogs),
//   - receives the same events live through contract.on on a WebSocketProvider
//     (eth_subscribe "logs") and new blocks through provider.on("block") ("newHeads"),
//   - sees revert reasons: Error(string) from eth_call and eth_estimateGas, a custom error,
//     and a mined transaction whose receipt has status 0.
// It prints one JSON line of results on stdout and exits 0, or prints
// "ethers_check: FAILED: <which check, expected and actual>" on stderr and exits 1.
// Every wait is bounded; the whole run is bounded by OVERALL_TIMEOUT_MS (exit 2).
//
// The ws-url defaults to the http url with ws:// (the node serves both on one port).

import { readFileSync } from "node:fs";
import { join } from "node:path";
import {
  ContractFactory,
  JsonRpcProvider,
  Network,
  WebSocketProvider,
  Wallet,
  isError,
} from "ethers";

const CHAIN_ID = 31337n;
// The first two standard dev accounts of "test test test test test test test test test test test junk".
const DEV_KEYS = [
  "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80",
  "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d",
];
const WAIT_MS = 20_000;
const OVERALL_TIMEOUT_MS = 120_000;
const TOKEN_SUPPLY = 1_000_000n * 10n ** 18n;
const TOKEN_AMOUNTS = [1000n * 10n ** 18n, 234n * 10n ** 18n, 5n];
const SET_VALUE = 42n;
const REVERT_REASON = "layerlab: always fails";

class CheckFailed extends Error {}

function check(condition, message) {
  if (!condition) throw new CheckFailed(message);
}

function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Resolve `promise` within `ms` or fail with a message naming `what`. */
async function bounded(promise, what, ms = WAIT_MS) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new CheckFailed(`${what}: no answer within ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** Poll `predicate` every 50 ms until it holds, at most `ms`. */
async function waitUntil(predicate, what, ms = WAIT_MS) {
  const deadline = Date.now() + ms;
  while (!predicate()) {
    if (Date.now() > deadline) throw new CheckFailed(`${what}: not seen within ${ms} ms`);
    await sleep(50);
  }
}

function loadArtifact(dir, name) {
  const path = join(dir, `${name}.json`);
  const artifact = JSON.parse(readFileSync(path, "utf8"));
  check(Array.isArray(artifact.abi), `${path}: no abi array`);
  check(typeof artifact.bytecode === "string" && artifact.bytecode.startsWith("0x"),
    `${path}: bytecode is not 0x-hex`);
  return artifact;
}

async function deploy(artifact, wallet, args, what) {
  const factory = new ContractFactory(artifact.abi, artifact.bytecode, wallet);
  const contract = await bounded(factory.deploy(...args), `deploy ${what}`);
  await bounded(contract.waitForDeployment(), `deployment of ${what}`);
  const address = await contract.getAddress();
  const code = await wallet.provider.getCode(address);
  check(code.length > 2, `${what} at ${address}: eth_getCode returned ${code}`);
  return contract;
}

/** Send a contract transaction and wait for a successful receipt (bounded). */
async function send(txPromise, what) {
  const tx = await bounded(txPromise, `send ${what}`);
  const receipt = await bounded(tx.wait(1, WAIT_MS), `receipt of ${what}`);
  check(receipt !== null && receipt.status === 1,
    `${what}: receipt status ${receipt && receipt.status}, expected 1`);
  return receipt;
}

/**
 * Run `call` expecting a revert; returns ethers' error. Fails if it succeeds or if
 * the error is anything but CALL_EXCEPTION.
 */
async function expectRevert(call, what) {
  try {
    await bounded(call(), what);
  } catch (err) {
    if (err instanceof CheckFailed) throw err;
    check(isError(err, "CALL_EXCEPTION"),
      `${what}: expected CALL_EXCEPTION, got ${err.code}: ${err.shortMessage || err.message}`);
    return err;
  }
  throw new CheckFailed(`${what}: expected a revert, but it succeeded`);
}

async function run(rpcUrl, artifactsDir, wsUrl) {
  const network = Network.from(CHAIN_ID);
  // cacheTimeout -1: ethers caches identical requests for 250 ms, so on an automining chain
  // a second transaction within 250 ms would reuse the cached "pending" nonce (a client
  // cache, not the node: ethers-io/ethers.js#4549; Hardhat's provider disables it too).
  const http = new JsonRpcProvider(rpcUrl, network,
    { staticNetwork: network, pollingInterval: 200, cacheTimeout: -1 });
  const providers = [http];
  try {
    const chainId = BigInt(await bounded(http.send("eth_chainId", []), `eth_chainId at ${rpcUrl}`));
    check(chainId === CHAIN_ID, `eth_chainId is ${chainId}, expected ${CHAIN_ID}`);
    const ws = new WebSocketProvider(wsUrl, network);
    providers.push(ws);
    return await checks(http, ws, artifactsDir, chainId);
  } finally {
    for (const provider of providers) provider.destroy();
  }
}

async function checks(http, ws, artifactsDir, chainId) {
  const wsChainId = BigInt(await bounded(ws.send("eth_chainId", []), "eth_chainId over WebSocket"));
  check(wsChainId === CHAIN_ID, `eth_chainId over WebSocket is ${wsChainId}, expected ${CHAIN_ID}`);

  const deployer = new Wallet(DEV_KEYS[0], http);
  const recipient = new Wallet(DEV_KEYS[1], http);
  const ethBalance = await bounded(http.getBalance(deployer.address), "eth_getBalance");
  check(ethBalance > 10n ** 18n, `deployer ${deployer.address} has only ${ethBalance} wei`);

  const tokenArt = loadArtifact(artifactsDir, "LabToken");
  const nftArt = loadArtifact(artifactsDir, "LabNFT");
  const reverterArt = loadArtifact(artifactsDir, "Reverter");

  const token = await deploy(tokenArt, deployer, ["LabToken", "LAB", TOKEN_SUPPLY], "LabToken");
  const nft = await deploy(nftArt, deployer, [], "LabNFT");
  const reverter = await deploy(reverterArt, deployer, [], "Reverter");
  const tokenAddress = await token.getAddress();
  const nftAddress = await nft.getAddress();
  const reverterAddress = await reverter.getAddress();
  const startBlock = await http.getBlockNumber();

  check(await token.name() === "LabToken", `LabToken.name() is ${await token.name()}`);
  check(await token.symbol() === "LAB", `LabToken.symbol() is ${await token.symbol()}`);
  check(await token.decimals() === 18n, `LabToken.decimals() is ${await token.decimals()}`);
  const supply = await token.totalSupply();
  check(supply === TOKEN_SUPPLY, `LabToken.totalSupply() is ${supply}, expected ${TOKEN_SUPPLY}`);
  const deployerStart = await token.balanceOf(deployer.address);
  check(deployerStart === TOKEN_SUPPLY,
    `deployer token balance ${deployerStart} after deployment, expected ${TOKEN_SUPPLY}`);

  // Live subscriptions over the WebSocket, opened before any counted transaction.
  const wsTokenTransfers = [];
  const wsNftTransfers = [];
  const wsSets = [];
  const wsBlocks = [];
  const tokenWs = token.connect(ws);
  const nftWs = nft.connect(ws);
  const reverterWs = reverter.connect(ws);
  await tokenWs.on("Transfer", (from, to, value, payload) => {
    wsTokenTransfers.push({ from, to, value, tx: payload.log.transactionHash });
  });
  await nftWs.on("Transfer", (from, to, tokenId, payload) => {
    wsNftTransfers.push({ from, to, tokenId, tx: payload.log.transactionHash });
  });
  // With a topic filter (not an event name) ethers v6 passes only the payload; its
  // args are decoded from the log.
  await reverterWs.on(reverterWs.filters.Set(deployer.address), (...params) => {
    const payload = params[params.length - 1];
    wsSets.push({ who: payload.args.who, value: payload.args.value });
  });
  await ws.on("block", (number) => wsBlocks.push(number));
  // contract.on sends eth_subscribe a few ticks later; one more round trip on the same
  // socket afterwards means the node has handled every subscription request.
  await sleep(100);
  await bounded(ws.send("eth_blockNumber", []), "eth_blockNumber over WebSocket");

  // ERC-20 transfers.
  const tokenTxs = [];
  for (const amount of TOKEN_AMOUNTS) {
    const receipt = await send(token.transfer(recipient.address, amount), `transfer ${amount} LAB`);
    tokenTxs.push(receipt.hash);
  }
  const sent = TOKEN_AMOUNTS.reduce((a, b) => a + b, 0n);
  const recipientTokens = await token.balanceOf(recipient.address);
  check(recipientTokens === sent, `recipient token balance ${recipientTokens}, expected ${sent}`);
  const deployerTokens = await token.balanceOf(deployer.address);
  check(deployerTokens === TOKEN_SUPPLY - sent,
    `deployer token balance ${deployerTokens}, expected ${TOKEN_SUPPLY - sent}`);
  // The recipient signs too: an approve plus a transferFrom by the deployer.
  await send(token.connect(recipient).approve(deployer.address, 5n), "approve by recipient");
  const allowance = await token.allowance(recipient.address, deployer.address);
  check(allowance === 5n, `allowance ${allowance}, expected 5`);
  const back = await send(token.transferFrom(recipient.address, deployer.address, 5n),
    "transferFrom recipient to deployer");
  tokenTxs.push(back.hash);
  const recipientFinal = await token.balanceOf(recipient.address);
  check(recipientFinal === sent - 5n,
    `recipient token balance ${recipientFinal} after transferFrom, expected ${sent - 5n}`);

  // ERC-721: mint two to the deployer, one to the recipient, move token 1 to the recipient.
  await send(nft.mint(deployer.address), "mint NFT 1");
  await send(nft.mint(deployer.address), "mint NFT 2");
  await send(nft.mint(recipient.address), "mint NFT 3");
  await send(nft.transferFrom(deployer.address, recipient.address, 1n), "transfer NFT 1");
  const owner1 = await nft.ownerOf(1n);
  check(owner1 === recipient.address, `ownerOf(1) is ${owner1}, expected ${recipient.address}`);
  const owner2 = await nft.ownerOf(2n);
  check(owner2 === deployer.address, `ownerOf(2) is ${owner2}, expected ${deployer.address}`);
  const nftBalance = await nft.balanceOf(recipient.address);
  check(nftBalance === 2n, `recipient NFT balance ${nftBalance}, expected 2`);
  const minted = await nft.totalMinted();
  check(minted === 3n, `totalMinted() is ${minted}, expected 3`);

  // A state change with an indexed event.
  await send(reverter.set(SET_VALUE), `Reverter.set(${SET_VALUE})`);
  const stored = await reverter.get();
  check(stored === SET_VALUE, `Reverter.get() is ${stored}, expected ${SET_VALUE}`);

  // Events by eth_getLogs through queryFilter.
  const endBlock = await http.getBlockNumber();
  const allTokenTransfers = await bounded(token.queryFilter("Transfer", 0, "latest"),
    "LabToken queryFilter Transfer");
  // mint at deployment + 3 transfers + transferFrom
  check(allTokenTransfers.length === 1 + tokenTxs.length,
    `queryFilter(LabToken Transfer) found ${allTokenTransfers.length}, expected ${1 + tokenTxs.length}`);
  const mintLog = allTokenTransfers[0];
  check(mintLog.args.from === "0x0000000000000000000000000000000000000000" &&
        mintLog.args.to === deployer.address && mintLog.args.value === TOKEN_SUPPLY,
    `first LabToken Transfer is ${mintLog.args.from} -> ${mintLog.args.to} ${mintLog.args.value}`);
  const toRecipient = await token.queryFilter(
    token.filters.Transfer(deployer.address, recipient.address), startBlock, endBlock);
  check(toRecipient.length === TOKEN_AMOUNTS.length,
    `queryFilter(Transfer(deployer, recipient)) found ${toRecipient.length}, expected ${TOKEN_AMOUNTS.length}`);
  for (const [i, ev] of toRecipient.entries()) {
    check(ev.args.value === TOKEN_AMOUNTS[i],
      `Transfer #${i} to recipient carries ${ev.args.value}, expected ${TOKEN_AMOUNTS[i]}`);
    check(ev.transactionHash === tokenTxs[i],
      `Transfer #${i} to recipient is in tx ${ev.transactionHash}, expected ${tokenTxs[i]}`);
    const block = await http.getBlock(ev.blockNumber);
    check(block !== null && block.hash === ev.blockHash,
      `log block hash ${ev.blockHash} differs from block ${ev.blockNumber} hash ${block && block.hash}`);
  }
  const approvals = await token.queryFilter("Approval", startBlock, endBlock);
  // approve, and transferFrom's spend of the allowance is not an Approval in OZ 5
  check(approvals.length === 1, `queryFilter(Approval) found ${approvals.length}, expected 1`);
  const nftTransfers = await bounded(nft.queryFilter("Transfer", 0, "latest"),
    "LabNFT queryFilter Transfer");
  check(nftTransfers.length === 4, `queryFilter(LabNFT Transfer) found ${nftTransfers.length}, expected 4`);
  const mints = await nft.queryFilter(nft.filters.Transfer("0x0000000000000000000000000000000000000000"));
  check(mints.length === 3, `queryFilter(LabNFT mints) found ${mints.length}, expected 3`);
  const sets = await reverter.queryFilter(reverter.filters.Set(deployer.address), startBlock, "latest");
  check(sets.length === 1 && sets[0].args.value === SET_VALUE,
    `queryFilter(Set(deployer)) found ${sets.length} with ${sets.map((s) => s.args.value)}`);
  const setsOther = await reverter.queryFilter(reverter.filters.Set(recipient.address));
  check(setsOther.length === 0, `queryFilter(Set(recipient)) found ${setsOther.length}, expected 0`);

  // Events by the WebSocket subscription (bounded wait for delivery).
  const expectedWsToken = tokenTxs.length;
  await waitUntil(() => wsTokenTransfers.length >= expectedWsToken,
    `WebSocket LabToken Transfer events (have ${wsTokenTransfers.length}, want ${expectedWsToken})`);
  await waitUntil(() => wsNftTransfers.length >= 4,
    `WebSocket LabNFT Transfer events (have ${wsNftTransfers.length}, want 4)`);
  await waitUntil(() => wsSets.length >= 1, `WebSocket Reverter Set event (have ${wsSets.length})`);
  await waitUntil(() => wsBlocks.length >= 1, "WebSocket newHeads block event");
  await sleep(300); // let any duplicates arrive before counting exactly
  check(wsTokenTransfers.length === expectedWsToken,
    `WebSocket delivered ${wsTokenTransfers.length} LabToken Transfer events, expected ${expectedWsToken}`);
  check(JSON.stringify(wsTokenTransfers.map((e) => e.tx)) === JSON.stringify(tokenTxs),
    `WebSocket LabToken Transfer txs ${wsTokenTransfers.map((e) => e.tx)} differ from ${tokenTxs}`);
  check(wsTokenTransfers[0].value === TOKEN_AMOUNTS[0] && wsTokenTransfers[0].to === recipient.address,
    `first WebSocket Transfer is ${wsTokenTransfers[0].to} ${wsTokenTransfers[0].value}`);
  check(wsNftTransfers.length === 4,
    `WebSocket delivered ${wsNftTransfers.length} LabNFT Transfer events, expected 4`);
  check(wsNftTransfers[3].tokenId === 1n && wsNftTransfers[3].to === recipient.address,
    `last WebSocket NFT Transfer is id ${wsNftTransfers[3].tokenId} to ${wsNftTransfers[3].to}`);
  check(wsSets.length === 1 && wsSets[0].value === SET_VALUE && wsSets[0].who === deployer.address,
    `WebSocket Set events ${JSON.stringify(wsSets, (_, v) => (typeof v === "bigint" ? v.toString() : v))}`);
  const lastWsBlock = Math.max(...wsBlocks);
  check(lastWsBlock <= endBlock + 1 && lastWsBlock > startBlock,
    `WebSocket newHeads last block ${lastWsBlock}, chain from ${startBlock} to ${endBlock}`);
  await tokenWs.removeAllListeners();
  await nftWs.removeAllListeners();
  await reverterWs.removeAllListeners();

  // Revert reasons.
  const callErr = await expectRevert(() => reverter.fail.staticCall(), "eth_call Reverter.fail()");
  check(callErr.reason === REVERT_REASON,
    `eth_call revert reason ${JSON.stringify(callErr.reason)}, expected ${JSON.stringify(REVERT_REASON)}` +
    ` (data ${callErr.data})`);
  check(callErr.revert && callErr.revert.name === "Error",
    `eth_call revert decoded as ${JSON.stringify(callErr.revert)}`);
  // fail() is pure, so ethers would eth_call it: estimate and send it explicitly.
  const estimateErr = await expectRevert(() => reverter.fail.estimateGas(),
    "eth_estimateGas Reverter.fail()");
  check(estimateErr.reason === REVERT_REASON,
    `eth_estimateGas revert reason ${JSON.stringify(estimateErr.reason)}, expected ${JSON.stringify(REVERT_REASON)}`);
  const sendErr = await expectRevert(() => reverter.fail.send(),
    "send Reverter.fail() without gasLimit (estimate first)");
  check(sendErr.reason === REVERT_REASON,
    `send revert reason ${JSON.stringify(sendErr.reason)}, expected ${JSON.stringify(REVERT_REASON)}`);
  const requireErr = await expectRevert(() => reverter.requirePositive.staticCall(0n),
    "eth_call Reverter.requirePositive(0)");
  check(requireErr.reason === "x must be positive",
    `require revert reason ${JSON.stringify(requireErr.reason)}, expected "x must be positive"`);
  const customErr = await expectRevert(() => reverter.failWithCode.staticCall(7n),
    "eth_call Reverter.failWithCode(7)");
  check(customErr.revert && customErr.revert.name === "Nope" && customErr.revert.args[0] === 7n,
    `custom error decoded as ${customErr.revert && customErr.revert.name}(${customErr.revert && customErr.revert.args}), expected Nope(7) (data ${customErr.data})`);
  const overErc20 = await expectRevert(
    () => token.connect(recipient).transfer.staticCall(deployer.address, 10n ** 30n),
    "eth_call LabToken.transfer beyond balance");
  check(overErc20.revert && overErc20.revert.name === "ERC20InsufficientBalance",
    `ERC-20 overdraft decoded as ${overErc20.revert && overErc20.revert.name}, expected ERC20InsufficientBalance`);
  // A reverting transaction that is still mined (explicit gas limit, so no estimate).
  const nonceBefore = await http.getTransactionCount(deployer.address);
  const failTx = await bounded(reverter.fail.send({ gasLimit: 100_000n }), "send Reverter.fail() with gasLimit");
  const minedErr = await expectRevert(() => failTx.wait(1, WAIT_MS), "receipt of reverted Reverter.fail()");
  check(minedErr.receipt && minedErr.receipt.status === 0,
    `reverted tx receipt status ${minedErr.receipt && minedErr.receipt.status}, expected 0`);
  const failedReceipt = await http.getTransactionReceipt(failTx.hash);
  check(failedReceipt !== null && failedReceipt.status === 0 && failedReceipt.gasUsed > 21000n,
    `eth_getTransactionReceipt of the reverted tx: status ${failedReceipt && failedReceipt.status}` +
    ` gasUsed ${failedReceipt && failedReceipt.gasUsed}`);
  const nonceAfter = await http.getTransactionCount(deployer.address);
  check(nonceAfter === nonceBefore + 1, `nonce ${nonceBefore} -> ${nonceAfter} after a reverted tx`);

  return {
    ok: true,
    chainId: Number(chainId),
    deployer: deployer.address,
    recipient: recipient.address,
    token: tokenAddress,
    nft: nftAddress,
    reverter: reverterAddress,
    tokenBalances: {
      deployer: (await token.balanceOf(deployer.address)).toString(),
      recipient: recipientFinal.toString(),
    },
    nftOwners: { 1: owner1, 2: owner2, 3: await nft.ownerOf(3n) },
    nftBalanceRecipient: Number(nftBalance),
    storedValue: stored.toString(),
    events: {
      queryFilter: {
        tokenTransfer: allTokenTransfers.length,
        tokenTransferToRecipient: toRecipient.length,
        tokenApproval: approvals.length,
        nftTransfer: nftTransfers.length,
        set: sets.length,
      },
      websocket: {
        tokenTransfer: wsTokenTransfers.length,
        nftTransfer: wsNftTransfers.length,
        set: wsSets.length,
        blocks: wsBlocks.length,
      },
    },
    revert: {
      call: callErr.reason,
      estimateGas: estimateErr.reason,
      send: sendErr.reason,
      require: requireErr.reason,
      customError: `${customErr.revert.name}(${customErr.revert.args.join(",")})`,
      erc20: overErc20.revert.name,
      minedStatus: minedErr.receipt.status,
      minedTx: failTx.hash,
    },
    blocks: { start: startBlock, end: await http.getBlockNumber() },
  };
}

function failAndExit(detail) {
  console.error(`ethers_check: FAILED: ${detail}`);
  process.exit(1);
}

async function main() {
  // Errors outside any awaited call (a refused WebSocket connection is emitted as an
  // 'error' event) still end the run with the same one-line failure.
  process.on("uncaughtException", (err) => failAndExit(`uncaught ${err.code || err.name}: ${err.message}`));
  process.on("unhandledRejection", (err) => failAndExit(`unhandled rejection: ${err && err.message}`));
  const [rpcUrl, artifactsDir, wsArg] = process.argv.slice(2);
  if (!rpcUrl || !artifactsDir) {
    console.error("usage: node ethers_check.mjs <http-rpc-url> <artifacts-dir> [ws-url]");
    process.exit(64);
  }
  const wsUrl = wsArg || rpcUrl.replace(/^http/, "ws");
  const overall = setTimeout(() => {
    console.error(`ethers_check: FAILED: the whole check took over ${OVERALL_TIMEOUT_MS} ms`);
    process.exit(2);
  }, OVERALL_TIMEOUT_MS);
  try {
    const result = await run(rpcUrl, artifactsDir, wsUrl);
    process.stdout.write(JSON.stringify(result) + "\n");
    clearTimeout(overall);
    process.exit(0);
  } catch (err) {
    const detail = err instanceof CheckFailed
      ? err.message
      : `${err.code || err.name}: ${err.shortMessage || err.message}` +
        (err.info ? ` info=${JSON.stringify(err.info, (_, v) => (typeof v === "bigint" ? v.toString() : v))}` : "") +
        `\n${err.stack}`;
    failAndExit(detail);
  }
}

main();

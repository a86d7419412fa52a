// Drives Debian's Chromium (playwright-core, no browser download) through
// a StreamGate page as a viewer with a browser wallet would. The wallet is
// injected before the page's own scripts run: an EIP-1193 provider
// announced by EIP-6963 that signs through anvil's JSON-RPC with anvil's
// well-known dev keys, or a `window.solana` that signs with an Ed25519
// key — both here in Node. The page does not know it is a test.
//
// node drive.mjs SCENARIO.json; prints a JSON report.
// SCENARIO:
//   url, screenshot?          the page, and where to keep a screenshot
//   anvil, account, kind      EVM wallet: anvil's URL, the account, "siwe" | "eip712"
//   solanaSeed?               a Solana wallet instead (32-byte hex seed)
//   waitMessage?              text #message must show (before anything else)
//   format?                   "dash" plays the MPD with Shaka Player
//   playSeconds?              then wait until the video has played this far
//   toEnd?                    then wait until it ends
//   logout?                   then sign out and wait for the sign-in button
//   injectHtml?               HTML spliced into the page's <head> on its way in
import crypto from "node:crypto";
import fs from "node:fs";
import { chromium } from "playwright-core";

/** Polls `check` from Node until it holds. */
async function until(what, check, seconds = 30) {
  const deadline = Date.now() + seconds * 1000;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`${what} not within ${seconds} s`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

/**
 * The operator's page: the token pasted, a file uploaded through a
 * connection cut at the first PATCH (tus resumes), followed to "ready",
 * gated, and the catalog shows it gated.
 */
async function studio(page, scenario, result) {
  const st = scenario.studio;
  result.cut = false;
  await page.route("**/upload/**", async (route) => {
    if (!result.cut && route.request().method() === "PATCH") {
      result.cut = true;
      await route.abort("connectionreset");
    } else {
      await route.continue();
    }
  });
  await page.goto(scenario.url);
  await page.fill("#token", st.token);
  await page.click("#use-token");
  await page.setInputFiles("#file", st.file);
  const status = () => page.evaluate(() => document.getElementById("upload-status").textContent);
  await until("the upload ready", async () => / \(([^)]+)\): ready$/.test(await status()), 120);
  const asset = (await status()).match(/ \(([^)]+)\): ready$/)[1];
  result.asset = asset;
  await page.selectOption("#gate-asset", asset);
  await page.selectOption("#gate-kind", "erc721_token");
  await page.fill("#gate-chain", String(st.chain));
  await page.fill("#gate-contract", st.contract);
  await page.fill("#gate-token", st.tokenId);
  await page.click("#gate-form button[type=submit]");
  await until("the asset shown gated", () => page.evaluate(
    (id) => document.querySelector(`tr[data-asset="${id}"] td:nth-child(3)`)?.textContent === "NFT holders",
    asset,
  ));
  if (st.screenshot) await page.screenshot({ path: st.screenshot });
  await page.goto(new URL("/", scenario.url).href);
  await until("the catalog", () => page.evaluate(() => document.querySelectorAll(".catalog li").length > 0));
  result.catalog = await page.evaluate(() => [...document.querySelectorAll(".catalog li")].map((li) => li.textContent));
  if (st.catalogScreenshot) await page.screenshot({ path: st.catalogScreenshot });
}

const scenario = JSON.parse(fs.readFileSync(process.argv[2], "utf8"));
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
  args: ["--no-sandbox", "--autoplay-policy=no-user-gesture-required"],
});
const result = { errors: [], log: [] };

const BASE58 = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz";
function base58(bytes) {
  let n = BigInt("0x" + (Buffer.from(bytes).toString("hex") || "0"));
  let out = "";
  while (n > 0n) { out = BASE58[Number(n % 58n)] + out; n /= 58n; }
  for (const b of bytes) { if (b === 0) out = "1" + out; else break; }
  return out;
}

try {
  const page = await browser.newPage({
    viewport: scenario.phone ? { width: 375, height: 740 } : { width: 1000, height: 800 },
  });
  // Everything the page said, and every request that failed: what a
  // failing scenario is diagnosed from.
  page.on("console", (m) => {
    result.log.push(`${m.type()}: ${m.text()}`);
    if (m.type() === "error") result.errors.push(m.text());
  });
  page.on("pageerror", (e) => result.errors.push(String(e)));
  // Which manifests the player asked for: says which format played.
  result.manifests = { mpd: 0, m3u8: 0 };
  page.on("request", (r) => {
    const path = new URL(r.url()).pathname;
    if (path.endsWith(".mpd")) result.manifests.mpd += 1;
    if (path.endsWith(".m3u8")) result.manifests.m3u8 += 1;
  });
  page.on("requestfailed", (r) => result.log.push(`failed: ${r.url()} ${r.failure()?.errorText}`));
  page.on("response", (r) => {
    if (r.status() >= 400) result.log.push(`${r.status()}: ${r.url()}`);
  });

  if (scenario.solanaSeed) {
    const seed = Buffer.from(scenario.solanaSeed, "hex");
    const key = crypto.createPrivateKey({
      key: Buffer.concat([Buffer.from("302e020100300506032b657004220420", "hex"), seed]),
      format: "der",
      type: "pkcs8",
    });
    const publicKey = crypto.createPublicKey(key).export({ format: "der", type: "spki" }).subarray(-32);
    result.solanaAddress = base58(publicKey);
    await page.exposeFunction("__streamgateTestSolanaSign", (bytes) =>
      [...crypto.sign(null, Buffer.from(bytes), key)],
    );
    await page.addInitScript(({ address }) => {
      const publicKey = { toString: () => address, toBase58: () => address };
      window.solana = {
        isPhantom: true,
        publicKey,
        connect: async () => ({ publicKey }),
        signMessage: async (message) => ({
          signature: Uint8Array.from(await window.__streamgateTestSolanaSign([...message])),
          publicKey,
        }),
      };
    }, { address: result.solanaAddress });
  } else {
    await page.exposeFunction("__streamgateTestRpc", async (method, params) => {
      const reply = await fetch(scenario.anvil, {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ jsonrpc: "2.0", id: 1, method, params }),
      });
      const json = await reply.json();
      if (json.error) throw new Error(json.error.message);
      return json.result;
    });
    await page.addInitScript(({ account, chain, decline }) => {
      // The network the wallet is on until the page asks it to switch;
      // every switch is recorded for the test.
      let onChain = chain;
      window.__streamgateTestSwitches = [];
      const provider = {
        request: async ({ method, params }) => {
          if (method === "eth_requestAccounts" || method === "eth_accounts") return [account];
          if (method === "eth_chainId" && onChain) return onChain;
          if (method === "wallet_switchEthereumChain") {
            window.__streamgateTestSwitches.push(params[0].chainId);
            onChain = params[0].chainId;
            return null;
          }
          if (decline && (method === "personal_sign" || method === "eth_signTypedData_v4")) {
            throw Object.assign(new Error("User rejected the request."), { code: 4001 });
          }
          return window.__streamgateTestRpc(method, params ?? []);
        },
        on() {},
        removeListener() {},
      };
      const info = {
        uuid: "6f2d1c1e-5b8a-4f0e-9d7c-3a1b2c3d4e5f",
        name: "Test Wallet",
        icon: "data:image/svg+xml,%3Csvg xmlns='http://www.w3.org/2000/svg'/%3E",
        rdns: "dev.streamgate.test",
      };
      const announce = () =>
        window.dispatchEvent(new CustomEvent("eip6963:announceProvider", { detail: Object.freeze({ info, provider }) }));
      window.addEventListener("eip6963:requestProvider", announce);
      announce();
    }, { account: scenario.account, chain: scenario.walletChain ?? null, decline: !!scenario.decline });
  }

  if (scenario.injectHtml) {
    // What a compromised proxy or a stored XSS would try.
    await page.route(scenario.url, async (route) => {
      const response = await route.fetch();
      const body = (await response.text()).replace("<head>", `<head>${scenario.injectHtml}`);
      await route.fulfill({ response, body });
    });
  }

  if (scenario.studio) {
    await studio(page, scenario, result);
    throw null; // done: skip the viewer's steps
  }

  await page.goto(scenario.url);
  const text = () => page.evaluate(() => document.getElementById("message")?.textContent ?? "");
  const video = () => page.evaluate(() => {
    const v = document.getElementById("video");
    return { time: v.currentTime, ended: v.ended, readyState: v.readyState, error: v.error?.message };
  });
  // Polled from here: waitForFunction would evaluate a string in the
  // page, which its Content-Security-Policy (rightly) refuses.
  const until = async (what, check, seconds = 30) => {
    const deadline = Date.now() + seconds * 1000;
    while (!(await check())) {
      if (Date.now() > deadline) {
        throw new Error(`${what} not within ${seconds} s (page says: ${await text()}; video: ${JSON.stringify(await video())})`);
      }
      await new Promise((r) => setTimeout(r, 200));
    }
  };

  if (scenario.format) {
    // The format menu sits with the player (hidden until it plays): set
    // its value before signing in, as a viewer's earlier choice would.
    await page.evaluate((f) => { document.getElementById("format").value = f; }, scenario.format);
  }
  if (scenario.kind || scenario.solanaSeed) {
    await until("a wallet to sign with", () => page.evaluate(() => {
      const b = document.getElementById("sign-in");
      return b && !b.disabled && !document.getElementById("gate").hidden;
    }), 15);
    if (scenario.kind) await page.selectOption("#sign-kind", scenario.kind);
    await page.click("#sign-in");
  }
  if (scenario.waitMessage) {
    await until(`the message "${scenario.waitMessage}"`, async () => (await text()).includes(scenario.waitMessage));
    result.messageSeen = await text();
  }
  if (scenario.playSeconds !== undefined) {
    await until(`${scenario.playSeconds} s of playback`, async () => (await video()).time > scenario.playSeconds, 60);
  }
  if (scenario.keyboardQuality) {
    // The quality menu by keyboard: focus it, one step down from "Auto"
    // to the smallest rendition (hls.js lists them ascending), and the
    // decoded frames follow.
    await page.focus("#quality");
    await page.keyboard.press("ArrowDown");
    result.chosen = await page.evaluate(() => {
      const q = document.getElementById("quality");
      return q.options[q.selectedIndex].text;
    });
    const height = Number.parseInt(result.chosen, 10);
    await until(`frames of ${result.chosen}`, () => page.evaluate(
      (h) => document.getElementById("video").videoHeight === h,
      height,
    ), 30);
    result.videoHeight = await page.evaluate(() => document.getElementById("video").videoHeight);
  }
  if (scenario.phone) {
    result.overflows = await page.evaluate(() => document.documentElement.scrollWidth > window.innerWidth);
  }
  if (scenario.toEnd) {
    await until("the end of the video", async () => (await video()).ended, 90);
  }
  result.video = await video();
  result.levels = await page.evaluate(() => [...document.getElementById("quality").options].map((o) => o.text));
  result.message = await text();
  if (scenario.screenshot) await page.screenshot({ path: scenario.screenshot });
  if (scenario.logout) {
    await page.click("#logout");
    await until("signed out", async () => (await text()).includes("Signed out"));
    result.signedOut = await page.evaluate(() => ({
      gate: !document.getElementById("gate").hidden,
      session: sessionStorage.getItem("streamgate.session"),
    }));
  }
  result.injected = await page.evaluate(() => window.__streamgateInjected ?? null);
  result.switches = await page.evaluate(() => window.__streamgateTestSwitches ?? []);
  result.signInEnabled = await page.evaluate(() => {
    const b = document.getElementById("sign-in");
    return b ? !b.disabled && !document.getElementById("gate").hidden : null;
  });
} catch (e) {
  if (e !== null) result.failure = String(e);
} finally {
  await browser.close();
}
console.log(JSON.stringify(result));

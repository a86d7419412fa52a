// Drives Debian's Chromium (playwright-core, no browser download) through
// a StreamGate page as a viewer with a browser wallet would. The wallet is
// an EIP-1193 provider announced by EIP-6963, injected before the page's
// own scripts run; it signs through anvil's JSON-RPC with anvil's
// well-known dev keys, here in Node. The page does not know it is a test.
//
// node drive.mjs SCENARIO.json
// SCENARIO: { url, anvil, account, kind, screenshot, playSeconds }
// Prints { currentTime, message, errors, levels } as JSON.
import fs from "node:fs";
import { chromium } from "playwright-core";

const scenario = JSON.parse(fs.readFileSync(process.argv[2], "utf8"));
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
  args: ["--no-sandbox", "--autoplay-policy=no-user-gesture-required"],
});
const result = { errors: [] };
try {
  const page = await browser.newPage({ viewport: { width: 1000, height: 800 } });
  // Everything the page said, and every request that failed: what a
  // failing scenario is diagnosed from.
  result.log = [];
  page.on("console", (m) => {
    result.log.push(`${m.type()}: ${m.text()}`);
    if (m.type() === "error") result.errors.push(m.text());
  });
  page.on("requestfailed", (r) => result.log.push(`failed: ${r.url()} ${r.failure()?.errorText}`));
  page.on("response", (r) => {
    if (r.status() >= 400) result.log.push(`${r.status()}: ${r.url()}`);
  });
  page.on("pageerror", (e) => result.errors.push(String(e)));

  // The wallet's signing half, in Node: anvil signs for its dev accounts.
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
  await page.addInitScript(({ account }) => {
    const provider = {
      request: async ({ method, params }) => {
        if (method === "eth_requestAccounts" || method === "eth_accounts") return [account];
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
  }, { account: scenario.account });

  await page.goto(scenario.url);
  if (scenario.kind) {
    await page.waitForSelector("#sign-in:not([disabled])", { state: "visible", timeout: 15000 });
    await page.selectOption("#sign-kind", scenario.kind);
    await page.click("#sign-in");
  }
  // Polled from here: waitForFunction would evaluate a string in the
  // page, which its Content-Security-Policy (rightly) refuses.
  const deadline = Date.now() + 30000;
  const playedFor = () => page.evaluate(() => document.getElementById("video").currentTime);
  while ((await playedFor()) <= scenario.playSeconds) {
    if (Date.now() > deadline) {
      const message = await page.evaluate(() => document.getElementById("message").textContent);
      const state = await page.evaluate(() => {
        const v = document.getElementById("video");
        return { readyState: v.readyState, error: v.error?.message, src: v.currentSrc, paused: v.paused };
      });
      throw new Error(`not playing after 30 s (page says: ${message}; video: ${JSON.stringify(state)})`);
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  result.currentTime = await playedFor();
  result.levels = await page.evaluate(() => [...document.getElementById("quality").options].map((o) => o.text));
  result.message = await page.evaluate(() => document.getElementById("message").textContent);
  if (scenario.screenshot) await page.screenshot({ path: scenario.screenshot });
} catch (e) {
  result.failure = String(e);
} finally {
  await browser.close();
}
console.log(JSON.stringify(result));

// One asset: open ones play at once; gated ones ask for a wallet
// signature, then a playback token, renewed before it expires so the
// film plays to its end.
import { api, ApiError } from "./api.js";
import { Declined, discoverWallets, signIn, switchChain } from "./wallet.js";
import { Player } from "./player.js";

const id = decodeURIComponent(location.pathname.split("/").pop());
const $ = (name) => document.getElementById(name);
const message = (text) => { $("message").textContent = text; };
const player = new Player($("video"), $("quality"), (error) => message(`Playback stopped: ${error.details}`));

let session = sessionStorage.getItem("streamgate.session");
let token;
let renewal;
let retry;

const assets = await api("GET", "/api/v1/assets").catch((e) => {
  message(`The catalog is unavailable: ${e.message}`);
  return [];
});
const asset = assets.find((a) => a.id === id);
if (!asset) {
  message("No such video.");
} else {
  $("title").textContent = asset.title;
  document.title = `StreamGate — ${asset.title}`;
  if (!asset.gated) {
    $("player").hidden = false;
    playOpen();
    $("format").onchange = playOpen;
  } else if (session) {
    await startPlayback();
  } else {
    await offerSignIn();
  }
}

function playOpen() {
  const base = `/v/${encodeURIComponent(id)}/`;
  const dash = $("format").value === "dash";
  player.play(base + (dash ? "manifest.mpd" : "master.m3u8"), dash ? "dash" : "hls");
}

async function offerSignIn() {
  $("player").hidden = true;
  $("logout").hidden = true;
  $("gate").hidden = false;
  // Enabled once there is a wallet to sign with.
  $("sign-in").disabled = true;
  const wallets = await discoverWallets();
  const select = $("wallets");
  select.replaceChildren(...wallets.map((w, i) => new Option(w.name, String(i))));
  if (!wallets.length) {
    message("No browser wallet found: install one (MetaMask, Rabby, Coinbase Wallet, Phantom) to sign in.");
    $("sign-in").disabled = true;
    return;
  }
  $("sign-in").disabled = false;
  $("sign-in").onclick = async () => {
    const wallet = wallets[Number(select.value)];
    const kind = wallet.kind === "solana" ? "solana" : $("sign-kind").value;
    message("Waiting for your wallet…");
    try {
      // On another network than the NFT's: ask the wallet to switch first.
      const chain = asset.rules?.[0]?.chain_id;
      if (wallet.kind === "evm" && chain) {
        const current = parseInt(await wallet.provider.request({ method: "eth_chainId" }), 16);
        if (current !== chain) await switchChain(wallet, chain);
      }
      ({ session } = await signIn(wallet, kind));
      sessionStorage.setItem("streamgate.session", session);
      message("");
      await startPlayback();
    } catch (e) {
      message(e instanceof Declined ? "Signing was declined: nothing changed." : `Sign-in failed: ${e.message}`);
    }
  };
}

/** A fresh playback token; renews itself before it expires. */
async function fetchToken() {
  const p = await api("POST", `/api/v1/assets/${encodeURIComponent(id)}/playback`, { bearer: session });
  token = p.token;
  const left = Date.parse(p.expires_at) - Date.now();
  clearTimeout(renewal);
  // At four fifths of its life, a new one; later requests carry it.
  renewal = setTimeout(() => fetchToken().catch(() => {}), Math.max(1000, left * 0.8));
  return p;
}

async function startPlayback() {
  clearTimeout(retry);
  try {
    const p = await fetchToken();
    $("gate").hidden = true;
    $("player").hidden = false;
    $("logout").hidden = false;
    message("");
    const play = () => {
      const dash = $("format").value === "dash";
      player.play(dash ? p.dash : p.hls, dash ? "dash" : "hls", (url) =>
        url.replace(/\/p\/[^/]+\//, `/p/${token}/`),
      );
    };
    $("format").onchange = play;
    play();
  } catch (e) {
    if (!(e instanceof ApiError)) return message(`Playback failed: ${e.message}`);
    if (e.code === "nft_required") {
      const needs = e.rules
        .map((r) => `${r.kind} ${r.contract} on chain ${r.chain_id}${r.token_id ? ` (token ${r.token_id})` : ""}`)
        .join("; or ");
      message(`This wallet does not hold the NFT this video needs: ${needs}.`);
      $("gate").hidden = false;
    } else if (e.status === 503) {
      const seconds = e.retryAfter ?? 5;
      message(`The chain is unavailable right now; trying again in ${seconds} s.`);
      retry = setTimeout(startPlayback, seconds * 1000);
    } else if (e.status === 401) {
      signOut();
    } else {
      message(`Playback refused: ${e.message}`);
    }
  }
}

function signOut() {
  clearTimeout(renewal);
  clearTimeout(retry);
  player.stop();
  sessionStorage.removeItem("streamgate.session");
  session = undefined;
  offerSignIn();
}

$("logout").onclick = async () => {
  await api("POST", "/api/v1/auth/logout", { bearer: session }).catch(() => {});
  signOut();
  message("Signed out.");
};

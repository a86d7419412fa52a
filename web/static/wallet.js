// Browser wallets: EVM wallets found by EIP-6963 announcements (several
// installed side by side) or, failing that, window.ethereum (EIP-1193);
// Solana wallets through window.solana. Sign-in asks the API for a
// challenge, has the wallet sign it, and trades the signature for a
// session.
import { api } from "./api.js";

/** The wallets this browser offers: [{ name, kind, provider }]. */
export function discoverWallets(waitMs = 300) {
  return new Promise((resolve) => {
    const found = new Map();
    const onAnnounce = (event) => {
      const { info, provider } = event.detail ?? {};
      if (info?.uuid && provider) found.set(info.uuid, { name: info.name, kind: "evm", provider });
    };
    window.addEventListener("eip6963:announceProvider", onAnnounce);
    window.dispatchEvent(new Event("eip6963:requestProvider"));
    setTimeout(() => {
      window.removeEventListener("eip6963:announceProvider", onAnnounce);
      const wallets = [...found.values()];
      if (!wallets.length && window.ethereum) {
        wallets.push({ name: "Browser wallet", kind: "evm", provider: window.ethereum });
      }
      if (window.solana) wallets.push({ name: "Solana wallet", kind: "solana", provider: window.solana });
      resolve(wallets);
    }, waitMs);
  });
}

/** Thrown when the viewer declined in the wallet. */
export class Declined extends Error {}

const declined = (e) => e?.code === 4001 || e?.code === "ACTION_REJECTED";

function hex(text) {
  return "0x" + [...new TextEncoder().encode(text)].map((b) => b.toString(16).padStart(2, "0")).join("");
}

const BASE58 = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz";
function base58(bytes) {
  let digits = [0];
  for (const byte of bytes) {
    let carry = byte;
    for (let i = 0; i < digits.length; i++) {
      carry += digits[i] << 8;
      digits[i] = carry % 58;
      carry = (carry / 58) | 0;
    }
    while (carry) { digits.push(carry % 58); carry = (carry / 58) | 0; }
  }
  let out = "";
  for (const byte of bytes) { if (byte === 0) out += "1"; else break; }
  return out + digits.reverse().map((d) => BASE58[d]).join("");
}

/**
 * Signs in with `wallet` by `kind` ("siwe", "eip712" or "solana");
 * returns { session, address }.
 */
export async function signIn(wallet, kind) {
  try {
    if (wallet.kind === "solana") {
      const connected = await wallet.provider.connect();
      const address = (connected?.publicKey ?? wallet.provider.publicKey).toString();
      const c = await api("POST", "/api/v1/auth/challenge", { body: { address, chain_id: 0, kind: "solana" } });
      const signed = await wallet.provider.signMessage(new TextEncoder().encode(c.message), "utf8");
      const signature = base58(signed.signature ?? signed);
      return await login(c.challenge_id, signature);
    }
    const [address] = await wallet.provider.request({ method: "eth_requestAccounts" });
    const chainId = parseInt(await wallet.provider.request({ method: "eth_chainId" }), 16);
    const c = await api("POST", "/api/v1/auth/challenge", { body: { address, chain_id: chainId, kind } });
    const signature = kind === "eip712"
      ? await wallet.provider.request({ method: "eth_signTypedData_v4", params: [address, JSON.stringify(c.typed_data)] })
      : await wallet.provider.request({ method: "personal_sign", params: [hex(c.message), address] });
    return await login(c.challenge_id, signature);
  } catch (e) {
    if (declined(e)) throw new Declined("You declined in the wallet.");
    throw e;
  }
}

async function login(challengeId, signature) {
  const reply = await api("POST", "/api/v1/auth/login", { body: { challenge_id: challengeId, signature } });
  return { session: reply.session, address: reply.address };
}

/** Asks an EVM wallet to move to `chainId` (a gate on another chain). */
export async function switchChain(wallet, chainId) {
  await wallet.provider.request({
    method: "wallet_switchEthereumChain",
    params: [{ chainId: "0x" + chainId.toString(16) }],
  });
}

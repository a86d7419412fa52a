// The catalog: every asset, open or gated, each linking to its page.
import { api } from "./api.js";

const list = document.getElementById("catalog");
const status = document.getElementById("status");

try {
  const assets = await api("GET", "/api/v1/assets");
  status.textContent = assets.length ? "" : "Nothing here yet.";
  for (const asset of assets) {
    const item = document.createElement("li");
    const link = document.createElement("a");
    link.href = `/watch/${encodeURIComponent(asset.id)}`;
    const poster = document.createElement("img");
    poster.alt = "";
    // A gated asset's poster is behind its token too.
    if (!asset.gated) poster.src = `/v/${encodeURIComponent(asset.id)}/poster.jpg`;
    const title = document.createElement("span");
    title.textContent = asset.title;
    link.append(poster, title);
    if (asset.duration_seconds) {
      const s = Math.round(asset.duration_seconds);
      const duration = document.createElement("span");
      duration.className = "duration";
      duration.textContent = ` ${Math.floor(s / 60)}:${String(s % 60).padStart(2, "0")}`;
      link.append(duration);
    }
    item.append(link);
    if (asset.gated) {
      const badge = document.createElement("span");
      badge.className = "badge";
      badge.textContent = "NFT holders";
      item.append(" ", badge);
    }
    if (asset.status !== "ready") item.append(` (${asset.status})`);
    list.append(item);
  }
} catch (e) {
  status.textContent = `The catalog is unavailable: ${e.message}`;
}

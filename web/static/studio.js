// The operator's page: uploads with tus (resumable, with progress), the
// assets and their status as they transcode, gating and deleting — the
// same API calls the CLI makes, with the operator token as a bearer
// (kept in this tab's sessionStorage; no cookie, so no CSRF).
import { api } from "./api.js";

const $ = (name) => document.getElementById(name);
let token = sessionStorage.getItem("streamgate.operator");

$("token-form").onsubmit = (event) => {
  event.preventDefault();
  token = $("token").value.trim();
  sessionStorage.setItem("streamgate.operator", token);
  start();
};
if (token) start();

function start() {
  $("sign").hidden = true;
  $("work").hidden = false;
  refresh();
  setInterval(refresh, 1000);
}

/** The asset table and the gate form's list, from the API. */
async function refresh() {
  let assets;
  try {
    assets = await api("GET", "/api/v1/assets");
  } catch (e) {
    $("message").textContent = `The API is unavailable: ${e.message}`;
    return;
  }
  const rows = assets.map((a) => {
    const row = document.createElement("tr");
    row.dataset.asset = a.id;
    const cell = (text) => {
      const td = document.createElement("td");
      td.textContent = text;
      return td;
    };
    const actions = document.createElement("td");
    if (a.gated) actions.append(button("Open to all", () => call("DELETE", `/api/v1/assets/${encodeURIComponent(a.id)}/gate`)));
    actions.append(button("Delete", () => {
      if (confirm(`Delete ${a.id} and its files?`)) call("DELETE", `/api/v1/assets/${encodeURIComponent(a.id)}`);
    }));
    const status = a.status === "transcoding" ? `transcoding ${a.progress} %` : a.status;
    row.append(cell(a.title), cell(status), cell(a.gated ? "NFT holders" : "open"), actions);
    return row;
  });
  $("assets").replaceChildren(...rows);
  const chosen = $("gate-asset").value;
  $("gate-asset").replaceChildren(...assets.map((a) => new Option(a.id, a.id)));
  if (chosen) $("gate-asset").value = chosen;
}

function button(label, onClick) {
  const b = document.createElement("button");
  b.type = "button";
  b.textContent = label;
  b.onclick = onClick;
  return b;
}

async function call(method, path, body) {
  try {
    await api(method, path, { bearer: token, body });
    $("message").textContent = "";
    await refresh();
  } catch (e) {
    $("message").textContent = e.status === 401 || e.status === 403
      ? "The operator token was refused."
      : e.message;
  }
}

$("gate-form").onsubmit = (event) => {
  event.preventDefault();
  const rule = {
    kind: $("gate-kind").value,
    chain_id: Number($("gate-chain").value),
    contract: $("gate-contract").value.trim(),
    token_id: $("gate-token").value.trim(),
  };
  call("PUT", `/api/v1/assets/${encodeURIComponent($("gate-asset").value)}/gate`, { rules: [rule] });
};

function upload(file) {
  const status = $("upload-status");
  const progress = $("progress");
  progress.hidden = false;
  progress.value = 0;
  let asset;
  const tus = window.tus;
  const up = new tus.Upload(file, {
    endpoint: "/upload/",
    headers: { Authorization: `Bearer ${token}` },
    metadata: { filename: file.name, filetype: file.type },
    chunkSize: 256 * 1024,
    retryDelays: [0, 500, 1000, 2000, 5000],
    onAfterResponse(request, response) {
      asset = asset ?? response.getHeader("StreamGate-Asset") ?? undefined;
    },
    onProgress(sent, total) {
      progress.value = Math.floor((sent / total) * 100);
      status.textContent = `Uploading ${file.name}: ${progress.value} %`;
    },
    onError(error) {
      status.textContent = `Upload failed: ${error.message}`;
    },
    onSuccess() {
      status.textContent = `Uploaded ${file.name}${asset ? ` as ${asset}` : ""}; transcoding…`;
      follow(asset, file.name);
    },
  });
  up.findPreviousUploads().then((previous) => {
    if (previous.length) up.resumeFromPreviousUpload(previous[0]);
    up.start();
  });
}

/** Follows an uploaded asset until it is ready (or failed). */
function follow(asset, name) {
  if (!asset) return;
  const timer = setInterval(async () => {
    const found = (await api("GET", "/api/v1/assets").catch(() => [])).find((a) => a.id === asset);
    if (!found) return;
    const progress = found.status === "transcoding" ? ` ${found.progress} %` : "";
    $("upload-status").textContent = `${name} (${asset}): ${found.status}${progress}`;
    if (found.status === "ready" || found.status === "failed") clearInterval(timer);
  }, 1000);
}

$("file").onchange = () => {
  if ($("file").files[0]) upload($("file").files[0]);
};
const drop = $("drop");
drop.ondragover = (e) => {
  e.preventDefault();
  drop.classList.add("over");
};
drop.ondragleave = () => drop.classList.remove("over");
drop.ondrop = (e) => {
  e.preventDefault();
  drop.classList.remove("over");
  if (e.dataTransfer.files[0]) upload(e.dataTransfer.files[0]);
};

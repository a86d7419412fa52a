// The JSON API (the control plane), on its own origin: its address comes
// from /web-config.json, served by the engine beside these pages.

let config;

/** The API's base URL ("" when the API is on this origin). */
export async function apiBase() {
  if (!config) {
    const reply = await fetch("/web-config.json");
    config = await reply.json();
  }
  return config.api;
}

/** An API failure, with what the page needs to say about it. */
export class ApiError extends Error {
  constructor(status, body, retryAfter) {
    super(body?.error?.message ?? `HTTP ${status}`);
    this.status = status;
    this.code = body?.error?.code;
    this.rules = body?.error?.rules ?? [];
    this.retryAfter = retryAfter;
  }
}

/** Calls the API; JSON in and out, a bearer when given. */
export async function api(method, path, { body, bearer } = {}) {
  const headers = {};
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (bearer) headers.Authorization = `Bearer ${bearer}`;
  const reply = await fetch(`${await apiBase()}${path}`, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await reply.text();
  const json = text ? JSON.parse(text) : null;
  if (!reply.ok) {
    const retry = Number(reply.headers.get("Retry-After")) || undefined;
    throw new ApiError(reply.status, json, retry);
  }
  return json;
}

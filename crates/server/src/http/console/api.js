// The JSON API, same origin. A signed-in browser carries its session
// cookie (HttpOnly: no script here can read it); the server turns it into
// the token for the call. Every request and reply is shown in the API
// panel.
import { h } from "./ui.js";

const MAX_LOGGED = 50;

/** An error reply of the API: its gRPC code, message and reason. */
export class ApiError extends Error {
  constructor(body, status) {
    super(body.message || `HTTP ${status}`);
    this.code = body.code || "";
    this.reason = body.reason || "";
    this.status = status;
  }
}

function log(method, request, reply, failed) {
  const list = document.getElementById("api-log");
  if (!list) return;
  const item = h("li", { class: failed ? "failed" : "" },
    h("details", {},
      h("summary", {}, `${method}${failed ? " ✗" : ""}`),
      h("div", { class: "muted" }, "request"),
      h("pre", {}, JSON.stringify(request, null, 2)),
      h("div", { class: "muted" }, "reply"),
      h("pre", {}, JSON.stringify(reply, null, 2))));
  list.prepend(item);
  while (list.children.length > MAX_LOGGED) list.lastElementChild.remove();
}

async function post(path, body, method = "POST") {
  const response = await fetch(path, {
    method,
    headers: { "content-type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
    credentials: "same-origin",
  });
  const text = await response.text();
  let json;
  try { json = text ? JSON.parse(text) : {}; } catch { json = { message: text }; }
  return { response, json };
}

/** Calls `Service/Method` (e.g. "authzd.v1.AccessService/CheckAccess"). */
export async function call(method, request) {
  const { response, json } = await post(`/${method}`, request);
  log(method, request, json, !response.ok);
  // The session ended (idle, expired, or the token was revoked): the
  // shell shows the sign-in form again.
  if (response.status === 401) window.dispatchEvent(new Event("authzd:unauthenticated"));
  if (!response.ok) throw new ApiError(json, response.status);
  return json;
}

/** What the server says of this browser's session. */
export async function sessionInfo() {
  const response = await fetch("/console/session", { credentials: "same-origin" });
  return response.json();
}

/** Signs in with `token`; the session's info. */
export async function signIn(token) {
  const { response, json } = await post("/console/session", { token });
  log("sign in", { token: "…" }, json, !response.ok);
  if (!response.ok) throw new ApiError(json, response.status);
  return json;
}

/** Signs out. */
export async function signOut() {
  await post("/console/session", undefined, "DELETE");
}

/**
 * Opens a Watch stream: calls `onMessage` with each message (or
 * `{error}`), `onEnd` when it ends. Returns a function that stops it.
 */
export function watch(request, onMessage, onEnd) {
  const abort = new AbortController();
  (async () => {
    try {
      const response = await fetch("/authzd.v1.WatchService/Watch", {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify(request),
        credentials: "same-origin",
        signal: abort.signal,
      });
      if (!response.ok) {
        const body = await response.json().catch(() => ({}));
        log("authzd.v1.WatchService/Watch", request, body, true);
        onMessage({ error: body });
        return;
      }
      log("authzd.v1.WatchService/Watch", request, { stream: "open (one JSON object a line)" }, false);
      const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
      let buffered = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buffered += value;
        let at;
        while ((at = buffered.indexOf("\n")) >= 0) {
          const line = buffered.slice(0, at);
          buffered = buffered.slice(at + 1);
          if (line.trim()) onMessage(JSON.parse(line));
        }
      }
    } catch (e) {
      if (e.name !== "AbortError") onMessage({ error: { message: String(e) } });
    } finally {
      onEnd && onEnd();
    }
  })();
  return () => abort.abort();
}

/** Every page of a listing (`field` holds the items), up to `maxPages`. */
export async function listAll(method, request, field, maxPages = 20) {
  const items = [];
  let token = "";
  for (let i = 0; i < maxPages; i++) {
    const reply = await call(method, { ...request, page: { pageSize: 500, pageToken: token } });
    items.push(...(reply[field] || []));
    token = reply.nextPageToken;
    if (!token) return { items, revision: reply.revision, more: false };
  }
  return { items, more: true };
}

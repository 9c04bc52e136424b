// The console's shell: what the server says of this browser's session,
// sign-in, the tenant, the navigation and the hash routes. Screens live in
// their own modules; each exports `render(main, ctx)`.
import { call, sessionInfo, signIn, signOut } from "./api.js";
import { h, fill, errorBox } from "./ui.js";
import * as directory from "./directory.js";
import * as check from "./check.js";
import * as live from "./live.js";
import * as membership from "./membership.js";
import * as schema from "./schema.js";
import * as audit from "./audit.js";
import * as playground from "./playground.js";

// Each screen: route, title, module, and who sees it (the token's kind).
const SCREENS = [
  { route: "directory", title: "Directory", module: directory, kinds: ["read", "write", "admin"] },
  { route: "check", title: "Check", module: check, kinds: ["read", "write", "admin"] },
  { route: "access", title: "Who may what", module: check.access, kinds: ["read", "write", "admin"] },
  { route: "live", title: "Live", module: live, kinds: ["read", "write", "admin"] },
  { route: "membership", title: "Membership", module: membership, kinds: ["write", "admin"] },
  { route: "schema", title: "Schema", module: schema, kinds: ["read", "write", "admin"] },
  { route: "audit", title: "Audit", module: audit, kinds: ["admin"] },
  { route: "playground", title: "Playground", module: playground, kinds: ["admin"] },
];

const ctx = {
  info: null,
  tenant: "",
  stop: null, // what ends the current screen's streams
  /** Whether this token may write (membership, directory). */
  get canWrite() { return this.info && (this.info.kind === "write" || this.info.kind === "admin"); },
  /** Whether this token is an admin's (schema, audit, playground). */
  get isAdmin() { return this.info && this.info.kind === "admin"; },
};

async function start() {
  document.getElementById("api-clear").addEventListener("click", () =>
    document.getElementById("api-log").replaceChildren());
  document.getElementById("signout").addEventListener("click", async () => {
    await signOut();
    location.hash = "";
    await boot();
  });
  const tenantInput = document.getElementById("tenant");
  tenantInput.addEventListener("change", () => {
    ctx.tenant = tenantInput.value.trim();
    sessionStorage.setItem("authzd.tenant", ctx.tenant);
    route();
  });
  window.addEventListener("hashchange", route);
  window.addEventListener("authzd:unauthenticated", () => { if (ctx.info && ctx.info.tokens) boot(); });
  await boot();
}

async function boot() {
  ctx.info = await sessionInfo();
  const who = document.getElementById("who");
  const out = document.getElementById("signout");
  if (!ctx.info.signedIn) {
    fill(who, "");
    out.hidden = true;
    fill(document.getElementById("nav"));
    return showSignIn();
  }
  fill(who, ctx.info.tokens ? `${ctx.info.name} (${ctx.info.kind}${ctx.info.tenant ? ", tenant " + ctx.info.tenant : ""})` : "no tokens: trusted");
  who.dataset.kind = ctx.info.kind;
  out.hidden = !ctx.info.tokens;
  const tenantInput = document.getElementById("tenant");
  if (ctx.info.tenant) {
    // A tenant-bound token sees its tenant only.
    ctx.tenant = ctx.info.tenant;
    tenantInput.value = ctx.tenant;
    tenantInput.disabled = true;
  } else {
    tenantInput.disabled = false;
    ctx.tenant = sessionStorage.getItem("authzd.tenant") || tenantInput.value || "";
    tenantInput.value = ctx.tenant;
    loadTenants();
  }
  fill(document.getElementById("nav"), SCREENS.filter((s) => s.kinds.includes(ctx.info.kind))
    .map((s) => h("a", { href: `#/${s.route}`, "data-route": s.route }, s.title)));
  route();
}

async function loadTenants() {
  try {
    const reply = await call("authzd.v1.DirectoryService/ListTenants", { page: { pageSize: 200 } });
    const ids = (reply.tenants || []).map((t) => t.id);
    fill(document.getElementById("tenants"), ids.map((id) => h("option", { value: id })));
    if (!ctx.tenant && ids.length) {
      ctx.tenant = ids[0];
      document.getElementById("tenant").value = ctx.tenant;
      route();
    }
  } catch {
    // A token that may not list tenants types its tenant in.
  }
}

function showSignIn() {
  const main = document.getElementById("main");
  const message = h("div");
  const form = h("form", { class: "card signin", id: "signin" },
    h("h1", {}, "Sign in"),
    h("p", { class: "muted" }, "This server requires a token. The token is kept by the server for this browser session only (an HttpOnly cookie names the session); it is never stored in the browser."),
    h("label", {}, "Token", h("input", { name: "token", type: "password", autocomplete: "off", required: true, id: "token" })),
    h("p", {}, h("button", { type: "submit" }, "Sign in")),
    message);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    try {
      await signIn(form.token.value);
      form.reset();
      await boot();
    } catch (e) {
      fill(message, errorBox(e));
    }
  });
  fill(main, form);
}

function route() {
  if (!ctx.info || !ctx.info.signedIn) return;
  if (ctx.stop) { ctx.stop(); ctx.stop = null; }
  const name = (location.hash.replace(/^#\/?/, "").split("?")[0]) || "directory";
  const allowed = SCREENS.filter((s) => s.kinds.includes(ctx.info.kind));
  const screen = allowed.find((s) => s.route === name) || allowed[0];
  for (const a of document.querySelectorAll("#nav a")) {
    a.classList.toggle("active", a.dataset.route === screen.route);
  }
  const main = document.getElementById("main");
  if (!ctx.tenant && screen.route !== "schema" && screen.route !== "playground") {
    fill(main, h("h1", {}, screen.title), h("p", { class: "notice" }, "Choose a tenant (top right) to begin."));
    return;
  }
  fill(main, h("p", { class: "muted" }, "Loading…"));
  Promise.resolve(screen.module.render(main, ctx)).catch((e) => fill(main, h("h1", {}, screen.title), errorBox(e)));
}

start();

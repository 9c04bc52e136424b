// Check with explain (allowed or denied, the grant path or the denial
// reasons, the revision, "copy as grpcurl / curl"), and "who may what":
// what a subject may do and who holds a permission where, each row one
// click from its explanation.
import { call } from "./api.js";
import { h, fill, table, errorBox, field, values, scopeName, routeLink, routeParams } from "./ui.js";

const CHECK = "authzd.v1.AccessService/CheckAccess";

/** The request of a check from its parts. */
export function checkRequest(tenant, { subject, permission, scope, targetSubject }) {
  const request = { tenant, subject, permission, explain: true };
  if (scope) request.scope = scope;
  if (targetSubject) request.targetSubject = targetSubject;
  return request;
}

function sourceText(s) {
  const where = s.population ? `population ${s.population}` : `scope ${scopeName(s.scope)}`;
  return [
    "role ", h("a", { class: "ref", href: routeLink("directory", { focus: `role:${s.role}` }) }, s.role),
    ` at ${where}`,
    (s.groups || []).length ? ` via groups ${s.groups.join(" → ")}` : " (assigned directly)",
    s.grant ? `, grant ${s.grant}` : "",
    s.implication ? `, implied by ${s.implication}` : "",
    s.expiresAt ? `, until ${s.expiresAt}` : "",
  ];
}

/** The answer and explanation of a check reply. */
export function explanation(reply) {
  const e = reply.explanation || {};
  return h("div", { class: "explanation" },
    h("p", {},
      h("span", { class: `verdict ${reply.allowed ? "allowed" : "denied"}` }, reply.allowed ? "ALLOWED" : "DENIED"),
      h("span", { class: "muted revision" }, `at revision ${reply.revision}`)),
    (e.sources || []).length ? [h("h3", {}, "Grant path"), h("ul", { class: "sources" }, e.sources.map((s) => h("li", {}, sourceText(s))))] : null,
    (e.denials || []).length ? [h("h3", {}, "Why not"), h("ul", { class: "denials" }, e.denials.map((d) =>
      h("li", {}, h("code", {}, (d.reason || "").replace("DENIAL_REASON_", "").toLowerCase()), ": ", d.detail)))] : null);
}

/** Runs a check and shows its explanation in `box`. */
export async function explainInto(box, request) {
  fill(box, h("span", { class: "muted" }, "Checking…"));
  try {
    fill(box, explanation(await call(CHECK, request)));
  } catch (e) {
    fill(box, errorBox(e));
  }
}

/**
 * The check as commands: grpcurl against the gRPC address in
 * $AUTHZD_ADDR (the console does not know it), curl against this
 * listener; the token, if the server has tokens, from $AUTHZD_TOKEN.
 */
function copyCommands(request, tokens) {
  const json = JSON.stringify(request);
  const quoted = `'${json.replace(/'/g, "'\\''")}'`;
  const auth = tokens ? "-H \"authorization: Bearer $AUTHZD_TOKEN\" " : "";
  const grpcurl = `grpcurl -plaintext ${auth}-d ${quoted} "$AUTHZD_ADDR" ${CHECK}`;
  const curl = `curl -s ${location.origin}/${CHECK} ${auth}-H 'content-type: application/json' -d ${quoted}`;
  const out = h("pre", { class: "copied" });
  const copy = (text) => async () => {
    fill(out, text);
    try { await navigator.clipboard.writeText(text); } catch { /* shown below instead */ }
  };
  return h("div", { class: "row" },
    h("button", { type: "button", class: "secondary", onclick: copy(grpcurl) }, "copy as grpcurl"),
    h("button", { type: "button", class: "secondary", onclick: copy(curl) }, "copy as curl"),
    out);
}

export async function render(main, ctx) {
  const p = routeParams();
  const result = h("div", { id: "check-result" });
  const form = h("form", { class: "row", id: "check-form" },
    field("Subject", { name: "subject", required: true, value: p.subject || "" }),
    field("Permission", { name: "permission", required: true, value: p.permission || "", placeholder: "document:edit" }),
    field("Scope (empty: root)", { name: "scope", value: p.scope || "" }),
    field("Target subject", { name: "targetSubject", value: p.targetSubject || "" }),
    h("button", { type: "submit" }, "Check"));
  const run = async () => {
    const request = checkRequest(ctx.tenant, values(form));
    await explainInto(result, request);
    result.append(copyCommands(request, ctx.info.tokens));
  };
  form.addEventListener("submit", (event) => { event.preventDefault(); run(); });
  fill(main, h("h1", {}, "Check"), form, result);
  if (p.subject && p.permission) await run();
}

/** "Who may what": effective permissions of a subject, holders of a permission. */
export const access = {
  async render(main, ctx) {
    const p = routeParams();
    const mayDo = h("div", { id: "may-do" });
    const holders = h("div", { id: "holders" });
    const subjectForm = h("form", { class: "row", id: "may-form" },
      field("Subject", { name: "subject", required: true, value: p.subject || "" }),
      field("Under scope (empty: all)", { name: "scope", value: p.scope || "" }),
      h("button", { type: "submit" }, "What may it do"));
    const permForm = h("form", { class: "row", id: "who-form" },
      field("Permission", { name: "permission", required: true, value: p.permission || "" }),
      field("Scope (empty: root)", { name: "scope", value: "" }),
      field("Target subject", { name: "targetSubject", value: "" }),
      h("button", { type: "submit" }, "Who holds it"));
    const explainRow = (request, cols) => {
      const box = h("td", { colspan: cols });
      const row = h("tr", { class: "explain-row", hidden: true }, box);
      const button = h("button", { type: "button", class: "small", onclick: () => {
        row.hidden = !row.hidden;
        if (!row.hidden) explainInto(box, request);
      } }, "explain");
      return { button, row };
    };
    const listMayDo = async () => {
      const v = values(subjectForm);
      try {
        const reply = await call("authzd.v1.AccessService/ListEffectivePermissions", { tenant: ctx.tenant, subject: v.subject, scope: v.scope });
        const rows = [];
        for (const t of reply.targets || []) {
          for (const perm of t.permissions || []) {
            const { button, row } = explainRow(checkRequest(ctx.tenant, { subject: v.subject, permission: perm.permission, scope: t.scope }), 5);
            rows.push(h("tr", {},
              h("td", {}, h("code", {}, perm.permission)),
              h("td", {}, t.population ? `population ${t.population}` : scopeName(t.scope)),
              h("td", {}, (perm.reach || "").replace("REACH_", "").toLowerCase()),
              h("td", {}, (perm.sources || []).map((s) => `${s.role}${(s.groups || []).length ? " via " + s.groups.join(" → ") : ""}`).join("; ")),
              h("td", {}, t.population ? "" : button)), row);
          }
        }
        fill(mayDo, h("p", { class: "muted" }, `${rows.length / 2} permissions at revision ${reply.revision}`),
          table(["Permission", "Where", "Reach", "Sources", ""], rows));
      } catch (e) { fill(mayDo, errorBox(e)); }
    };
    const listHolders = async () => {
      const v = values(permForm);
      try {
        const reply = await call("authzd.v1.AccessService/ListSubjectsWithPermission", { tenant: ctx.tenant, permission: v.permission, scope: v.scope, targetSubject: v.targetSubject, pageSize: 500 });
        const rows = [];
        for (const holder of reply.holders || []) {
          const { button, row } = explainRow(checkRequest(ctx.tenant, { subject: holder.subject, permission: v.permission, scope: v.scope, targetSubject: v.targetSubject }), 5);
          rows.push(h("tr", {},
            h("td", {}, h("a", { class: "ref", href: routeLink("directory", { focus: `subject:${holder.subject}` }) }, holder.subject)),
            h("td", {}, holder.implied ? "implied" : "explicit"),
            h("td", {}, (holder.reach || "").replace("REACH_", "").toLowerCase()),
            h("td", {}, (holder.sources || []).map((s) => `${s.role} at ${s.population ? "population " + s.population : scopeName(s.scope)}${(s.groups || []).length ? " via " + s.groups.join(" → ") : ""}`).join("; ")),
            h("td", {}, button)), row);
        }
        fill(holders, h("p", { class: "muted" }, `${rows.length / 2} holders at revision ${reply.revision}${reply.nextPageToken ? " (first page)" : ""}`),
          table(["Subject", "How", "Reach", "Sources", ""], rows));
      } catch (e) { fill(holders, errorBox(e)); }
    };
    subjectForm.addEventListener("submit", (event) => { event.preventDefault(); listMayDo(); });
    permForm.addEventListener("submit", (event) => { event.preventDefault(); listHolders(); });
    fill(main, h("h1", {}, "Who may what"),
      h("h2", {}, "What may a subject do"), subjectForm, mayDo,
      h("h2", {}, "Who holds a permission where"), permForm, holders);
    if (p.subject) await listMayDo();
    if (p.permission) await listHolders();
  },
};

// The audit trail with its filters; refused writes (escalations among
// them) stand out.
import { call } from "./api.js";
import { h, fill, table, field, values, errorBox, principal } from "./ui.js";

export async function render(main, ctx) {
  const list = h("div", { id: "audit-list" });
  const form = h("form", { class: "row", id: "audit-form" },
    field("Actor", { name: "actor" }),
    field("Caller (token)", { name: "caller" }),
    h("label", {}, "Concerning", h("input", { name: "concerning", placeholder: "subject id" })),
    h("label", {}, "Outcome", h("select", { name: "outcome" },
      h("option", { value: "" }, "any"),
      h("option", { value: "AUDIT_OUTCOME_COMMITTED" }, "committed"),
      h("option", { value: "AUDIT_OUTCOME_DENIED" }, "refused"))),
    field("Since", { name: "since", type: "datetime-local" }),
    h("button", { type: "submit" }, "Filter"));
  const load = async () => {
    const v = values(form);
    const request = { tenant: ctx.tenant, pageSize: 200 };
    if (v.actor) request.actor = v.actor;
    if (v.caller) request.caller = v.caller;
    if (v.concerning) request.concerning = { subject: v.concerning };
    if (v.outcome) request.outcome = v.outcome;
    if (v.since) request.since = new Date(v.since).toISOString();
    try {
      const reply = await call("authzd.v1.AuditService/ListAuditEntries", request);
      const entries = reply.entries || [];
      fill(list, h("p", { class: "muted" }, `${entries.length} entries${reply.nextPageToken ? " (first page)" : ""}, newest first.`),
        table(["Time", "Outcome", "Method", "Caller", "Actor", "Reason", "Concerning", "Revision / refusal"],
          entries.map((e) => {
            const refused = e.outcome === "AUDIT_OUTCOME_DENIED";
            return h("tr", { class: refused ? "refused" : "" },
              h("td", {}, e.time || ""),
              h("td", {}, h("span", { class: `badge ${refused ? "lost" : "gained"}` }, refused ? "REFUSED" : "committed")),
              h("td", {}, (e.method || "").replace(/^\/?authzd\.v1\./, "")),
              h("td", {}, e.caller),
              h("td", {}, e.actor || h("span", { class: "muted" }, "system")),
              h("td", {}, e.reason || ""),
              h("td", {}, (e.concerned || []).map(principal).join(", "), e.moreConcerned ? " …" : ""),
              h("td", {}, refused ? `${e.denialReason || ""} ${e.denial || ""}` : e.revision));
          })));
    } catch (e) { fill(list, errorBox(e)); }
  };
  form.addEventListener("submit", (event) => { event.preventDefault(); load(); });
  fill(main, h("h1", {}, "Audit trail"), form, list);
  await load();
}

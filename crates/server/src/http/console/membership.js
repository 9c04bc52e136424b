// Membership writes with a what-if preview: the dry run lists the
// permission changes and refusals a write would meet; only then may it be
// applied.
import { call } from "./api.js";
import { h, fill, field, values, errorBox, scopeName, principal } from "./ui.js";

const MANAGE = "authzd.v1.MembershipService/ManageMembership";

function operation(v) {
  const who = v.principalKind === "group" ? { group: v.principal } : { subject: v.principal };
  const where = v.scope ? { scope: v.scope } : undefined;
  switch (v.op) {
    case "add_member": return { addMember: { group: v.name, member: who } };
    case "remove_member": return { removeMember: { group: v.name, member: who } };
    case "assign_role": return { assignRole: { role: v.name, principal: who, target: where } };
    default: return { unassignRole: { role: v.name, principal: who, target: where } };
  }
}

function describe(v) {
  const who = principal(v.principalKind === "group" ? { group: v.principal } : { subject: v.principal });
  return {
    add_member: `adding ${who} to ${v.name}`,
    remove_member: `removing ${who} from ${v.name}`,
    assign_role: `assigning ${v.name} to ${who} at ${scopeName(v.scope)}`,
    unassign_role: `unassigning ${v.name} from ${who} at ${scopeName(v.scope)}`,
  }[v.op];
}

export function render(main, ctx) {
  const preview = h("div", { id: "whatif" });
  const form = h("form", { class: "row", id: "membership-form" },
    h("label", {}, "Operation", h("select", { name: "op" },
      h("option", { value: "add_member" }, "add member"),
      h("option", { value: "remove_member" }, "remove member"),
      h("option", { value: "assign_role" }, "assign role"),
      h("option", { value: "unassign_role" }, "unassign role"))),
    field("Group or role", { name: "name", required: true }),
    h("label", {}, "Principal", h("select", { name: "principalKind" },
      h("option", { value: "subject" }, "subject"), h("option", { value: "group" }, "group"))),
    field("Principal id", { name: "principal", required: true }),
    field("Scope (roles; empty: root)", { name: "scope" }),
    field(ctx.isAdmin ? "Actor (empty: system write)" : "Actor", { name: "actor", required: !ctx.isAdmin }),
    field("Reason", { name: "reason" }),
    h("button", { type: "submit", id: "preview" }, "Preview"));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const v = values(form);
    const request = { tenant: ctx.tenant, operations: [operation(v)], options: { actor: v.actor, reason: v.reason } };
    try {
      const reply = await call(MANAGE, { ...request, dryRun: true });
      const w = reply.whatIf || {};
      const changes = w.permissionChanges || [];
      const refusals = w.refusals || [];
      const apply = h("button", { type: "button", id: "apply", disabled: refusals.length > 0 }, "Apply");
      const outcome = h("div");
      apply.addEventListener("click", async () => {
        apply.disabled = true;
        try {
          const done = await call(MANAGE, request);
          fill(outcome, h("p", { class: "notice", id: "applied" }, `Applied at revision ${done.revision}.`));
        } catch (e) { fill(outcome, errorBox(e)); }
      });
      fill(preview, h("div", { class: "card" },
        h("h3", {}, `What if: ${describe(v)}`),
        changes.length ? h("ul", { class: "changes" }, changes.map((p) => {
          const gained = p.direction ? p.direction === "DIRECTION_GAINED" : p.gained;
          return h("li", {}, h("span", { class: `badge ${gained ? "gained" : "lost"}` }, gained ? "gains" : "loses"),
            ` ${p.subject} ${gained ? "gains" : "loses"} ${p.permission} ${p.targetSubject ? "over subject " + p.targetSubject : "at " + scopeName(p.scope)}`);
        })) : h("p", { class: "muted" }, "No effective permission would change."),
        Number(w.morePermissionChanges || 0) ? h("p", { class: "muted" }, `… and ${w.morePermissionChanges} more.`) : null,
        refusals.length ? h("ul", { class: "refusals" }, refusals.map((r) => h("li", { class: "error" }, `${r.code}: ${r.message}${r.reason ? " (" + r.reason + ")" : ""}`))) : null,
        h("p", { class: "muted" }, "Nothing has been written yet."),
        apply, outcome));
    } catch (e) { fill(preview, errorBox(e)); }
  });
  fill(main, h("h1", {}, "Membership"),
    h("p", { class: "muted" }, "Every write is previewed first: the dry run shows who gains and loses what, and what the write would be refused for."),
    form, preview);
}

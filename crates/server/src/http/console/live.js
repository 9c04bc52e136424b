// The live view: gains and losses of permissions from Watch, filtered by
// subject, permission and scope, resumable from a revision; each
// revision's actor and writes; a click on a change checks and explains it
// now.
import { watch } from "./api.js";
import { h, fill, field, values, scopeName, principal, target } from "./ui.js";
import { checkRequest, explainInto } from "./check.js";

const MAX_SHOWN = 200;

function changeText(c) {
  const [kind, value] = Object.entries(c)[0] || ["?", ""];
  const what = {
    memberAdded: (m) => `${principal(m.member)} added to group ${m.group}`,
    memberRemoved: (m) => `${principal(m.member)} removed from group ${m.group}`,
    roleAssigned: (a) => `role ${a.role} assigned to ${principal(a.principal)} at ${target(a.target)}`,
    roleUnassigned: (a) => `role ${a.role} unassigned from ${principal(a.principal)} at ${target(a.target)}`,
    roleExpired: (a) => `role ${a.role} of ${principal(a.principal)} at ${target(a.target)} expired`,
  }[kind];
  if (what) return what(value);
  return `${kind.replace(/([A-Z])/g, " $1").toLowerCase()}: ${typeof value === "string" ? value : value.id || JSON.stringify(value)}`;
}

export function render(main, ctx) {
  const feed = h("div", { id: "live-feed" });
  const status = h("p", { class: "muted", id: "live-status" }, "Not watching.");
  const form = h("form", { class: "row", id: "live-form" },
    field("Subject", { name: "subject" }),
    field("Permission", { name: "permission" }),
    field("Scope", { name: "scope" }),
    field("Resume after revision", { name: "after", inputmode: "numeric", size: 10 }),
    h("button", { type: "submit", id: "live-start" }, "Watch"),
    h("button", { type: "button", class: "secondary", id: "live-stop", onclick: () => stop() }, "Stop"));
  let stopStream = null;
  let lastRevision = "";
  const stop = () => {
    if (stopStream) stopStream();
    stopStream = null;
  };
  ctx.stop = stop;
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    stop();
    const v = values(form);
    const request = { tenant: ctx.tenant, kinds: ["EVENT_KIND_CHANGES", "EVENT_KIND_PERMISSION_CHANGES", "EVENT_KIND_PROGRESS"] };
    if (v.subject) request.subject = v.subject;
    if (v.permission) request.permission = v.permission;
    if (v.scope) request.scope = v.scope;
    if (v.after) request.afterRevision = v.after;
    fill(feed);
    fill(status, "Watching…");
    stopStream = watch(request, (message) => {
      if (message.error) {
        fill(status, h("span", { class: "error" }, `The stream ended: ${message.error.code || ""} ${message.error.message || ""}`,
          lastRevision ? ` — resume after revision ${lastRevision}` : ""));
        return;
      }
      lastRevision = message.revision;
      form.after.value = lastRevision;
      if (message.progress) {
        fill(status, `Watching; up to date at revision ${message.revision}.`);
        return;
      }
      fill(status, `Watching; last revision ${message.revision}.`);
      feed.prepend(revisionCard(ctx, message));
      while (feed.children.length > MAX_SHOWN) feed.lastElementChild.remove();
    }, () => { if (stopStream) fill(status, `Stopped at revision ${lastRevision || "?"}.`); stopStream = null; });
  });
  fill(main, h("h1", {}, "Live"),
    h("p", { class: "muted" }, "Gains and losses of effective permissions as writes commit, from the Watch stream. Click a change to check and explain it now."),
    form, status, feed);
}

function revisionCard(ctx, m) {
  const perms = m.permissionChanges || [];
  const changes = m.changes || [];
  return h("div", { class: "card revision-card", "data-revision": m.revision },
    h("div", {}, h("strong", { class: "revision" }, `revision ${m.revision}`),
      h("span", { class: "muted" }, ` ${m.committedAt || ""} by ${m.actor || "the system"}${m.part ? `, part ${m.part}` : ""}`)),
    changes.length ? h("ul", { class: "changes" }, changes.map((c) => h("li", { class: "muted" }, changeText(c)))) : null,
    perms.length ? h("ul", { class: "changes" }, perms.map((p) => {
      const gained = p.direction ? p.direction === "DIRECTION_GAINED" : p.gained;
      const box = h("div");
      const where = p.targetSubject ? `over subject ${p.targetSubject}` : `at ${scopeName(p.scope)}`;
      return h("li", { class: "permission-change" },
        h("a", { class: "ref", onclick: () => explainInto(box, checkRequest(ctx.tenant, p)) },
          h("span", { class: `badge ${gained ? "gained" : "lost"}` }, gained ? "gains" : "loses"),
          ` ${p.subject} ${p.permission} ${where}`,
          h("span", { class: "muted" }, ` (${(p.reach || "").replace("REACH_", "").toLowerCase()})`)),
        box);
    })) : null);
}

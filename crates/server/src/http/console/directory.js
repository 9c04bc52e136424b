// The directory of a tenant: subjects, groups (conditions and members),
// the scope tree, roles (built-in and custom, with grants) and
// assignments, each linked to the others.
import { call, listAll } from "./api.js";
import { h, fill, table, routeLink, routeParams } from "./ui.js";

const MAX_GROUPS_WITH_MEMBERS = 200;

const D = "authzd.v1.DirectoryService/";

export async function render(main, ctx) {
  const tenant = ctx.tenant;
  const [subjects, groups, scopes, roles, assignments] = await Promise.all([
    listAll(D + "ListSubjects", { tenant }, "subjects"),
    listAll(D + "ListGroups", { tenant }, "groups"),
    listAll(D + "ListScopes", { tenant }, "scopes"),
    listAll(D + "ListRoles", { tenant }, "roles"),
    listAll(D + "ListAssignments", { tenant }, "assignments"),
  ]);
  const members = new Map();
  await Promise.all(groups.items.slice(0, MAX_GROUPS_WITH_MEMBERS).map(async (g) => {
    const listed = await listAll(D + "ListGroupMembers", { tenant, group: g.id }, "members", 4);
    members.set(g.id, listed.items);
  }));

  // Who is in which group, and who holds which assignment.
  const groupsOf = new Map();
  for (const [group, list] of members) {
    for (const m of list) {
      const key = m.subject ? `subject:${m.subject}` : `group:${m.group}`;
      if (!groupsOf.has(key)) groupsOf.set(key, []);
      groupsOf.get(key).push(group);
    }
  }
  const assignmentsOf = (key) => assignments.items.filter((a) =>
    (a.principal.subject && key === `subject:${a.principal.subject}`) ||
    (a.principal.group && key === `group:${a.principal.group}`));

  const ref = (kind, id) => h("a", { class: "ref", href: routeLink("directory", { focus: `${kind}:${id}` }) }, id || "root");
  const principalRef = (p) => p.subject ? ["subject ", ref("subject", p.subject)] : ["group ", ref("group", p.group)];
  const targetRef = (t) => t && t.scope ? ["scope ", ref("scope", t.scope)] : t && t.population ? `population ${t.population}` : ["scope ", ref("scope", "")];
  const assignmentText = (a) => [ref("role", a.role), " at ", targetRef(a.target), a.expiresAt ? ` until ${a.expiresAt}` : ""];

  // A scope whose parent is not a listed scope hangs off the root.
  const scopeIds = new Set(scopes.items.map((s) => s.id));
  const scopeChildren = new Map();
  for (const s of scopes.items) {
    const parent = scopeIds.has(s.parent) ? s.parent : "";
    if (!scopeChildren.has(parent)) scopeChildren.set(parent, []);
    scopeChildren.get(parent).push(s);
  }
  const tree = (parent, depth) => {
    const children = scopeChildren.get(parent) || [];
    if (!children.length || depth > 32) return null;
    return h("ul", { class: "tree" }, children.map((s) =>
      h("li", { id: `scope:${s.id}` }, ref("scope", s.id), h("span", { class: "muted" }, s.type ? ` (${s.type})` : ""),
        tree(s.id, depth + 1))));
  };

  const truncated = [subjects, groups, scopes, roles, assignments].some((l) => l.more);
  fill(main,
    h("h1", {}, `Directory of ${tenant}`),
    h("p", { class: "muted" }, `At revision ${subjects.revision || "?"}: ${subjects.items.length} subjects, ${groups.items.length} groups, ${scopes.items.length} scopes, ${roles.items.length} roles, ${assignments.items.length} assignments.`),
    truncated ? h("p", { class: "notice" }, "Large tenant: only the first pages of some lists are shown.") : null,

    h("h2", { id: "subjects" }, "Subjects"),
    table(["Subject", "Kind", "Status", "Home scope", "Attributes", "Groups", "Assignments", ""],
      subjects.items.map((s) => h("tr", { id: `subject:${s.id}` },
        h("td", {}, h("strong", {}, s.id)),
        h("td", {}, (s.kind || "").replace("SUBJECT_KIND_", "").toLowerCase()),
        h("td", {}, (s.status || "").replace("SUBJECT_STATUS_", "").toLowerCase()),
        h("td", {}, s.homeScope ? ref("scope", s.homeScope) : ""),
        h("td", {}, Object.entries(s.attributes || {}).map(([k, v]) => `${k}=${v}`).join(", ")),
        h("td", {}, (groupsOf.get(`subject:${s.id}`) || []).map((g, i) => [i ? ", " : "", ref("group", g)])),
        h("td", {}, assignmentsOf(`subject:${s.id}`).map((a, i) => [i ? "; " : "", assignmentText(a)])),
        h("td", {}, h("a", { href: routeLink("access", { subject: s.id }) }, "what may it do"))))),

    h("h2", { id: "groups" }, "Groups"),
    table(["Group", "Title", "Condition", "Members", "Member of", "Assignments"],
      groups.items.map((g) => h("tr", { id: `group:${g.id}` },
        h("td", {}, h("strong", {}, g.id)),
        h("td", {}, g.title || ""),
        h("td", {}, g.condition ? h("code", {}, g.condition) : h("span", { class: "muted" }, "explicit members")),
        h("td", {}, members.has(g.id) ? (members.get(g.id).map((m, i) => [i ? ", " : "", principalRef(m)])) : h("span", { class: "muted" }, "not loaded")),
        h("td", {}, (groupsOf.get(`group:${g.id}`) || []).map((x, i) => [i ? ", " : "", ref("group", x)])),
        h("td", {}, assignmentsOf(`group:${g.id}`).map((a, i) => [i ? "; " : "", assignmentText(a)]))))),

    h("h2", { id: "scopes" }, "Scopes"),
    h("div", { class: "card", id: "scope:" }, ref("scope", ""), tree("", 0)),

    h("h2", { id: "roles" }, "Roles"),
    table(["Role", "Title", "Kind", "Grants", "Class / rank", "Requires", "Assigned to"],
      roles.items.map((r) => h("tr", { id: `role:${r.id}` },
        h("td", {}, h("strong", {}, r.id)),
        h("td", {}, r.title || ""),
        h("td", {}, r.builtin ? "built-in" : "custom"),
        h("td", {}, h("ul", {}, (r.grants || []).map((g) => h("li", {}, h("code", {}, g.permission),
          (g.scopes || []).length ? [" at ", g.scopes.map((s, i) => [i ? ", " : "", ref("scope", s)])] : "")))),
        h("td", {}, r.class ? `${r.class} / ${r.rank}` : ""),
        h("td", {}, (r.requires || []).map((x, i) => [i ? ", " : "", ref("role", x)])),
        h("td", {}, assignments.items.filter((a) => a.role === r.id).map((a, i) => [i ? "; " : "", principalRef(a.principal), " at ", targetRef(a.target)]))))),

    h("h2", { id: "assignments" }, "Assignments"),
    table(["Role", "Principal", "Target", "Expires"],
      assignments.items.map((a) => [ref("role", a.role), principalRef(a.principal), targetRef(a.target), a.expiresAt || ""])),
  );

  const focus = routeParams().focus;
  if (focus) {
    const row = document.getElementById(focus);
    if (row) {
      row.classList.add("focus");
      row.scrollIntoView({ block: "center" });
    }
  }
}


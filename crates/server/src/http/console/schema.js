// The schema: view, edit, validate (a dry run of WriteSchema), diff
// against the installed one, and apply with expected_revision (so a
// schema written meanwhile is not overwritten unseen). Editing is an
// admin's; other tokens see the schema only.
import { call } from "./api.js";
import { h, fill, errorBox } from "./ui.js";

const MAX_DIFF_LINES = 3000;

/** A line diff (longest common subsequence): [kind, line] pairs. */
export function diffLines(before, after) {
  const a = before.split("\n");
  const b = after.split("\n");
  if (a.length > MAX_DIFF_LINES || b.length > MAX_DIFF_LINES) {
    return [["note", `too long to diff here (over ${MAX_DIFF_LINES} lines)`]];
  }
  const n = a.length, m = b.length;
  const lcs = Array.from({ length: n + 1 }, () => new Uint16Array(m + 1));
  for (let i = n - 1; i >= 0; i--) {
    for (let j = m - 1; j >= 0; j--) {
      lcs[i][j] = a[i] === b[j] ? lcs[i + 1][j + 1] + 1 : Math.max(lcs[i + 1][j], lcs[i][j + 1]);
    }
  }
  const out = [];
  let i = 0, j = 0;
  while (i < n || j < m) {
    if (i < n && j < m && a[i] === b[j]) { out.push([" ", a[i]]); i++; j++; }
    else if (j < m && (i >= n || lcs[i][j + 1] >= lcs[i + 1][j])) { out.push(["+", b[j]]); j++; }
    else { out.push(["-", a[i]]); i++; }
  }
  return out;
}

export async function render(main, ctx) {
  const installed = await call("authzd.v1.SchemaService/ReadSchema", {});
  let revision = installed.revision;
  let current = installed.schema;
  const editor = h("textarea", { id: "schema-text", spellcheck: "false", readOnly: !ctx.isAdmin });
  editor.value = current;
  const result = h("div", { id: "schema-result" });
  const reason = h("input", { name: "reason", placeholder: "why (for the audit trail)" });
  const write = async (dryRun) => {
    try {
      const reply = await call("authzd.v1.SchemaService/WriteSchema",
        { schema: editor.value, dryRun, expectedRevision: String(revision), reason: reason.value });
      if (dryRun) {
        fill(result, h("p", { class: "notice", id: "schema-valid" }, "Valid: the server would accept this schema."));
      } else {
        revision = reply.revision;
        current = editor.value;
        fill(revNote, `Installed at revision ${revision}.`);
        fill(result, h("p", { class: "notice", id: "schema-applied" }, `Applied at revision ${reply.revision}.`));
      }
    } catch (e) {
      fill(result, errorBox(e));
    }
  };
  const showDiff = () => {
    const lines = diffLines(current, editor.value);
    const changed = lines.filter(([k]) => k !== " ").length;
    fill(result, h("pre", { class: "diff", id: "schema-diff" },
      changed ? lines.map(([k, line]) => h("div", { class: k === "+" ? "add" : k === "-" ? "del" : "" }, `${k} ${line}`))
        : "No difference from the installed schema."));
  };
  const revNote = h("span", { class: "muted" }, `Installed at revision ${revision}.`);
  fill(main, h("h1", {}, "Schema"), h("p", {}, revNote),
    ctx.isAdmin ? h("div", { class: "row" },
      h("button", { type: "button", id: "schema-validate", onclick: () => write(true) }, "Validate (dry run)"),
      h("button", { type: "button", class: "secondary", id: "schema-diff-button", onclick: showDiff }, "Diff against installed"),
      h("button", { type: "button", id: "schema-apply", onclick: () => write(false) }, "Apply"),
      reason) : h("p", { class: "muted" }, "Read only: writing the schema takes an admin token."),
    result, editor);
}

// The playground: a `schema test` file (seed data and assertions) with a
// schema, run by the server on the real engine in a temporary store (one
// run at a time, bounded in size and time, admins only); each assertion
// with its explanation. Both files download as they are, for
// `authzd schema test` in CI.
import { call } from "./api.js";
import { h, fill, errorBox } from "./ui.js";
import { explanation } from "./check.js";

const EXAMPLE = `# authzd schema test: run with \`authzd schema test schema_test.toml\`
schema = "schema.toml"
tenant = "test"

subjects = [{ id = "alice" }, { id = "bob" }]
groups = [{ id = "writers", title = "Writers" }]

[[members]]
group = "writers"
subject = "alice"

[[assignments]]
role = "editor"
group = "writers"

[[assert]]
subject = "alice"
permission = "document:edit"
allow = true

[[assert]]
subject = "alice"
permission = "document:manage"
allow = false
reasons = ["no_grant"]
`;

function download(name, text) {
  const url = URL.createObjectURL(new Blob([text], { type: "application/toml" }));
  const a = h("a", { href: url, download: name });
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 1000);
}

export async function render(main) {
  const installed = await call("authzd.v1.SchemaService/ReadSchema", {});
  const schema = h("textarea", { id: "playground-schema", spellcheck: "false" });
  schema.value = installed.schema;
  const file = h("textarea", { id: "playground-file", spellcheck: "false" });
  file.value = sessionStorage.getItem("authzd.playground") || EXAMPLE;
  const result = h("div", { id: "playground-result" });
  const run = h("button", { type: "button", id: "playground-run" }, "Run");
  run.addEventListener("click", async () => {
    sessionStorage.setItem("authzd.playground", file.value);
    run.disabled = true;
    fill(result, h("p", { class: "muted" }, "Running in a temporary store…"));
    try {
      const response = await fetch("/console/playground", {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ schema: schema.value, file: file.value }),
        credentials: "same-origin",
      });
      const body = await response.json();
      const log = document.getElementById("api-log");
      if (log) log.prepend(h("li", { class: response.ok ? "" : "failed" }, h("details", {}, h("summary", {}, "console playground"), h("pre", {}, JSON.stringify(body, null, 2)))));
      if (!response.ok) throw Object.assign(new Error(body.message), body);
      const results = body.assertions || [];
      fill(result,
        h("p", { class: body.failed ? "error" : "notice", id: "playground-summary" }, `${body.passed} passed, ${body.failed} failed`),
        results.map((a) => h("div", { class: "card assertion" },
          h("div", {}, h("span", { class: `badge ${a.ok ? "gained" : "lost"}` }, a.ok ? "ok" : "FAIL"), ` ${a.what}`),
          (a.problems || []).length ? h("ul", {}, a.problems.map((p) => h("li", { class: "error" }, p))) : null,
          a.reply ? explanation(a.reply) : null)));
    } catch (e) {
      fill(result, errorBox(e));
    } finally {
      run.disabled = false;
    }
  });
  fill(main, h("h1", {}, "Playground"),
    h("p", { class: "muted" }, "A schema test runs on the real engine in a temporary store: the schema, the seed data and the assertions below; nothing touches this server's data."),
    h("div", { class: "row" }, run,
      h("button", { type: "button", class: "secondary", onclick: () => download("schema_test.toml", file.value) }, "Download schema_test.toml"),
      h("button", { type: "button", class: "secondary", onclick: () => download("schema.toml", schema.value) }, "Download schema.toml")),
    result,
    h("h2", {}, "Test file"), file,
    h("h2", {}, "Schema"), schema);
}

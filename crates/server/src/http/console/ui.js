// Small DOM helpers. Text always goes in as text nodes (never as HTML),
// so nothing a server returns can inject markup or script.

/** An element: `h("a", {href: "#/x", onclick: f}, "text", child)`. */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith("on")) el.addEventListener(key.slice(2), value);
    else if (key === "class") el.className = value;
    else if (key in el && typeof value !== "string") el[key] = value;
    else el.setAttribute(key, value === true ? "" : value);
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === undefined || child === null || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

/** Replaces the children of `el`. */
export function fill(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

/** A table: header names and rows of cells (each a node, text, or array). */
export function table(headers, rows, attrs = {}) {
  return h("table", attrs,
    h("thead", {}, h("tr", {}, headers.map((x) => h("th", {}, x)))),
    h("tbody", {}, rows.map((row) => row instanceof Node ? row
      : h("tr", {}, row.map((cell) => h("td", {}, cell))))));
}

/** An error box for an API error or any exception. */
export function errorBox(e) {
  const code = e.code ? `${e.code}: ` : "";
  const reason = e.reason ? ` (${e.reason})` : "";
  return h("div", { class: "error", role: "alert" }, code + (e.message || String(e)) + reason);
}

/** A labelled input. */
export function field(label, attrs) {
  return h("label", {}, label, h("input", attrs));
}

/** The form's fields by name. */
export function values(form) {
  return Object.fromEntries(new FormData(form).entries());
}

/** A principal ({subject} or {group}) as text. */
export function principal(p) {
  if (!p) return "";
  return p.subject ? `subject ${p.subject}` : p.group ? `group ${p.group}` : "";
}

/** A target ({scope} or {population}) as text. */
export function target(t) {
  if (!t) return "the root";
  return t.scope ? `scope ${t.scope}` : t.population ? `population ${t.population}` : "the root";
}

/** A scope as text ("" is the root). */
export function scopeName(scope) {
  return scope ? scope : "root";
}

/** Parameters of the hash route (`#/check?subject=a`). */
export function routeParams() {
  const query = location.hash.split("?")[1] || "";
  return Object.fromEntries(new URLSearchParams(query).entries());
}

/** A hash link to `route` with parameters. */
export function routeLink(route, params = {}) {
  const query = new URLSearchParams(Object.entries(params).filter(([, v]) => v)).toString();
  return `#/${route}${query ? "?" + query : ""}`;
}

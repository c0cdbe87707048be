// Small DOM helpers, number formatting and list parsing, shared by every part of the page.

export const $ = (selector, root = document) => root.querySelector(selector);

/** Build an element: h("p", {class: "x", onclick: fn}, "text", child). Text is never parsed as HTML. */
export function h(tag, props = {}, ...children) {
  const svg = ["svg", "rect", "g", "title"].includes(tag);
  const el = svg
    ? document.createElementNS("http://www.w3.org/2000/svg", tag)
    : document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith("on")) el.addEventListener(key.slice(2), value);
    else if (key === "class") el.setAttribute("class", value);
    else if (key === "text") el.textContent = value;
    else if (key === "style") Object.assign(el.style, value);
    else if (key === "dataset") Object.assign(el.dataset, value);
    else if (key in el && !svg && typeof value !== "string") el[key] = value;
    else el.setAttribute(key, value === true ? "" : value);
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : String(child));
  }
  return el;
}

export const percent = (p, digits = 1) => `${(p * 100).toFixed(digits)}%`;
export const score = (s) => (s === null || s === undefined ? "—" : s.toFixed(3));
export const sceneLabel = (name) => name.replaceAll("_", " ");

/** Replace an element's children, skipping the null/false placeholders of conditional parts. */
export function fill(el, ...children) {
  el.replaceChildren(
    ...children.flat().filter((child) => child !== null && child !== undefined && child !== false),
  );
}

export function setStatus(el, text, kind = "info") {
  el.textContent = text;
  el.dataset.kind = text ? kind : "";
}

export const parseList = (text) => [
  ...new Set(
    text
      .split(/[,\n]/)
      .map((s) => s.trim())
      .filter(Boolean),
  ),
];


// The viewer: one image at a time, whole, with its detected regions and matched crop drawn
// over it and its facts beside it; ←/→ step through the list it was opened from, Escape
// (or the close button) closes it and gives focus back to what opened it.

import { loadThumbnail } from "./api.js";
import { $, fill, h } from "./dom.js";

let dialog = null;
let current = { items: [], index: 0, opener: null };

/**
 * An item: {title, src (a URL the page may load as is) or apiSrc (an API thumbnail, loaded
 * with the page's key), width, height (the original's pixels, what boxes are in), boxes:
 * [{box: [x0, y0, x1, y1], kind: "region" | "match", label}], note (what the picture is),
 * facts: [[label, value]], details() → Node (more, built when shown), actions() → [Node]}.
 */
export function openViewer(items, index = 0) {
  if (!items.length) return;
  dialog ??= buildDialog();
  current = {
    items,
    index: Math.max(0, Math.min(index, items.length - 1)),
    opener: document.activeElement,
  };
  show();
  if (!dialog.open) dialog.showModal();
  $("#viewer-close", dialog).focus();
}

export function closeViewer() {
  if (dialog?.open) dialog.close();
}

/** Step ``by`` places through the list (no wrap-around: the ends say they are ends). */
export function stepViewer(by) {
  const next = current.index + by;
  if (next < 0 || next >= current.items.length) return;
  current.index = next;
  show();
}

function buildDialog() {
  const el = h(
    "dialog",
    { id: "viewer", class: "viewer", "aria-labelledby": "viewer-title" },
    h(
      "div",
      { class: "viewer-head" },
      h("h2", { id: "viewer-title", class: "viewer-title" }),
      h("span", { id: "viewer-position", class: "hint" }),
      h(
        "div",
        { class: "viewer-nav" },
        h("button", {
          type: "button",
          class: "ghost small",
          id: "viewer-prev",
          text: "← Previous",
          onclick: () => stepViewer(-1),
        }),
        h("button", {
          type: "button",
          class: "ghost small",
          id: "viewer-next",
          text: "Next →",
          onclick: () => stepViewer(1),
        }),
        h("button", {
          type: "button",
          class: "ghost small",
          id: "viewer-close",
          text: "Close",
          "aria-label": "Close the viewer",
          onclick: () => closeViewer(),
        }),
      ),
    ),
    h(
      "div",
      { class: "viewer-body" },
      h("figure", { class: "viewer-stage", id: "viewer-stage" }),
      h("div", { class: "viewer-side", id: "viewer-side" }),
    ),
  );
  el.addEventListener("keydown", (event) => {
    if (event.target.closest("input, textarea, select")) return; // editing labels
    if (event.key === "ArrowRight") {
      event.preventDefault();
      stepViewer(1);
    } else if (event.key === "ArrowLeft") {
      event.preventDefault();
      stepViewer(-1);
    }
  });
  el.addEventListener("click", (event) => {
    if (event.target === el) closeViewer(); // the backdrop
  });
  el.addEventListener("close", () => {
    $("#viewer-stage", el).replaceChildren(); // an object URL's picture is let go
    if (current.opener?.isConnected) current.opener.focus();
  });
  document.body.append(el);
  return el;
}

function show() {
  const { items, index } = current;
  const item = items[index];
  $("#viewer-title", dialog).textContent = item.title;
  $("#viewer-title", dialog).title = item.title;
  $("#viewer-position", dialog).textContent = `${index + 1} of ${items.length}`;
  $("#viewer-prev", dialog).disabled = index === 0;
  $("#viewer-next", dialog).disabled = index === items.length - 1;
  dialog.dataset.index = String(index);
  fill($("#viewer-stage", dialog), picture(item), item.note ? h("figcaption", { class: "hint", text: item.note }) : null);
  fill(
    $("#viewer-side", dialog),
    item.facts?.length
      ? h(
          "dl",
          { class: "facts viewer-facts" },
          item.facts.map(([label, value]) =>
            h("div", {}, h("dt", { text: label }), h("dd", { text: String(value) })),
          ),
        )
      : null,
    item.actions ? h("div", { class: "viewer-actions" }, item.actions()) : null,
    item.details ? item.details() : null,
  );
}

/** The whole picture, and its boxes in the original's pixels drawn exactly over it: the
 * overlay has the picture's own aspect ratio and is fitted the way the picture is. */
function picture(item) {
  const img = h("img", { alt: item.title, class: "viewer-img" });
  if (item.apiSrc) loadThumbnail(img, item.apiSrc);
  else if (item.src) img.src = item.src;
  else return h("div", { class: "thumb-missing no-picture", text: "no picture (embedding only)" });
  const boxes = item.boxes ?? [];
  const frame = h("div", { class: "viewer-fit" }, img);
  const draw = (width, height) => {
    if (!boxes.length || !width || !height) return;
    frame.append(
      h(
        "svg",
        {
          class: "boxes",
          viewBox: `0 0 ${width} ${height}`,
          preserveAspectRatio: "xMidYMid meet",
          "aria-hidden": "true",
        },
        boxes.map(({ box, kind, label }) =>
          h(
            "rect",
            {
              class: `box ${kind}`,
              x: box[0],
              y: box[1],
              width: Math.max(1, box[2] - box[0]),
              height: Math.max(1, box[3] - box[1]),
              "vector-effect": "non-scaling-stroke",
            },
            label ? h("title", { text: label }) : null,
          ),
        ),
      ),
    );
  };
  if (item.width && item.height) draw(item.width, item.height);
  else img.addEventListener("load", () => draw(img.naturalWidth, img.naturalHeight), { once: true });
  return frame;
}

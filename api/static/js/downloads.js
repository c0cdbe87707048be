// Downloads: JSON and CSV of a result, named by time.

import { $, h } from "./dom.js";

export function download(filename, text, type) {
  const url = URL.createObjectURL(new Blob([text], { type }));
  const link = h("a", { href: url, download: filename, hidden: true });
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 1000);
}

export function csvCell(value) {
  let text = value === null || value === undefined ? "" : String(value);
  // A cell starting with = + - @ would be a formula in a spreadsheet.
  if (typeof value === "string" && /^[=+\-@]/.test(text)) text = `'${text}`;
  return /[",\n\r]/.test(text) ? `"${text.replaceAll('"', '""')}"` : text;
}

export const csv = (rows) => rows.map((row) => row.map(csvCell).join(",")).join("\r\n") + "\r\n";

export const timestamp = () => new Date().toISOString().slice(0, 19).replaceAll(":", "-");

export function downloadButtons(result, name, toCsv) {
  return h(
    "div",
    { class: "downloads" },
    h("button", {
      type: "button",
      class: "ghost small",
      text: "Download JSON",
      onclick: () =>
        download(
          `${name}-${timestamp()}.json`,
          JSON.stringify(result, null, 2),
          "application/json",
        ),
    }),
    h("button", {
      type: "button",
      class: "ghost small",
      text: "Download CSV",
      onclick: () => download(`${name}-${timestamp()}.csv`, toCsv(result), "text/csv"),
    }),
  );
}


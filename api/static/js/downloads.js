// Downloads: JSON and CSV of a result, named by time; files the API serves (a plan's bundle).

import { ApiError, askForKey, authHeader, describeStatus, UNREACHABLE } from "./api.js";
import { h } from "./dom.js";

/** Save `text` (a string or a Blob) as a file named `filename`. */
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


/**
 * A file the API serves (a plan's bundle), saved under its Content-Disposition name. Fetched
 * with the API key (a plain link cannot send the Authorization header), then saved from a blob;
 * a problem answer becomes an ApiError with its detail, as api() does.
 */
export async function downloadFrom(path, fallbackName) {
  let response;
  try {
    response = await fetch(path, {
      headers: { Accept: "application/zip, application/problem+json", ...authHeader() },
    });
  } catch {
    throw new ApiError(UNREACHABLE);
  }
  if (!response.ok) {
    const problem = await response.json().catch(() => null);
    let detail = problem?.detail || problem?.title || describeStatus(response.status);
    if (response.status === 401) detail = askForKey(detail);
    throw new ApiError(detail, { status: response.status, problem });
  }
  const disposition = response.headers.get("Content-Disposition") ?? "";
  const name = /filename="?([^";]+)"?/.exec(disposition)?.[1] ?? fallbackName;
  const type = response.headers.get("Content-Type") ?? "application/octet-stream";
  download(name, await response.blob(), type);
}

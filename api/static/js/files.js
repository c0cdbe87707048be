// File selection: drop zones and the strip of chosen files.

import { $, fill, h } from "./dom.js";

export const CHIPS_SHOWN = 12; // chosen files listed by name before "+N more"

/** Make a drop zone keyboard- and mouse-operable; onFiles(File[]) receives what was chosen. */
export function dropZone(zone, input, onFiles) {
  const disabled = () => zone.getAttribute("aria-disabled") === "true";
  const open = () => {
    if (!disabled()) input.click();
  };
  // input.click() bubbles a click up to the zone: opening again there would ask twice.
  zone.addEventListener("click", (event) => {
    if (event.target !== input) open();
  });
  zone.addEventListener("keydown", (event) => {
    if (event.key === "Enter" || event.key === " ") {
      event.preventDefault();
      open();
    }
  });
  input.addEventListener("change", () => {
    if (input.files.length) onFiles([...input.files]);
    input.value = ""; // choosing the same files again fires change again
  });
  for (const type of ["dragenter", "dragover"]) {
    zone.addEventListener(type, (event) => {
      event.preventDefault();
      if (!disabled()) zone.classList.add("dragging");
    });
  }
  for (const type of ["dragleave", "drop"]) {
    zone.addEventListener(type, () => zone.classList.remove("dragging"));
  }
  zone.addEventListener("drop", (event) => {
    event.preventDefault();
    const files = [...(event.dataTransfer?.files ?? [])];
    if (files.length && !disabled()) onFiles(files);
  });
}

/**
 * Object URLs for the chosen files (thumbnails), revoked when the selection changes. A chip's
 * "×" removes its file (onChange(files) is told); after a refusal that names files,
 * "Skip them and go on" removes those and calls onSkip(files).
 */
export class FileSelection {
  constructor(list, { onChange = null, onSkip = null } = {}) {
    this.list = list;
    this.files = [];
    this.urls = [];
    this.onChange = onChange;
    this.onSkip = onSkip;
    this.errors = new Map();
    this.locked = false; // while a job runs on these files
  }

  set(files) {
    for (const url of this.urls) URL.revokeObjectURL(url);
    this.files = files;
    this.urls = files.map((file) => URL.createObjectURL(file));
    this.errors = new Map();
    this.render();
  }

  /** Leave out the files at these positions (their thumbnails' URLs go with them). */
  remove(positions) {
    const gone = new Set(positions);
    for (const i of gone) URL.revokeObjectURL(this.urls[i]);
    this.files = this.files.filter((_, i) => !gone.has(i));
    this.urls = this.urls.filter((_, i) => !gone.has(i));
    const errors = new Map();
    for (const [i, message] of this.errors) {
      if (gone.has(i)) continue;
      errors.set(i - [...gone].filter((g) => g < i).length, message);
    }
    this.errors = errors;
    this.render(errors);
    this.onChange?.(this.files);
  }

  /** A chip per file: the first few, and every file a problem names; "+N more" for the rest. */
  render(errors = new Map()) {
    this.errors = errors;
    const shown = this.files
      .map((file, i) => [file, i])
      .filter(([, i]) => i < CHIPS_SHOWN || errors.has(i));
    const hidden = this.files.length - shown.length;
    fill(
      this.list,
      shown.map(([file, i]) => {
        const error = errors.get(i);
        return h(
          "li",
          { class: error ? "file-chip invalid" : "file-chip", title: file.name },
          thumbImg(this.urls[i], "", !file.type || file.type.startsWith("image/")),
          h("span", { class: "file-name", text: file.name }),
          error ? h("span", { class: "file-error", text: error }) : null,
          this.onChange
            ? h("button", {
                type: "button",
                class: "chip-remove",
                text: "×",
                title: `Remove ${file.name}`,
                "aria-label": `Remove ${file.name}`,
                disabled: this.locked,
                onclick: () => this.remove([i]),
              })
            : null,
        );
      }),
      hidden > 0 ? h("li", { class: "file-chip more", text: `+${hidden} more` }) : null,
      errors.size && this.onSkip
        ? h(
            "li",
            { class: "skip-bad" },
            h("button", {
              type: "button",
              class: "small",
              text: `Skip ${errors.size === 1 ? "this file" : `these ${errors.size} files`} and go on`,
              disabled: this.locked,
              onclick: () => {
                this.remove([...errors.keys()]);
                if (this.files.length) this.onSkip(this.files);
              },
            }),
          )
        : null,
    );
  }

  /** Mark the files a problem names (`images[3]`) with its message. */
  markErrors(error) {
    const marks = new Map();
    for (const { field, message } of error.fields ?? []) {
      const match = /^images\[(\d+)\]/.exec(field ?? "");
      if (match) marks.set(Number(match[1]), message);
    }
    this.render(marks);
  }
}

/** An <img>, or a file-shaped placeholder when it is not (or turns out not to be) an image. */
export function thumbImg(src, alt, isImage = true) {
  const placeholder = () => h("span", { class: "thumb-missing", "aria-hidden": "true", text: "?" });
  if (!isImage || !src) return placeholder();
  return h("img", {
    src,
    alt,
    loading: "lazy",
    decoding: "async",
    onerror: (event) => event.currentTarget.replaceWith(placeholder()),
  });
}


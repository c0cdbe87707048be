// clipq's web page: one ES module, no framework, no build step.
// Every action POSTs a job, then polls GET /v1/jobs/{id} to drive a progress bar and render
// the result. Errors (application/problem+json) are shown next to the control that caused them.

const POLL_INTERVAL_MS = 300;
const POLL_RETRIES = 8; // network failures in a row before a poll gives up
const UNREACHABLE = "clipq is not reachable: check that the service is running, then try again.";
const PAGE_SIZE = 48; // collection images per page
const CHIPS_SHOWN = 12; // chosen files listed by name before "+N more"

// --- small DOM helpers -------------------------------------------------------------------

const $ = (selector, root = document) => root.querySelector(selector);

/** Build an element: h("p", {class: "x", onclick: fn}, "text", child). Text is never parsed as HTML. */
function h(tag, props = {}, ...children) {
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

const percent = (p, digits = 1) => `${(p * 100).toFixed(digits)}%`;
const score = (s) => (s === null || s === undefined ? "—" : s.toFixed(3));
const sceneLabel = (name) => name.replaceAll("_", " ");

/** Replace an element's children, skipping the null/false placeholders of conditional parts. */
function fill(el, ...children) {
  el.replaceChildren(
    ...children.flat().filter((child) => child !== null && child !== undefined && child !== false),
  );
}

function setStatus(el, text, kind = "info") {
  el.textContent = text;
  el.dataset.kind = text ? kind : "";
}

// --- the API -----------------------------------------------------------------------------

class ApiError extends Error {
  constructor(message, { status = 0, problem = null } = {}) {
    super(message);
    this.status = status;
    this.problem = problem;
  }

  /** The fields the problem names: [{field, message}]. */
  get fields() {
    return this.problem?.errors ?? [];
  }
}

/**
 * Call a JSON endpoint; problems and network failures become ApiError. A multipart `form` with
 * an `onUpload(loaded, total)` callback goes through XMLHttpRequest, which reports upload progress.
 */
async function api(path, { method = "GET", json, form, onUpload } = {}) {
  const headers = { Accept: "application/json", ...authHeader() };
  let body;
  if (json !== undefined) {
    body = JSON.stringify(json);
    headers["Content-Type"] = "application/json";
  } else if (form) {
    body = form;
  }
  const send = onUpload ? sendWithProgress : sendWithFetch;
  const response = await send(path, { method, headers, body }, onUpload);
  if (response.status === 204) return null;
  let data = null;
  try {
    data = response.text ? JSON.parse(response.text) : null;
  } catch {
    data = null;
  }
  if (response.status < 200 || response.status >= 300) {
    let detail = data?.detail || data?.title || describeStatus(response.status);
    if (response.status === 413)
      detail = `Too large: ${humanBytes(detail)}. Send fewer or smaller images.`;
    if (response.status === 401) detail = askForKey(detail);
    throw new ApiError(detail, { status: response.status, problem: data });
  }
  return data;
}

async function sendWithFetch(path, init) {
  try {
    const response = await fetch(path, init);
    return { status: response.status, text: await response.text() };
  } catch {
    throw new ApiError(UNREACHABLE);
  }
}

function sendWithProgress(path, { method, headers, body }, onUpload) {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open(method, path);
    for (const [name, value] of Object.entries(headers)) xhr.setRequestHeader(name, value);
    xhr.upload.addEventListener("progress", (event) => {
      if (event.lengthComputable) onUpload(event.loaded, event.total);
    });
    xhr.addEventListener("load", () => resolve({ status: xhr.status, text: xhr.responseText }));
    xhr.addEventListener("error", () => reject(new ApiError(UNREACHABLE)));
    xhr.addEventListener("abort", () => reject(new ApiError(UNREACHABLE)));
    xhr.send(body);
  });
}

// --- API keys (only when the server is configured with them) -------------------------------

const KEY_STORAGE = "clipq.apiKey";

function apiKey() {
  try {
    return sessionStorage.getItem(KEY_STORAGE) ?? "";
  } catch {
    return ""; // storage disabled: no key
  }
}

const authHeader = () => (apiKey() ? { Authorization: `Bearer ${apiKey()}` } : {});

/** Open the key form after a 401; the message the action shows. */
function askForKey(detail) {
  const panel = $("#api-key");
  panel.open = true;
  setStatus($("#api-key-status"), detail, "error");
  $("#api-key-input").focus();
  return apiKey()
    ? "The API key was refused: enter a valid one under “API key” at the top, then try again."
    : "This clipq needs an API key: enter it under “API key” at the top, then try again.";
}

function setupApiKey() {
  const input = $("#api-key-input");
  const status = $("#api-key-status");
  const store = (key) => {
    try {
      if (key) sessionStorage.setItem(KEY_STORAGE, key);
      else sessionStorage.removeItem(KEY_STORAGE);
    } catch {
      setStatus(status, "This browser does not allow storing the key.", "error");
    }
  };
  $("#api-key-form").addEventListener("submit", (event) => {
    event.preventDefault();
    store(input.value.trim());
    input.value = "";
    setStatus(status, apiKey() ? "Key set for this tab." : "No key set.", "ok");
    thumbnails.clear();
  });
  $("#api-key-forget").addEventListener("click", () => {
    store("");
    setStatus(status, "Key forgotten.", "ok");
    thumbnails.clear();
  });
}

/**
 * Thumbnails from the API: a plain <img src> without a key; with one, fetched with the
 * Authorization header into a blob: URL (an <img> cannot send headers). Cached per URL.
 */
const thumbnails = new Map();

function loadThumbnail(img, url) {
  if (!apiKey()) {
    img.src = url;
    return;
  }
  if (!thumbnails.has(url)) {
    thumbnails.set(
      url,
      fetch(url, { headers: authHeader() })
        .then((response) => (response.ok ? response.blob() : Promise.reject(response.status)))
        .then((blob) => URL.createObjectURL(blob)),
    );
  }
  thumbnails
    .get(url)
    .then((src) => (img.src = src))
    .catch(() => {
      thumbnails.delete(url);
      img.dispatchEvent(new Event("error"));
    });
}

/** "over the limit of 2097152 bytes" → "over the limit of 2097152 bytes (2.0 MiB)". */
const humanBytes = (text) =>
  text.replace(/(\d{4,}) bytes/g, (all, n) => `${all} (${(Number(n) / 2 ** 20).toFixed(1)} MiB)`);

function describeStatus(status) {
  if (status === 413)
    return "The upload is too large for this server: send fewer or smaller images.";
  if (status === 502 || status === 503 || status === 504) return UNREACHABLE;
  return `The server answered ${status}.`;
}

/** Multipart body: every file as `images`, then the other fields (arrays repeat the field). */
function upload(files, fields = {}) {
  const form = new FormData();
  for (const file of files) form.append("images", file, file.name);
  for (const [name, value] of Object.entries(fields)) {
    for (const item of [value].flat())
      if (item !== undefined && item !== null) form.append(name, item);
  }
  return form;
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** Poll a job until it ends, calling onUpdate(job) on every answer; short waits keep progress live. */
async function pollJob(id, onUpdate) {
  let failures = 0;
  for (;;) {
    let job;
    try {
      job = await api(`/v1/jobs/${encodeURIComponent(id)}?wait=0`);
      failures = 0;
    } catch (error) {
      if (error.status !== 0 && error.status < 500) throw error;
      failures += 1;
      if (failures > POLL_RETRIES) throw error;
      onUpdate(null, `Connection lost — retrying (${failures}/${POLL_RETRIES})…`);
      await sleep(POLL_INTERVAL_MS * 2 ** Math.min(failures, 4));
      continue;
    }
    onUpdate(job);
    if (["succeeded", "failed", "cancelled"].includes(job.status)) return job;
    await sleep(POLL_INTERVAL_MS);
  }
}

// --- jobs in the page: progress bar, cancel, busy state -----------------------------------

/**
 * One tool's job area: a progress bar, a status line, the buttons to disable while it runs.
 * run(submit, noun) POSTs — submit(onUpload) returns the accepted Job and may report upload
 * progress — then polls, and resolves with the finished job's result, or null when it was
 * cancelled. Errors propagate to the caller, which shows them next to what caused them.
 */
class JobRunner {
  constructor(prefix, { controls = [], onBusy = () => {} } = {}) {
    this.box = $(`#${prefix}-job`);
    this.bar = $("progress", this.box);
    this.text = $(".job-text", this.box);
    this.status = $(`#${prefix}-status`);
    this.cancelButton = $(`#${prefix}-cancel`);
    this.controls = controls;
    this.onBusy = onBusy;
    this.jobId = null;
    this.busy = false;
    this.cancelButton?.addEventListener("click", () => this.cancel());
  }

  setBusy(busy) {
    this.busy = busy;
    for (const control of this.controls) control.disabled = busy;
    if (this.cancelButton) this.cancelButton.hidden = !busy;
    this.onBusy(busy);
  }

  showProgress(job, noun) {
    this.box.hidden = false;
    const { done, total } = job.progress;
    if (job.status === "queued") {
      this.bar.removeAttribute("value"); // indeterminate until a worker takes it
      this.text.textContent = "Waiting for a worker…";
    } else {
      this.bar.max = Math.max(total, 1);
      this.bar.value = done;
      this.text.textContent = total ? `${done} of ${total} ${noun}` : "Working…";
    }
  }

  /** The upload's own progress, before the job exists. */
  showUpload(loaded, total) {
    this.bar.max = Math.max(total, 1);
    this.bar.value = loaded;
    this.text.textContent = `Uploading ${Math.floor((100 * loaded) / Math.max(total, 1))}%`;
  }

  async run(submit, noun = "images") {
    this.setBusy(true);
    setStatus(this.status, "Sending…");
    this.box.hidden = false;
    this.bar.removeAttribute("value");
    this.text.textContent = "";
    try {
      const accepted = await submit((loaded, total) => this.showUpload(loaded, total));
      this.jobId = accepted.id;
      setStatus(this.status, "");
      const job = await pollJob(accepted.id, (update, note) => {
        if (update) {
          this.showProgress(update, noun);
          setStatus(this.status, "");
        } else setStatus(this.status, note, "warn");
      });
      if (job.status === "succeeded") return job.result;
      if (job.status === "cancelled") {
        setStatus(this.status, "Cancelled.", "warn");
        return null;
      }
      throw new ApiError(job.error?.detail || "The job failed.", { problem: job.error });
    } finally {
      this.jobId = null;
      this.box.hidden = true;
      this.setBusy(false);
    }
  }

  async cancel() {
    if (!this.jobId) return;
    this.cancelButton.disabled = true;
    try {
      await api(`/v1/jobs/${encodeURIComponent(this.jobId)}`, { method: "DELETE" });
      setStatus(this.status, "Cancelling…", "warn");
    } catch (error) {
      if (error.status !== 409) setStatus(this.status, error.message, "error");
    } finally {
      this.cancelButton.disabled = false;
    }
  }
}

// --- file selection: drop zones and the strip of chosen files -----------------------------

/** Make a drop zone keyboard- and mouse-operable; onFiles(File[]) receives what was chosen. */
function dropZone(zone, input, onFiles) {
  const disabled = () => zone.getAttribute("aria-disabled") === "true";
  const open = () => {
    if (!disabled()) input.click();
  };
  zone.addEventListener("click", open);
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

/** Object URLs for the chosen files (thumbnails), revoked when the selection changes. */
class FileSelection {
  constructor(list) {
    this.list = list;
    this.files = [];
    this.urls = [];
  }

  set(files) {
    for (const url of this.urls) URL.revokeObjectURL(url);
    this.files = files;
    this.urls = files.map((file) => URL.createObjectURL(file));
    this.render();
  }

  /** A chip per file: the first few, and every file a problem names; "+N more" for the rest. */
  render(errors = new Map()) {
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
        );
      }),
      hidden > 0 ? h("li", { class: "file-chip more", text: `+${hidden} more` }) : null,
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
function thumbImg(src, alt, isImage = true) {
  const placeholder = () => h("span", { class: "thumb-missing", "aria-hidden": "true", text: "?" });
  if (!isImage || !src) return placeholder();
  return h("img", {
    src,
    alt,
    loading: "lazy",
    onerror: (event) => event.currentTarget.replaceWith(placeholder()),
  });
}

// --- downloads ---------------------------------------------------------------------------

function download(filename, text, type) {
  const url = URL.createObjectURL(new Blob([text], { type }));
  const link = h("a", { href: url, download: filename, hidden: true });
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 1000);
}

function csvCell(value) {
  let text = value === null || value === undefined ? "" : String(value);
  // A cell starting with = + - @ would be a formula in a spreadsheet.
  if (typeof value === "string" && /^[=+\-@]/.test(text)) text = `'${text}`;
  return /[",\n\r]/.test(text) ? `"${text.replaceAll('"', '""')}"` : text;
}

const csv = (rows) => rows.map((row) => row.map(csvCell).join(",")).join("\r\n") + "\r\n";

const timestamp = () => new Date().toISOString().slice(0, 19).replaceAll(":", "-");

// --- pipeline configuration (what a person pastes into hloc or COLMAP) ----------------------

const shellQuote = (word) =>
  /^[\w@%+=:,./-]+$/.test(word) ? word : `'${word.replaceAll("'", "'\\''")}'`;

function colmapCommands(colmap) {
  const extract = [
    "colmap",
    "feature_extractor",
    "--database_path",
    "database.db",
    "--image_path",
    "images",
  ];
  const match = ["colmap", colmap.matcher, "--database_path", "database.db"];
  for (const [key, value] of Object.entries(colmap.feature_extractor ?? {}))
    extract.push(`--${key}`, value);
  for (const [key, value] of Object.entries(colmap.matcher_options ?? {}))
    match.push(`--${key}`, value);
  return [extract, match].map((argv) => argv.map(shellQuote).join(" "));
}

function pipelineText(matcher) {
  const pipeline = matcher.pipeline;
  if (!pipeline) return "";
  const lines = [];
  if (pipeline.hloc) {
    const { features, matcher: name } = pipeline.hloc;
    lines.push("# hloc");
    if (features) {
      lines.push("from hloc import extract_features, match_features");
      lines.push(`feature_conf = extract_features.confs[${JSON.stringify(features)}]`);
      lines.push(`matcher_conf = match_features.confs[${JSON.stringify(name)}]`);
    } else {
      lines.push("from hloc import match_dense");
      lines.push(`matcher_conf = match_dense.confs[${JSON.stringify(name)}]`);
    }
  }
  if (pipeline.colmap) {
    if (lines.length) lines.push("");
    lines.push("# COLMAP", ...colmapCommands(pipeline.colmap));
  }
  if (lines.length) lines.push("");
  lines.push(`# ${matcher.name}: ${pipeline.project}`);
  if (pipeline.notes) lines.push(...pipeline.notes.split("\n").map((line) => `# ${line}`));
  return lines.join("\n");
}

async function copyText(text, button) {
  const done = (label) => {
    button.textContent = label;
    setTimeout(() => (button.textContent = "Copy"), 1600);
  };
  try {
    await navigator.clipboard.writeText(text);
    done("Copied");
  } catch {
    // No clipboard outside a secure context: select the text so Ctrl+C copies it.
    const pre = button.closest(".pipeline")?.querySelector("pre");
    if (pre) window.getSelection().selectAllChildren(pre);
    done("Press Ctrl+C");
  }
}

// --- shared result pieces ----------------------------------------------------------------

function speedBadge(speed) {
  return h("span", { class: `badge speed-${speed}`, text: speed, title: `${speed} matcher` });
}

function meter(value, label) {
  return h(
    "div",
    {
      class: "meter",
      role: "meter",
      "aria-valuemin": "0",
      "aria-valuemax": "100",
      "aria-valuenow": (value * 100).toFixed(1),
      "aria-label": label,
    },
    h("span", {
      class: "meter-fill",
      style: { width: `${Math.max(0, Math.min(1, value)) * 100}%` },
    }),
  );
}

function matcherBlock(matcher, { heading = "Recommended matcher" } = {}) {
  const config = pipelineText(matcher);
  const copy = h("button", {
    type: "button",
    class: "ghost small",
    text: "Copy",
    onclick: (e) => copyText(config, e.currentTarget),
  });
  return h(
    "div",
    { class: "matcher" },
    h("p", { class: "eyebrow", text: heading }),
    h(
      "p",
      { class: "matcher-name" },
      h("strong", { text: matcher.name }),
      " ",
      speedBadge(matcher.speed),
    ),
    h("p", { class: "reason", text: matcher.reason }),
    config
      ? h(
          "details",
          { class: "pipeline" },
          h("summary", { text: "Pipeline config" }),
          h(
            "div",
            { class: "pipeline-body" },
            h("pre", { tabindex: "0" }, h("code", { text: config })),
            copy,
          ),
        )
      : null,
  );
}

function errorCard(filename, thumb, problem) {
  return h(
    "li",
    { class: "result-card error-card" },
    thumb ? h("div", { class: "thumb-frame" }, thumbImg(thumb, filename)) : null,
    h(
      "div",
      { class: "card-body" },
      h("h3", { class: "file-title", text: filename }),
      h("p", {
        class: "error-text",
        role: "alert",
        text: problem?.detail || "This image could not be read.",
      }),
    ),
  );
}

// --- Scenes ------------------------------------------------------------------------------

const SCENE_COLOURS = [
  "#6366f1",
  "#22c55e",
  "#f59e0b",
  "#06b6d4",
  "#ec4899",
  "#a855f7",
  "#ef4444",
  "#84cc16",
];
const sceneColours = new Map();
function sceneColour(scene) {
  if (!sceneColours.has(scene))
    sceneColours.set(scene, SCENE_COLOURS[sceneColours.size % SCENE_COLOURS.length]);
  return sceneColours.get(scene);
}

function renderSceneCard(image, thumb, { open = false } = {}) {
  const p = image.prediction;
  if (!p) return errorCard(image.filename, thumb, image.error);
  const scores = h(
    "ol",
    { class: "scores" },
    p.scores.map((s) =>
      h(
        "li",
        { class: s.scene === p.top_scene ? "top" : "" },
        h("span", { class: "score-name", text: sceneLabel(s.scene) }),
        meter(s.probability, `${sceneLabel(s.scene)} ${percent(s.probability)}`),
        h("span", { class: "score-value", text: percent(s.probability) }),
      ),
    ),
  );
  return h(
    "li",
    { class: "result-card scene-card", dataset: { scene: p.top_scene, filename: image.filename } },
    h("div", { class: "thumb-frame" }, thumbImg(thumb, image.filename)),
    h(
      "div",
      { class: "card-body" },
      h("h3", { class: "file-title", text: image.filename, title: image.filename }),
      h(
        "p",
        { class: "top-scene" },
        h("span", { class: "scene-dot", style: { background: sceneColour(p.top_scene) } }),
        h("strong", { class: "scene-name", text: sceneLabel(p.top_scene) }),
        h("span", { class: "confidence", text: percent(p.confidence) }),
        p.uncertain
          ? h("span", {
              class: "badge uncertain",
              text: "uncertain",
              title: "Low confidence, or a narrow lead over the second scene",
            })
          : null,
      ),
      meter(p.confidence, `Confidence ${percent(p.confidence)}`),
      h("p", { class: "description", text: p.description }),
      h("details", { class: "all-scores", open }, h("summary", { text: "All scores" }), scores),
      matcherBlock(p.recommended_matcher),
    ),
  );
}

/** Bars for every scene (those no image fell into at 0 %), largest share first. */
function distributionChart(distribution, sceneNames) {
  const names = [...new Set([...Object.keys(distribution), ...sceneNames])];
  const order = [...sceneColours.keys()];
  const rank = (scene) => (order.includes(scene) ? order.indexOf(scene) : order.length);
  const entries = names
    .map((scene) => [scene, distribution[scene] ?? 0])
    .sort((a, b) => b[1] - a[1] || rank(a[0]) - rank(b[0]));
  return h(
    "figure",
    { class: "chart" },
    h("figcaption", { text: "Scene distribution" }),
    h(
      "ul",
      { class: "bars", "aria-label": "Share of images per scene" },
      entries.map(([scene, share]) =>
        h(
          "li",
          { class: "bar-row", dataset: { scene } },
          h("span", { class: "bar-label", text: sceneLabel(scene) }),
          h(
            "span",
            { class: "bar-track", "aria-hidden": "true" },
            h("span", {
              class: "bar-fill",
              style: { width: `${share}%`, background: sceneColour(scene) },
            }),
          ),
          h("span", { class: "bar-value", text: `${share.toFixed(1)}%` }),
        ),
      ),
    ),
  );
}

function renderSummary(summary, speed, sceneNames) {
  const overall = summary.overall;
  return h(
    "section",
    { class: "card summary", "aria-labelledby": "summary-title" },
    h("h2", { id: "summary-title", text: "Dataset summary" }),
    h(
      "dl",
      { class: "stats" },
      h("div", {}, h("dt", { text: "Images" }), h("dd", { text: summary.total_images })),
      h(
        "div",
        {},
        h("dt", { text: "Scenes found" }),
        h("dd", { text: Object.keys(summary.scene_distribution).length }),
      ),
      h("div", {}, h("dt", { text: "Speed" }), h("dd", { text: speed })),
      h(
        "div",
        {},
        h("dt", { text: "Dataset" }),
        h("dd", { text: summary.mixed ? "mixed" : "one scene" }),
      ),
    ),
    h(
      "div",
      { class: "summary-grid" },
      distributionChart(summary.scene_distribution, sceneNames),
      h(
        "div",
        { class: "overall" },
        matcherBlock(overall.matcher, { heading: "Overall recommendation" }),
        h("p", { class: "overall-reason", text: overall.reason }),
        h(
          "p",
          { class: "dominant" },
          "Dominant scenes: ",
          summary.dominant_scenes.map((s) => h("span", { class: "chip", text: sceneLabel(s) })),
        ),
      ),
    ),
    h("h3", { text: "Recommended matchers per dominant scene" }),
    h(
      "ul",
      { class: "recommendations" },
      summary.recommended_matchers.map((r) =>
        h(
          "li",
          { class: "recommendation", dataset: { scene: r.scene } },
          h(
            "p",
            { class: "rec-head" },
            h("span", { class: "scene-dot", style: { background: sceneColour(r.scene) } }),
            h("strong", { text: sceneLabel(r.scene) }),
            h("span", { class: "share", text: `${r.percentage.toFixed(1)}%` }),
          ),
          matcherBlock(r.matcher, { heading: "Matcher" }),
        ),
      ),
    ),
  );
}

function scenesCsv(result) {
  const scenes = [
    ...new Set(result.images.flatMap((i) => i.prediction?.scores.map((s) => s.scene) ?? [])),
  ];
  const header = [
    "filename",
    "sha256",
    "top_scene",
    "confidence",
    "margin",
    "uncertain",
    "matcher",
    "matcher_speed",
    "hloc_features",
    "hloc_matcher",
    "error",
    ...scenes.map((s) => `p_${s}`),
  ];
  const rows = result.images.map((image) => {
    const p = image.prediction;
    const probabilities = new Map(
      (p?.scores ?? []).map((s) => [s.scene, s.probability.toFixed(6)]),
    );
    const m = p?.recommended_matcher;
    return [
      image.filename,
      image.sha256,
      p?.top_scene,
      p?.confidence.toFixed(6),
      p?.margin.toFixed(6),
      p?.uncertain,
      m?.name,
      m?.speed,
      m?.pipeline?.hloc?.features,
      m?.pipeline?.hloc?.matcher,
      image.error?.detail,
      ...scenes.map((s) => probabilities.get(s)),
    ];
  });
  return csv([header, ...rows]);
}

function downloadButtons(result, name, toCsv) {
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

function renderScenes(result, selection) {
  const root = $("#scenes-results");
  const thumbs = result.images.map((_, i) => selection.urls[i]);
  const single = result.images.length === 1;
  fill(
    root,
    h(
      "div",
      { class: "results-head" },
      h("h2", { text: single ? "Result" : `${result.images.length} images` }),
      h("p", {
        class: "hint",
        text: `${result.model} · taxonomy ${result.taxonomy.name} ${result.taxonomy.version}`,
      }),
      downloadButtons(result, "clipq-scenes", scenesCsv),
    ),
    result.summary
      ? renderSummary(
          result.summary,
          result.speed,
          result.images.flatMap((i) => i.prediction?.scores.map((s) => s.scene) ?? []),
        )
      : null,
    h(
      "ul",
      { class: single ? "result-grid single" : "result-grid", "aria-label": "Images" },
      result.images.map((image, i) => renderSceneCard(image, thumbs[i], { open: single })),
    ),
  );
}

function setupScenes() {
  const form = $("#scenes-form");
  const zone = $("#scenes-drop");
  const runButton = $("#scenes-run");
  const selection = new FileSelection($("#scenes-selected"));
  const runner = new JobRunner("scenes", {
    controls: [runButton, ...form.querySelectorAll("input[name=speed]")],
    onBusy: (busy) => zone.setAttribute("aria-disabled", String(busy)),
  });

  async function analyse() {
    if (runner.busy || !selection.files.length) return;
    const speed = new FormData(form).get("speed");
    const files = selection.files;
    try {
      const result = await runner.run(
        (onUpload) =>
          api("/v1/scenes", { method: "POST", form: upload(files, { speed }), onUpload }),
        files.length === 1 ? "image" : "images",
      );
      if (result) {
        renderScenes(result, selection);
        const failed = result.images.filter((i) => i.error).length;
        setStatus(
          runner.status,
          failed ? `Done; ${failed} image(s) could not be read.` : "Done.",
          failed ? "warn" : "ok",
        );
      }
    } catch (error) {
      selection.markErrors(error);
      setStatus(runner.status, error.message, "error");
    } finally {
      runButton.disabled = !selection.files.length;
    }
  }

  dropZone(zone, $("#scenes-files"), (files) => {
    if (runner.busy)
      return setStatus(runner.status, "A job is running: wait for it or cancel it.", "warn");
    selection.set(files);
    $("#scenes-results").replaceChildren();
    runButton.textContent = `Analyse ${files.length} image${files.length === 1 ? "" : "s"}`;
    analyse();
  });
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    analyse();
  });
}

async function loadSceneTypes() {
  const body = $("#scene-types .definitions-body");
  try {
    const taxonomy = await api("/v1/scene-types");
    taxonomy.scenes.forEach((scene) => sceneColour(scene.name));
    fill(
      body,
      h("p", {
        class: "hint",
        text: `${taxonomy.name} ${taxonomy.version}: each scene is scored with ${taxonomy.scenes[0]?.prompts.length ?? 0} prompts, averaged.`,
      }),
      h(
        "ul",
        { class: "definitions-grid" },
        taxonomy.scenes.map((scene) =>
          h(
            "li",
            { class: "definition" },
            h(
              "h3",
              {},
              h("span", { class: "scene-dot", style: { background: sceneColour(scene.name) } }),
              sceneLabel(scene.name),
            ),
            h("p", { text: scene.description }),
            scene.use_cases?.length
              ? h("p", { class: "hint", text: `Use cases: ${scene.use_cases.join(", ")}` })
              : null,
            h(
              "dl",
              { class: "slot-list" },
              ["primary", "alternative", "fast", "accurate"].map((slot) => {
                const m = scene.recommendations[slot];
                return h(
                  "div",
                  {},
                  h("dt", { text: slot }),
                  h("dd", {}, m.name, " ", speedBadge(m.speed)),
                );
              }),
            ),
          ),
        ),
      ),
    );
  } catch (error) {
    body.replaceChildren(
      h("p", { class: "status", dataset: { kind: "error" }, text: error.message }),
    );
  }
}

// --- Classify ----------------------------------------------------------------------------

const parseList = (text) => [
  ...new Set(
    text
      .split(/[,\n]/)
      .map((s) => s.trim())
      .filter(Boolean),
  ),
];

function renderClassifyCard(image, thumb) {
  if (image.error) return errorCard(image.filename, thumb, image.error);
  const [top] = image.predictions;
  return h(
    "li",
    {
      class: "result-card classify-card",
      dataset: { label: top?.label ?? "", filename: image.filename },
    },
    h("div", { class: "thumb-frame" }, thumbImg(thumb, image.filename)),
    h(
      "div",
      { class: "card-body" },
      h("h3", { class: "file-title", text: image.filename, title: image.filename }),
      top
        ? h(
            "p",
            { class: "top-scene" },
            h("strong", { class: "top-label", text: top.label }),
            h("span", { class: "confidence", text: percent(top.probability) }),
          )
        : null,
      h(
        "ol",
        { class: "scores" },
        image.predictions.map((p, i) =>
          h(
            "li",
            { class: i === 0 ? "top" : "" },
            h("span", { class: "score-name", text: p.label }),
            meter(p.probability, `${p.label} ${percent(p.probability)}`),
            h("span", { class: "score-value", text: percent(p.probability) }),
          ),
        ),
      ),
    ),
  );
}

function classifyCsv(result) {
  const rows = [["filename", "sha256", "rank", "label", "probability", "error"]];
  for (const image of result.images) {
    if (image.error) rows.push([image.filename, image.sha256, "", "", "", image.error.detail]);
    image.predictions.forEach((p, i) =>
      rows.push([image.filename, image.sha256, i + 1, p.label, p.probability.toFixed(6), ""]),
    );
  }
  return csv(rows);
}

function setupClassify() {
  const form = $("#classify-form");
  const zone = $("#classify-drop");
  const runButton = $("#classify-run");
  const labelsInput = $("#classify-labels");
  const templateInput = $("#classify-template");
  const selection = new FileSelection($("#classify-selected"));
  const runner = new JobRunner("classify", {
    controls: [runButton],
    onBusy: (busy) => zone.setAttribute("aria-disabled", String(busy)),
  });
  const fieldErrors = {
    labels: $("#classify-labels-error"),
    prompt_template: $("#classify-template-error"),
  };
  const clearFieldErrors = () => Object.values(fieldErrors).forEach((el) => (el.textContent = ""));
  const updateButton = () => {
    const n = selection.files.length;
    runButton.disabled = runner.busy || !n;
    runButton.textContent = n ? `Classify ${n} image${n === 1 ? "" : "s"}` : "Classify";
  };

  dropZone(zone, $("#classify-files"), (files) => {
    if (runner.busy)
      return setStatus(runner.status, "A job is running: wait for it or cancel it.", "warn");
    selection.set(files);
    setStatus(runner.status, "");
    updateButton();
  });

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    clearFieldErrors();
    const labels = parseList(labelsInput.value);
    if (!labels.length) {
      fieldErrors.labels.textContent = "Type at least one label.";
      labelsInput.focus();
      return;
    }
    if (!selection.files.length)
      return setStatus(runner.status, "Choose one or more images first.", "error");
    const files = selection.files;
    const fields = {
      labels,
      prompt_template: templateInput.value.trim() || "a photo of a {}.",
      top_k: $("#classify-topk").value || "3",
    };
    try {
      const result = await runner.run(
        (onUpload) =>
          api("/v1/classify", { method: "POST", form: upload(files, fields), onUpload }),
        "images",
      );
      if (!result) return;
      fill(
        $("#classify-results"),
        h(
          "div",
          { class: "results-head" },
          h("h2", {
            text: `${result.images.length} image${result.images.length === 1 ? "" : "s"} · ${labels.length} labels`,
          }),
          h("p", { class: "hint", text: result.model }),
          downloadButtons(result, "clipq-classify", classifyCsv),
        ),
        h(
          "ul",
          { class: "result-grid" },
          result.images.map((image, i) => renderClassifyCard(image, selection.urls[i])),
        ),
      );
      setStatus(runner.status, "Done.", "ok");
    } catch (error) {
      selection.markErrors(error);
      for (const { field, message } of error.fields) {
        const key = Object.keys(fieldErrors).find((k) => field?.startsWith(k));
        if (key) fieldErrors[key].textContent = message;
      }
      setStatus(runner.status, error.message, "error");
    } finally {
      updateButton();
    }
  });
}

// --- Collections and search ----------------------------------------------------------------

const state = { collections: [], current: null, imagesOffset: 0, imagesRequest: null };

function apiImage(url, alt) {
  const img = h("img", { alt, loading: "lazy" });
  loadThumbnail(img, url);
  return img;
}

/** A thumbnail with boxes (in the original image's pixels) drawn over it, fitted in a 4:3 frame. */
function boxedThumb({ url, width, height, boxes = [], alt }) {
  const frameRatio = 4 / 3;
  const ratio = width && height ? width / height : frameRatio;
  const size =
    ratio >= frameRatio
      ? { width: "100%", height: `${(frameRatio / ratio) * 100}%` }
      : { width: `${(ratio / frameRatio) * 100}%`, height: "100%" };
  const overlay = boxes.length
    ? h(
        "svg",
        {
          class: "boxes",
          viewBox: `0 0 ${width} ${height}`,
          preserveAspectRatio: "none",
          "aria-hidden": "true",
        },
        boxes.map(({ box, kind }) =>
          h("rect", {
            class: `box ${kind}`,
            x: box[0],
            y: box[1],
            width: Math.max(1, box[2] - box[0]),
            height: Math.max(1, box[3] - box[1]),
            "vector-effect": "non-scaling-stroke",
          }),
        ),
      )
    : null;
  return h(
    "div",
    { class: "thumb-frame" },
    h("div", { class: "thumb-fit", style: size }, apiImage(url, alt), overlay),
  );
}

function collectionLabel(c) {
  return `${c.name} (${c.image_count} image${c.image_count === 1 ? "" : "s"})`;
}

async function loadCollections(selectId = null) {
  const select = $("#collection-select");
  const status = $("#collections-status");
  try {
    state.collections = await api("/v1/collections");
  } catch (error) {
    state.collections = [];
    setStatus(
      status,
      error.status === 404 ? "Collections are not available on this server." : error.message,
      "error",
    );
    renderCollectionChoice(null);
    return;
  }
  setStatus(status, "");
  const keep = selectId ?? state.current?.id ?? state.collections[0]?.id ?? null;
  select.replaceChildren(
    ...(state.collections.length
      ? state.collections.map((c) => h("option", { value: c.id, text: collectionLabel(c) }))
      : [h("option", { value: "", text: "No collections yet" })]),
  );
  const current = state.collections.find((c) => c.id === keep) ?? state.collections[0] ?? null;
  if (current) select.value = current.id;
  renderCollectionChoice(current);
}

function renderCollectionChoice(collection) {
  const changed = state.current?.id !== collection?.id;
  state.current = collection;
  const has = Boolean(collection);
  $("#collection-delete").disabled = !has;
  $("#ingest-drop").setAttribute("aria-disabled", String(!has));
  for (const id of ["#search-run", "#evaluate-run"]) $(id).disabled = !has || runners[id]?.busy;
  fill(
    $("#collection-info"),
    ...(has
      ? [
          h("span", { text: `${collection.image_count} images` }),
          " · ",
          h("span", { text: `crops: ${collection.crop_background}` }),
          " · ",
          h("span", { class: "hint", text: collection.model }),
        ]
      : [h("span", { class: "hint", text: "Create a collection to add images and search them." })]),
  );
  if (changed) {
    $("#search-results").replaceChildren();
    $("#evaluate-results").replaceChildren();
    loadCollectionImages(true);
  }
}

async function loadCollectionImages(reset) {
  const list = $("#collection-images");
  const status = $("#collection-images-status");
  const more = $("#collection-more");
  if (reset) {
    list.replaceChildren();
    state.imagesOffset = 0;
  }
  more.hidden = true;
  const collection = state.current;
  if (!collection) return setStatus(status, "");
  const request = (state.imagesRequest = {}); // a newer call makes this one's answer stale
  try {
    const page = await api(
      `/v1/collections/${encodeURIComponent(collection.id)}/images?offset=${state.imagesOffset}&limit=${PAGE_SIZE}`,
    );
    if (request !== state.imagesRequest) return;
    const regions = $("#browser-regions").checked;
    list.append(
      ...page.images.map((image) =>
        h(
          "li",
          { class: "image-tile", dataset: { imageId: image.id } },
          boxedThumb({
            url: image.thumbnail_url,
            width: image.width,
            height: image.height,
            alt: image.filename,
            boxes: regions ? image.regions.map((r) => ({ box: r.box, kind: "region" })) : [],
          }),
          h("p", { class: "file-title", text: image.filename, title: image.filename }),
          h(
            "p",
            { class: "tile-meta" },
            image.labels.map((l) => h("span", { class: "chip", text: l })),
            h("span", {
              class: "hint",
              text: `${image.regions.length} region${image.regions.length === 1 ? "" : "s"}`,
            }),
          ),
        ),
      ),
    );
    state.imagesOffset += page.images.length;
    more.hidden = state.imagesOffset >= page.total;
    setStatus(
      status,
      page.total
        ? `${page.total} image${page.total === 1 ? "" : "s"}${more.hidden ? "" : `, showing ${state.imagesOffset}`}.`
        : "No images yet: add some above.",
    );
  } catch (error) {
    setStatus(status, error.message, "error");
  }
}

function labelsForFiles(files) {
  const shared = $("#ingest-labels").value.trim();
  const fromName = $("#ingest-label-from-name").checked;
  if (!shared && !fromName) return undefined;
  return files.map((file) => {
    const labels = shared ? parseList(shared) : [];
    if (fromName) {
      const stem = file.name
        .replace(/\.[^.]+$/, "")
        .replace(/[\s_-]*\d+$/, "")
        .replace(/[_-]+/g, " ")
        .trim();
      if (stem) labels.push(stem);
    }
    return labels.join(",");
  });
}

function renderIngest(result) {
  const failed = result.images.filter((i) => i.status === "failed");
  return h(
    "div",
    { class: "ingest-result" },
    h(
      "p",
      {},
      h("strong", { text: `${result.added} added` }),
      ` · ${result.duplicates} already there · ${result.failed} failed`,
    ),
    failed.length
      ? h(
          "ul",
          { class: "error-list" },
          failed.map((i) =>
            h("li", { text: `${i.filename}: ${i.error?.detail ?? i.error ?? "failed"}` }),
          ),
        )
      : null,
  );
}

function renderSearch(result) {
  const root = $("#search-results");
  const crops = result.rerank === "crops";
  const head = h(
    "p",
    { class: "hint" },
    `“${result.query}” · ${crops ? "with crop reranking" : "full images"}`,
    result.min_score !== null && result.min_score !== undefined
      ? ` · threshold ${result.min_score}`
      : "",
  );
  if (result.no_match) {
    fill(
      root,
      head,
      h(
        "div",
        { class: "no-match" },
        h("strong", { text: "No match" }),
        h("span", {
          text: `No image in the collection clears the threshold ${result.min_score} for “${result.query}”${typeof result.best_score === "number" ? ` (best score: ${score(result.best_score)})` : ""}.`,
        }),
      ),
      result.hits.length
        ? h("p", { class: "hint", text: "Closest images, below the threshold:" })
        : null,
      result.hits.length ? hitGrid(result.hits, crops, true) : null,
    );
    return;
  }
  fill(root, head, hitGrid(result.hits, crops, false));
}

function hitGrid(hits, crops, dim) {
  return h(
    "ol",
    { class: dim ? "hit-grid dim" : "hit-grid", "aria-label": "Search results" },
    hits.map((hit, i) =>
      h(
        "li",
        { class: "hit", dataset: { imageId: hit.image_id, filename: hit.filename } },
        h("span", { class: "rank", text: `#${i + 1}` }),
        boxedThumb({
          url: hit.thumbnail_url,
          width: hit.width,
          height: hit.height,
          alt: hit.filename,
          boxes: hit.crop_box ? [{ box: hit.crop_box, kind: "match" }] : [],
        }),
        h("p", { class: "hit-score" }, h("strong", { text: score(hit.score) })),
        crops
          ? h("p", {
              class: "hint score-parts",
              text: `image ${score(hit.image_score)} · crop ${score(hit.crop_score)}`,
            })
          : null,
        h("p", { class: "file-title", text: hit.filename, title: hit.filename }),
        hit.labels?.length
          ? h(
              "p",
              { class: "tile-meta" },
              hit.labels.map((l) => h("span", { class: "chip", text: l })),
            )
          : null,
        hit.crop_box
          ? h("p", {
              class: "hint crop-note",
              text:
                hit.crop_score !== null && hit.crop_score >= hit.image_score
                  ? "Box: the crop that decided the score"
                  : "Box: the best crop (the full image scored higher)",
            })
          : null,
      ),
    ),
  );
}

function parseQueries(text) {
  const lines = text
    .split("\n")
    .map((l) => l.trim())
    .filter(Boolean);
  if (!lines.length) return null;
  return lines.map((line) => {
    const [query, labels] = line.includes("=>") ? line.split("=>", 2) : [line, line];
    return { query: query.trim(), relevant_labels: parseList(labels) };
  });
}

function renderEvaluation(result) {
  const modes = [
    ["none", "Full image"],
    ["crops", "With crops"],
  ].filter(([mode]) => result.modes[mode]);
  const metrics = [
    ...result.ks.map((k) => [`Recall@${k}`, (m) => m.recall_at[String(k)]]),
    ["MRR", (m) => m.mrr],
  ];
  const both = modes.length === 2;
  const table = h(
    "table",
    { class: "metrics" },
    h("caption", { text: `${result.queries.length} queries` }),
    h(
      "thead",
      {},
      h(
        "tr",
        {},
        h("th", { scope: "col", text: "Metric" }),
        modes.map(([, label]) => h("th", { scope: "col", text: label })),
        both ? h("th", { scope: "col", text: "Δ" }) : null,
      ),
    ),
    h(
      "tbody",
      {},
      metrics.map(([name, get]) => {
        const values = modes.map(([mode]) => get(result.modes[mode]));
        const delta = both ? values[1] - values[0] : 0;
        return h(
          "tr",
          { dataset: { metric: name } },
          h("th", { scope: "row", text: name }),
          values.map((v) => h("td", { text: v === undefined ? "—" : v.toFixed(3) })),
          both
            ? h("td", {
                class: delta > 0 ? "delta up" : delta < 0 ? "delta down" : "delta",
                text: `${delta > 0 ? "+" : ""}${delta.toFixed(3)}`,
              })
            : null,
        );
      }),
    ),
  );
  const perQuery = h(
    "details",
    { class: "per-query" },
    h("summary", { text: "Per query" }),
    h(
      "div",
      { class: "table-scroll" },
      h(
        "table",
        { class: "metrics" },
        h(
          "thead",
          {},
          h(
            "tr",
            {},
            h("th", { scope: "col", text: "Query" }),
            h("th", { scope: "col", text: "Relevant" }),
            modes.map(([mode]) =>
              h("th", { scope: "col", text: mode === "none" ? "Rank" : "Rank with crops" }),
            ),
          ),
        ),
        h(
          "tbody",
          {},
          result.queries.map((q) =>
            h(
              "tr",
              {},
              h("th", { scope: "row", text: q.query }),
              h("td", { text: q.relevant_labels.join(", ") }),
              modes.map(([mode]) => h("td", { text: q[mode]?.rank ?? "—" })),
            ),
          ),
        ),
      ),
    ),
  );
  fill($("#evaluate-results"), h("div", { class: "table-scroll" }, table), perQuery);
}

const runners = {};

function setupCollections() {
  const select = $("#collection-select");
  const ingestZone = $("#ingest-drop");
  const ingestButton = $("#ingest-run");
  const selection = new FileSelection($("#ingest-selected"));

  const ingest = new JobRunner("ingest", {
    controls: [ingestButton, select],
    onBusy: (busy) => ingestZone.setAttribute("aria-disabled", String(busy || !state.current)),
  });
  const search = new JobRunner("search", { controls: [$("#search-run")] });
  const evaluate = new JobRunner("evaluate", { controls: [$("#evaluate-run")] });
  runners["#search-run"] = search;
  runners["#evaluate-run"] = evaluate;
  const requireCollection = (status) => {
    if (state.current) return true;
    setStatus(status, "Create or choose a collection first.", "error");
    return false;
  };

  select.addEventListener("change", () =>
    renderCollectionChoice(state.collections.find((c) => c.id === select.value) ?? null),
  );

  $("#collection-create").addEventListener("submit", async (event) => {
    event.preventDefault();
    const status = $("#collection-create-status");
    const nameInput = $("#collection-name");
    const name = nameInput.value.trim();
    if (!name) {
      setStatus(status, "Give the collection a name.", "error");
      nameInput.focus();
      return;
    }
    const button = $("#collection-create-run");
    button.disabled = true;
    try {
      const created = await api("/v1/collections", {
        method: "POST",
        json: { name, crop_background: $("#collection-background").value },
      });
      nameInput.value = "";
      setStatus(status, `Created “${created.name}”.`, "ok");
      await loadCollections(created.id);
    } catch (error) {
      setStatus(status, error.message, "error");
    } finally {
      button.disabled = false;
    }
  });

  $("#collection-delete").addEventListener("click", async () => {
    const collection = state.current;
    if (
      !collection ||
      !window.confirm(
        `Delete the collection “${collection.name}” and its ${collection.image_count} images?`,
      )
    )
      return;
    try {
      await api(`/v1/collections/${encodeURIComponent(collection.id)}`, { method: "DELETE" });
      setStatus($("#collections-status"), `Deleted “${collection.name}”.`, "ok");
      state.current = null;
      await loadCollections();
    } catch (error) {
      setStatus($("#collections-status"), error.message, "error");
    }
  });

  dropZone(ingestZone, $("#ingest-files"), (files) => {
    if (ingest.busy)
      return setStatus(ingest.status, "An upload is running: wait for it or cancel it.", "warn");
    selection.set(files);
    ingestButton.disabled = false;
    ingestButton.textContent = `Upload ${files.length} image${files.length === 1 ? "" : "s"}`;
    setStatus(ingest.status, "");
  });

  $("#ingest-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    if (!requireCollection(ingest.status) || !selection.files.length) return;
    const collection = state.current;
    const files = selection.files;
    try {
      const result = await ingest.run(
        (onUpload) =>
          api(`/v1/collections/${encodeURIComponent(collection.id)}/images`, {
            method: "POST",
            form: upload(files, { labels: labelsForFiles(files) }),
            onUpload,
          }),
        "images",
      );
      if (!result) return;
      ingest.status.replaceChildren(renderIngest(result));
      ingest.status.dataset.kind = result.failed ? "warn" : "ok";
      selection.set([]);
      ingestButton.textContent = "Upload";
      await loadCollections(collection.id);
      await loadCollectionImages(true);
    } catch (error) {
      selection.markErrors(error);
      setStatus(ingest.status, error.message, "error");
    } finally {
      ingestButton.disabled = !selection.files.length;
    }
  });

  const rerank = $("#search-rerank");
  const fusion = $("#search-fusion");
  const syncSearchOptions = () => {
    $("#search-fusion-field").hidden = !rerank.checked;
    $("#search-weight-field").hidden = !rerank.checked || fusion.value !== "weighted";
  };
  rerank.addEventListener("change", () => {
    syncSearchOptions();
    if ($("#search-query").value.trim() && state.current && !search.busy)
      $("#search-form").requestSubmit();
  });
  fusion.addEventListener("change", syncSearchOptions);

  $("#search-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    if (!requireCollection(search.status)) return;
    const query = $("#search-query").value.trim();
    if (!query) {
      setStatus(search.status, "Type what you are looking for.", "error");
      $("#search-query").focus();
      return;
    }
    const minScore = $("#search-min-score").value;
    const body = {
      query,
      top_k: Number($("#search-topk").value) || 8,
      rerank: rerank.checked ? "crops" : "none",
      fusion: fusion.value,
      crop_weight: Number($("#search-weight").value || 0.5),
      min_score: minScore === "" ? null : Number(minScore),
    };
    try {
      const result = await search.run(
        () =>
          api(`/v1/collections/${encodeURIComponent(state.current.id)}/search`, {
            method: "POST",
            json: body,
          }),
        "queries",
      );
      if (!result) return;
      renderSearch(result);
      setStatus(
        search.status,
        result.no_match
          ? ""
          : `${result.hits.length} result${result.hits.length === 1 ? "" : "s"}.`,
        "ok",
      );
    } catch (error) {
      setStatus(search.status, error.message, "error");
    } finally {
      $("#search-run").disabled = !state.current;
    }
  });

  $("#evaluate-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    if (!requireCollection(evaluate.status)) return;
    const ks = [
      ...new Set(
        $("#evaluate-ks")
          .value.split(/[\s,]+/)
          .map(Number)
          .filter((k) => Number.isInteger(k) && k > 0),
      ),
    ].sort((a, b) => a - b);
    if (!ks.length) return setStatus(evaluate.status, "Give K values such as 1, 5, 10.", "error");
    const body = {
      queries: parseQueries($("#evaluate-queries").value),
      prompt_template: $("#evaluate-template").value.trim() || "a photo of a {}.",
      ks,
      // "With crops" fuses scores as the search form says.
      fusion: $("#search-fusion").value,
      crop_weight: Number($("#search-weight").value || 0.5),
    };
    try {
      const result = await evaluate.run(
        () =>
          api(`/v1/collections/${encodeURIComponent(state.current.id)}/evaluate`, {
            method: "POST",
            json: body,
          }),
        "queries",
      );
      if (!result) return;
      renderEvaluation(result);
      setStatus(evaluate.status, "Done.", "ok");
    } catch (error) {
      setStatus(evaluate.status, error.message, "error");
    } finally {
      $("#evaluate-run").disabled = !state.current;
    }
  });

  $("#collection-more").addEventListener("click", () => loadCollectionImages(false));
  $("#browser-regions").addEventListener("change", () => loadCollectionImages(true));
}

// --- tabs, service status ------------------------------------------------------------------

function setupTabs() {
  const tabs = [...document.querySelectorAll("[role=tab]")];
  const select = (tab, focus = true) => {
    for (const t of tabs) {
      const selected = t === tab;
      t.setAttribute("aria-selected", String(selected));
      t.tabIndex = selected ? 0 : -1;
      $(`#${t.getAttribute("aria-controls")}`).hidden = !selected;
    }
    if (focus) tab.focus();
    history.replaceState(null, "", `#${tab.id.replace("tab-", "")}`);
    if (tab.id === "tab-collections") loadCollections(); // others may have changed them
  };
  tabs.forEach((tab, i) => {
    tab.addEventListener("click", () => select(tab));
    tab.addEventListener("keydown", (event) => {
      const moves = { ArrowRight: i + 1, ArrowLeft: i - 1, Home: 0, End: tabs.length - 1 };
      if (!(event.key in moves)) return;
      event.preventDefault();
      select(tabs[(moves[event.key] + tabs.length) % tabs.length]);
    });
  });
  const initial = tabs.find((t) => t.id === `tab-${location.hash.slice(1)}`) ?? tabs[0];
  select(initial, false);
}

async function checkService() {
  const el = $("#service-status");
  let health = "down";
  let text = UNREACHABLE;
  try {
    const response = await fetch("/readyz", { headers: { Accept: "application/json" } });
    const body = await response.json().catch(() => null);
    if (response.ok) {
      health = "ready";
      text = `Ready · ${body.workers} worker${body.workers === 1 ? "" : "s"}`;
    } else if (body && body.redis === false) {
      text = "The job store (Redis) is down: jobs cannot be accepted.";
    } else if (body) {
      health = "degraded";
      text = "No worker is running: jobs will wait in the queue.";
    }
  } catch {
    // unreachable: the defaults above
  }
  el.dataset.state = health;
  el.textContent = text;
}

setupApiKey();
setupScenes();
setupClassify();
setupCollections();
setupTabs();
loadSceneTypes();
checkService();
setInterval(checkService, 20000);

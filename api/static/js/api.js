// The API: requests with the key, problem+json errors, uploads with progress, polling a job.

import { $, setStatus } from "./dom.js";

export const POLL_INTERVAL_MS = 300;
export const POLL_RETRIES = 8; // network failures in a row before a poll gives up
export const UNREACHABLE = "clipq is not reachable: check that the service is running, then try again.";

export class ApiError extends Error {
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
export async function api(path, { method = "GET", json, form, onUpload } = {}) {
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

export async function sendWithFetch(path, init) {
  try {
    const response = await fetch(path, init);
    return { status: response.status, text: await response.text() };
  } catch {
    throw new ApiError(UNREACHABLE);
  }
}

export function sendWithProgress(path, { method, headers, body }, onUpload) {
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


export const KEY_STORAGE = "clipq.apiKey";

export function apiKey() {
  try {
    return sessionStorage.getItem(KEY_STORAGE) ?? "";
  } catch {
    return ""; // storage disabled: no key
  }
}

export const authHeader = () => (apiKey() ? { Authorization: `Bearer ${apiKey()}` } : {});

/** Open the key form after a 401; the message the action shows. */
export function askForKey(detail) {
  const panel = $("#api-key");
  panel.open = true;
  setStatus($("#api-key-status"), detail, "error");
  $("#api-key-input").focus();
  return apiKey()
    ? "The API key was refused: enter a valid one under “API key” at the top, then try again."
    : "This clipq needs an API key: enter it under “API key” at the top, then try again.";
}

export function setupApiKey() {
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
/** Results name their model by its weights ("embedded:clip-tiny"), collections and GET
 * /v1/models by the model string a request names ("embedded"): the page says the latter. */
export const modelStrings = new Map(); // a result's model -> its model string (models.js fills it)
export const modelName = (model) => modelStrings.get(model) ?? model;

export const thumbnails = new Map();

export function loadThumbnail(img, url) {
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
export const humanBytes = (text) =>
  text.replace(/(\d{4,}) bytes/g, (all, n) => `${all} (${(Number(n) / 2 ** 20).toFixed(1)} MiB)`);

export function describeStatus(status) {
  if (status === 413)
    return "The upload is too large for this server: send fewer or smaller images.";
  if (status === 502 || status === 503 || status === 504) return UNREACHABLE;
  return `The server answered ${status}.`;
}

/** Multipart body: every file as `images`, then the other fields (arrays repeat the field). */
export function upload(files, fields = {}) {
  const form = new FormData();
  for (const file of files) form.append("images", file, file.name);
  for (const [name, value] of Object.entries(fields)) {
    for (const item of [value].flat())
      if (item !== undefined && item !== null) form.append(name, item);
  }
  return form;
}

export const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** Poll a job until it ends, calling onUpdate(job) on every answer; short waits keep progress live. */
export async function pollJob(id, onUpdate) {
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


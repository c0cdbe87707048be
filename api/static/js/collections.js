// The Collections & search tab: collections, ingest, search with crop boxes, evaluation.

import { api, loadThumbnail, upload } from "./api.js";
import { $, fill, h, parseList, score, setStatus } from "./dom.js";
import { dropZone, FileSelection } from "./files.js";
import { setupImports } from "./imports.js";
import { JobRunner } from "./jobs.js";
import { closeViewer, openViewer } from "./viewer.js";

const CHOSEN_KEY = "clipq.collection"; // the collection chosen last, kept across reloads

export const PAGE_SIZE = 48; // collection images per page

export const state = { collections: [], current: null, imagesOffset: 0, imagesRequest: null };

export function apiImage(url, alt) {
  const img = h("img", { alt, loading: "lazy" });
  loadThumbnail(img, url);
  return img;
}

/** A thumbnail with boxes (in the original image's pixels) drawn over it, fitted in a 4:3 frame. */
export function boxedThumb({ url, width, height, boxes = [], alt }) {
  if (!url) {
    // imported as an embedding alone (POST .../embeddings): there is no picture to show
    const text = "embedding only";
    return h("div", { class: "thumb-frame" }, h("span", { class: "thumb-missing no-picture", text, title: alt }));
  }
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

export function collectionLabel(c) {
  return `${c.name} (${c.image_count} image${c.image_count === 1 ? "" : "s"})`;
}

export async function loadCollections(selectId = null) {
  const select = $("#collection-select");
  const status = $("#collections-status");
  const card = $("#collections-manage");
  card.setAttribute("aria-busy", "true");
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
  } finally {
    card.removeAttribute("aria-busy");
  }
  setStatus(status, "");
  const remembered = localStorage.getItem(CHOSEN_KEY);
  const keep = selectId ?? state.current?.id ?? remembered ?? null;
  select.replaceChildren(
    ...(state.collections.length
      ? state.collections.map((c) => h("option", { value: c.id, text: collectionLabel(c) }))
      : [h("option", { value: "", text: "No collections yet" })]),
  );
  // "New collection" stays folded once there is one, so that search comes first on a phone.
  if (!state.collections.length) $("#collection-new").open = true;
  const current = state.collections.find((c) => c.id === keep) ?? state.collections[0] ?? null;
  if (current) select.value = current.id;
  renderCollectionChoice(current);
}

export function renderCollectionChoice(collection) {
  const changed = state.current?.id !== collection?.id;
  state.current = collection;
  if (collection) localStorage.setItem(CHOSEN_KEY, collection.id);
  const has = Boolean(collection);
  $("#collection-delete").disabled = !has;
  $("#collection-select").title = has ? collectionLabel(collection) : "";
  $("#ingest-drop").setAttribute("aria-disabled", String(!has));
  for (const id of ["#search-run", "#search-like-run", "#evaluate-run"])
    $(id).disabled = !has || runners[id]?.busy;
  fill(
    $("#collection-info"),
    ...(has
      ? [
          // the whole name, which a narrow picker may cut
          h("strong", { class: "collection-name", text: collection.name }),
          " · ",
          h("span", { text: `${collection.image_count} image${collection.image_count === 1 ? "" : "s"}` }),
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

export async function loadCollectionImages(reset) {
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
    state.images = reset ? page.images : [...(state.images ?? []), ...page.images];
    const regions = $("#browser-regions").checked;
    list.append(
      ...page.images.map((image) =>
        h(
          "li",
          { class: "image-tile", dataset: { imageId: image.id, view: image.id } },
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
          h("p", { class: "tile-actions" }, similarButton(image.id, image.filename)),
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

/** A file's name as a label: its stem without a trailing number, "_" and "-" as spaces
 * ("red_circle_01.png" → "red circle"), the way labels are written everywhere here. */
export function labelFromName(name) {
  return name
    .replace(/\.[^.]+$/, "")
    .replace(/[\s_-]*\d+$/, "")
    .replace(/[_-]+/g, " ")
    .replace(/\s+/g, " ")
    .trim();
}

export function labelsForFiles(files) {
  const shared = $("#ingest-labels").value.trim();
  const fromName = $("#ingest-label-from-name").checked;
  if (!shared && !fromName) return undefined;
  return files.map((file) => {
    const labels = shared ? parseList(shared) : [];
    if (fromName) {
      const stem = labelFromName(file.name);
      if (stem) labels.push(stem);
    }
    return labels.join(",");
  });
}

export function renderIngest(result) {
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

/** What was searched for, in words: the text, or the image the hits are like. */
export function searchedFor(result, imageName = null) {
  if (typeof result.query === "string") return `“${result.query}”`;
  return `images like ${result.image ?? imageName ?? result.image_id}`;
}

/** A button that searches the current collection for images like this one of its own. */
export function similarButton(imageId, filename) {
  return h("button", {
    type: "button",
    class: "link similar",
    dataset: { similarTo: imageId, filename },
    text: "Similar",
    title: `Find the images most like ${filename}`,
    "aria-label": `Find images similar to ${filename}`,
  });
}

export function renderSearch(result, imageName = null) {
  const root = $("#search-results");
  state.hits = result.hits;
  const crops = result.rerank === "crops";
  const asked = searchedFor(result, imageName);
  const threshold = result.min_score ?? null;
  const head = h(
    "p",
    { class: "hint search-head" },
    `${asked} · ${crops ? `with crop reranking (${result.fusion})` : "full images"}`,
    result.approximate ? " · approximate index (large collection)" : "",
    threshold !== null
      ? ` · threshold ${score(threshold)}${result.decision === "calibrated" ? " (the collection's own)" : ""}`
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
          text:
            typeof result.best_score === "number"
              ? `No image in the collection clears the threshold ${score(threshold)} for ${asked} (best score: ${score(result.best_score)}).`
              : "The collection has no other image to compare with.",
        }),
      ),
      scoreHelp(result),
    );
    return;
  }
  // The threshold decides only whether the best hit is a match; the hits after it that
  // fall under it are set apart, so that they do not read as matches too.
  const matches = result.hits.filter((hit) => threshold === null || hit.score >= threshold);
  const below = result.hits.filter((hit) => !matches.includes(hit));
  fill(
    root,
    head,
    scoreHelp(result),
    hitGrid(matches, result, { label: threshold === null ? "Search results" : "Matches" }),
    below.length
      ? h(
          "section",
          { class: "below-threshold", "aria-labelledby": "below-threshold-title" },
          h("h3", {
            id: "below-threshold-title",
            text: `Below the threshold (${score(threshold)}): probably not ${asked}`,
          }),
          hitGrid(below, result, { label: "Below the threshold", first: matches.length, dim: true }),
        )
      : null,
  );
}

/** What a score is, and what the threshold does, for this search. */
function scoreHelp(result) {
  const image = typeof result.query !== "string";
  const threshold =
    result.decision === "calibrated"
      ? "The threshold is the collection's own, set well above the best scores unrelated text reaches in it: a best hit under it is “no match”."
      : result.decision === "min_score"
        ? "The threshold is the one asked for: a best hit under it is “no match”."
        : "Image searches have no threshold unless one is set: the nearest images are always shown.";
  return h(
    "details",
    { class: "score-help" },
    h("summary", { text: "What the scores mean" }),
    h("p", {
      text: `A score is the cosine similarity between the ${image ? "query image's" : "text's"} embedding and an image's, from −1 to 1: higher is closer. Compare scores within one search and one model; their range depends on the model (CLIP's text-to-image scores sit between about 0.1 and 0.4).`,
    }),
    result.rerank === "crops"
      ? h("p", {
          text:
            result.fusion === "max"
              ? "With crop reranking, an image scores the better of the whole image and its best crop (a detected region)."
              : "With crop reranking (weighted), an image scores a weighted mean of the whole image and its best crop (a detected region).",
        })
      : null,
    h("p", { text: threshold }),
  );
}

/** Why the yellow box is drawn: the crop decided the score, or it is only the best crop. */
function cropNote(hit, fusion) {
  if (!hit.crop_box || hit.crop_score === null || hit.crop_score === undefined) return null;
  if (fusion === "weighted") return "Box: its best crop, weighted with the whole image";
  return hit.crop_score > hit.image_score
    ? "Box: the crop that decided the score"
    : "Box: its best crop; the whole image scored higher";
}

/** The viewer's view of an image of the collection (a tile, or a hit with its crop). */
export function collectionViewerItem(image, hit = null) {
  const regions = (image.regions ?? []).map((r, i) => ({
    box: r.box,
    kind: "region",
    label: `region ${i + 1}${r.label ? `: ${r.label}` : ""}`,
  }));
  const match = hit?.crop_box ? [{ box: hit.crop_box, kind: "match", label: "matched crop" }] : [];
  const facts = [
    ["Size", image.width && image.height ? `${image.width} × ${image.height} px` : "—"],
    ["Labels", image.labels?.length ? image.labels.join(", ") : "none"],
  ];
  if (hit) {
    facts.unshift(["Score", score(hit.score)]);
    if (hit.crop_score !== null && hit.crop_score !== undefined)
      facts.push(["Image / crop", `${score(hit.image_score)} / ${score(hit.crop_score)}`]);
  } else facts.push(["Regions", String(regions.length)]);
  for (const [key, value] of Object.entries(image.metadata ?? {}))
    facts.push([key, typeof value === "string" ? value : JSON.stringify(value)]);
  return {
    title: image.filename,
    apiSrc: image.thumbnail_url,
    width: image.width,
    height: image.height,
    boxes: [...regions, ...match],
    note: image.thumbnail_url
      ? `The collection's thumbnail, whole (it keeps no full-size copy)${regions.length ? "; dashed: detected regions" : ""}${match.length ? "; yellow: the matched crop" : ""}.`
      : null,
    actions: () => viewerActions(image),
    facts,
  };
}

/** Find similar, edit the labels, delete: what a person does to an image of the collection. */
function viewerActions(image) {
  const collection = state.current;
  const path = `/v1/collections/${encodeURIComponent(collection.id)}/images/${encodeURIComponent(image.id)}`;
  const input = h("input", {
    id: "viewer-labels",
    value: (image.labels ?? []).join(", "),
    spellcheck: "false",
    "aria-describedby": "viewer-labels-error",
  });
  const error = h("p", { class: "field-error", id: "viewer-labels-error", role: "alert" });
  const status = h("p", { class: "status", id: "viewer-status", role: "status" });
  const save = async (event) => {
    event.preventDefault();
    error.textContent = "";
    input.removeAttribute("aria-invalid");
    try {
      const updated = await api(path, { method: "PATCH", json: { labels: parseList(input.value) } });
      image.labels = updated.labels;
      input.value = updated.labels.join(", ");
      setStatus(status, `Labels saved: ${updated.labels.join(", ") || "none"}.`, "ok");
      loadCollectionImages(true);
    } catch (problem) {
      const field = problem.fields?.find((f) => (f.field ?? "").includes("labels"));
      error.textContent = field?.message ?? problem.message;
      input.setAttribute("aria-invalid", "true");
      input.focus();
    }
  };
  return [
    h("button", {
      type: "button",
      class: "primary small",
      id: "viewer-similar",
      text: "Find similar",
      onclick: () => {
        closeViewer();
        actions.similar?.(image.id, image.filename);
      },
    }),
    h(
      "form",
      { class: "viewer-labels", onsubmit: save, novalidate: true },
      h("label", { for: "viewer-labels", text: "Labels (comma-separated)" }),
      h("div", { class: "field-row" }, input, h("button", { type: "submit", class: "small", text: "Save labels" })),
      error,
    ),
    h("button", {
      type: "button",
      class: "danger small",
      id: "viewer-delete",
      text: "Delete image",
      onclick: async () => {
        if (!window.confirm(`Delete ${image.filename} from “${collection.name}”?`)) return;
        try {
          await api(path, { method: "DELETE" });
          closeViewer();
          setStatus($("#collection-images-status"), `Deleted ${image.filename}.`, "ok");
          await loadCollections(collection.id);
          await loadCollectionImages(true);
        } catch (problem) {
          setStatus(status, problem.message, "error");
        }
      },
    }),
    status,
  ];
}

export const actions = {}; // set up by setupCollections: similar(imageId, filename)

export function hitGrid(hits, result, { label, first = 0, dim = false }) {
  const crops = result.rerank === "crops";
  return h(
    "ol",
    { class: dim ? "hit-grid dim" : "hit-grid", "aria-label": label, start: first + 1 },
    hits.map((hit, i) =>
      h(
        "li",
        {
          class: "hit",
          dataset: { imageId: hit.image_id, filename: hit.filename, view: hit.image_id },
        },
        boxedThumb({
          url: hit.thumbnail_url,
          width: hit.width,
          height: hit.height,
          alt: hit.filename,
          boxes: hit.crop_box ? [{ box: hit.crop_box, kind: "match" }] : [],
        }),
        h(
          "p",
          { class: "hit-score" },
          h("span", { class: "rank", text: `#${first + i + 1}` }),
          h("strong", { text: score(hit.score) }),
        ),
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
        cropNote(hit, result.fusion) ? h("p", { class: "hint crop-note", text: cropNote(hit, result.fusion) }) : null,
        h("p", { class: "tile-actions" }, similarButton(hit.image_id, hit.filename)),
      ),
    ),
  );
}

/** The evaluation's queries, one a line (`query => label, label`), with the line each is
 * on, so that a problem with `queries[i]` is said of the line a person sees. */
export function parseQueries(text) {
  const queries = [];
  const lines = [];
  text.split("\n").forEach((raw, i) => {
    const line = raw.trim();
    if (!line) return;
    const [query, labels] = line.includes("=>") ? line.split("=>", 2) : [line, line];
    queries.push({ query: query.trim(), relevant_labels: parseList(labels) });
    lines.push(i + 1);
  });
  return queries.length ? { queries, lines } : { queries: null, lines: [] };
}

/** A problem's fields at the evaluation's own fields; true if it named any of them. */
function showEvaluationProblem(problem, lines) {
  const fields = {
    queries: "#evaluate-queries",
    prompt_template: "#evaluate-template",
    ks: "#evaluate-ks",
  };
  let shown = false;
  for (const { field = "", message } of problem.fields ?? []) {
    const name = field.split(/[[.]/)[0]; // "queries[1].relevant_labels" -> "queries"
    if (!(name in fields)) continue;
    const at = field.match(/^queries\[(\d+)\]/);
    const where = at ? `Line ${lines[Number(at[1])] ?? Number(at[1]) + 1}: ` : "";
    const input = $(fields[name]);
    const error = $(`${fields[name]}-error`);
    error.textContent = `${error.textContent} ${where}${message}.`.trim();
    input.setAttribute("aria-invalid", "true");
    if (!shown) input.focus();
    shown = true;
  }
  return shown;
}

export function renderEvaluation(result) {
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

export const runners = {};

export function setupCollections() {
  const select = $("#collection-select");
  const ingestZone = $("#ingest-drop");
  const ingestButton = $("#ingest-run");
  const selection = new FileSelection($("#ingest-selected"));

  const ingest = new JobRunner("ingest", {
    controls: [ingestButton, select],
    onBusy: (busy) => ingestZone.setAttribute("aria-disabled", String(busy || !state.current)),
  });
  const search = new JobRunner("search", {
    controls: [$("#search-run"), $("#search-like-run")],
  });
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
    $("#collection-name-error").textContent = "";
    nameInput.removeAttribute("aria-invalid");
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
      const field = error.fields?.find((f) => f.field === "name");
      if (field) {
        $("#collection-name-error").textContent =
          error.status === 409 ? `${field.message}: choose another name.` : field.message;
        nameInput.setAttribute("aria-invalid", "true");
        nameInput.focus();
        setStatus(status, "");
      } else setStatus(status, error.message, "error");
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

  const importer = new JobRunner("import", { controls: [$("#import-run")] });
  $("#import-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    if (!requireCollection(importer.status)) return;
    const [embeddings] = $("#import-embeddings").files;
    const [metadata] = $("#import-metadata").files;
    if (!embeddings) return setStatus(importer.status, "Choose an .npy file of embeddings.", "error");
    const collection = state.current;
    const form = new FormData();
    form.append("embeddings", embeddings, embeddings.name);
    if (metadata) form.append("metadata", metadata, metadata.name);
    form.append("part", embeddings.name); // the same file twice is refused, not added twice
    try {
      const result = await importer.run(
        (onUpload) =>
          api(`/v1/collections/${encodeURIComponent(collection.id)}/embeddings`, {
            method: "POST",
            form,
            onUpload,
          }),
        "embeddings",
      );
      if (!result) return;
      setStatus(
        importer.status,
        `Imported ${result.imported} embeddings from ${result.part}; the collection holds ${result.image_count}.`,
        "ok",
      );
      await loadCollections(collection.id);
      await loadCollectionImages(true);
    } catch (error) {
      setStatus(importer.status, error.message, "error");
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

  const searchOptions = () => {
    const minScore = $("#search-min-score").value;
    return {
      top_k: Number($("#search-topk").value) || 8,
      rerank: rerank.checked ? "crops" : "none",
      fusion: fusion.value,
      crop_weight: Number($("#search-weight").value || 0.5),
      min_score: minScore === "" ? null : Number(minScore),
    };
  };
  // One runner for every kind of search: by text, like an image of the collection, like a file.
  const runSearch = async (send, imageName = null) => {
    try {
      const result = await search.run(send, "queries");
      if (!result) return;
      renderSearch(result, imageName);
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
      $("#search-like-run").disabled = !state.current;
    }
  };
  const collectionPath = () => `/v1/collections/${encodeURIComponent(state.current.id)}`;

  $("#search-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    if (!requireCollection(search.status)) return;
    const query = $("#search-query").value.trim();
    if (!query) {
      setStatus(search.status, "Type what you are looking for.", "error");
      $("#search-query").focus();
      return;
    }
    const json = { query, ...searchOptions() };
    await runSearch(() => api(`${collectionPath()}/search`, { method: "POST", json }));
  });

  $("#search-like-run").addEventListener("click", async () => {
    if (!requireCollection(search.status)) return;
    const [file] = $("#search-image").files;
    if (!file) {
      setStatus(search.status, "Choose a picture to find images like it.", "error");
      $("#search-image").focus();
      return;
    }
    const form = new FormData();
    form.append("image", file, file.name);
    for (const [name, value] of Object.entries(searchOptions()))
      if (value !== null) form.append(name, value);
    await runSearch(() => api(`${collectionPath()}/similar`, { method: "POST", form }));
  });

  // "Similar" on a hit or on an image of the collection: image -> image from that image.
  actions.similar = async (imageId, filename) => {
    if (!state.current || search.busy) return;
    const json = searchOptions();
    delete json.query;
    const path = `${collectionPath()}/images/${encodeURIComponent(imageId)}/similar`;
    $("#search-form").scrollIntoView({ block: "start", behavior: "smooth" });
    await runSearch(() => api(path, { method: "POST", json }), filename);
  };
  $("#panel-collections").addEventListener("click", async (event) => {
    const button = event.target.closest("button[data-similar-to]");
    if (button) return actions.similar(button.dataset.similarTo, button.dataset.filename);
    // A picture opens the viewer on the list it is in: the collection's images, or the hits.
    const frame = event.target.closest(".image-tile .thumb-frame, .hit .thumb-frame");
    if (!frame || !state.current) return;
    const tile = frame.closest("[data-view]");
    if (tile.classList.contains("hit")) {
      const hits = state.hits ?? [];
      const items = hits.map((hit) =>
        collectionViewerItem(
          { ...hit, id: hit.image_id, regions: [] },
          hit,
        ),
      );
      openViewer(items, hits.findIndex((hit) => hit.image_id === tile.dataset.view));
    } else {
      const images = state.images ?? [];
      openViewer(
        images.map((image) => collectionViewerItem(image)),
        images.findIndex((image) => image.id === tile.dataset.view),
      );
    }
  });

  $("#evaluate-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    if (!requireCollection(evaluate.status)) return;
    for (const id of ["#evaluate-queries", "#evaluate-template", "#evaluate-ks"]) {
      $(`${id}-error`).textContent = "";
      $(id).removeAttribute("aria-invalid");
    }
    const ks = [
      ...new Set(
        $("#evaluate-ks")
          .value.split(/[\s,]+/)
          .map(Number)
          .filter((k) => Number.isInteger(k) && k > 0),
      ),
    ].sort((a, b) => a - b);
    if (!ks.length) {
      const problem = { fields: [{ field: "ks", message: "Give K values such as 1, 5, 10" }] };
      return showEvaluationProblem(problem, []);
    }
    const { queries, lines } = parseQueries($("#evaluate-queries").value);
    const body = {
      queries,
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
      if (showEvaluationProblem(error, lines)) setStatus(evaluate.status, "");
      else setStatus(evaluate.status, error.message, "error");
    } finally {
      $("#evaluate-run").disabled = !state.current;
    }
  });

  setupImports({
    current: () => state.current,
    onImported: async () => {
      await loadCollections(state.current?.id);
      await loadCollectionImages(true);
    },
  });

  $("#collection-more").addEventListener("click", () => loadCollectionImages(false));
  $("#browser-regions").addEventListener("change", () => loadCollectionImages(true));
}


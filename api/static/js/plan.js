// The Plan tab: a reconstruction plan — the matcher, which pairs to match (a shortlist drawn as
// an adjacency matrix on one <canvas>), what to drop or review (hygiene badges on thumbnails),
// and the bundle of ready-to-run scripts. Built for datasets of hundreds of images: thumbnails
// are small lazy <img>s of the chosen files, the matrix is pixels, long lists render in chunks.

import { api, modelName, upload } from "./api.js";
import { $, fill, h, percent, score, setStatus } from "./dom.js";
import { csv, downloadButtons, downloadFrom } from "./downloads.js";
import { dropZone, FileSelection, thumbImg } from "./files.js";
import { JobRunner } from "./jobs.js";
import { matcherBlock, outOfDomainNotice } from "./results.js";
import { distributionChart } from "./scenes.js";

export const PAIRS_SHOWN = 50; // rows of the pair table before "Show all"
export const ROWS_PER_FRAME = 250; // "Show all" appends this many rows per animation frame
const ACTIONS = ["drop", "review", "keep"];
const FIELDS = ["images", "speed", "strategy", "pairs_per_image", "window", "taxonomy"];

export const STRATEGY_HINTS = {
  retrieval:
    "Retrieval: each image with its nearest neighbours by CLIP embedding (pairs per image), " +
    "for unordered photo sets.",
  sequential:
    "Sequential: each image with the next ones in file-name order (the window), for video frames.",
  "retrieval+sequential":
    "Retrieval + sequential: both, merged, for ordered captures (video, bursts) that " +
    "revisit places.",
  exhaustive: "Exhaustive: every pair, n(n−1)/2, for small sets only.",
};

// The matrix: no pair, the diagonal, hygiene marks, and a ramp from low to high similarity
// (each stop ≥ 3:1 against the background, as non-text contrast asks).
const MATRIX_BG = "#0b1220";
const MATRIX_DIAGONAL = "#334155";
const ACTION_COLOURS = { drop: "#f87171", review: "#f59e0b" };
export const RAMP = ["#6366f1", "#22d3ee", "#a3e635", "#fde047"];
const PALETTE = palette(RAMP, 64);

const nextFrame = () => new Promise((resolve) => requestAnimationFrame(() => resolve()));
const plural = (n, word, many = `${word}s`) => `${n.toLocaleString("en")} ${n === 1 ? word : many}`;
export const flagLabel = (flag) => flag.replaceAll("_", " ");

function palette(stops, size) {
  const rgb = stops.map((hex) => [1, 3, 5].map((i) => parseInt(hex.slice(i, i + 2), 16)));
  return Array.from({ length: size }, (_, k) => {
    const t = (k / (size - 1)) * (rgb.length - 1);
    const a = Math.min(Math.floor(t), rgb.length - 2);
    const f = t - a;
    const c = rgb[a].map((v, i) => Math.round(v + (rgb[a + 1][i] - v) * f));
    return `rgb(${c.join(" ")})`;
  });
}

export function actionCounts(hygiene) {
  const counts = { keep: 0, review: 0, drop: 0 };
  for (const image of hygiene.images) counts[image.action] += 1;
  return counts;
}

/** "30 pairs of 66 exhaustive (45.5%)". */
export function pairsLine(shortlist) {
  const { pairs, exhaustive_pairs: exhaustive } = shortlist;
  const share = exhaustive ? pairs.length / exhaustive : 0;
  const of = exhaustive.toLocaleString("en");
  return `${plural(pairs.length, "pair")} of ${of} exhaustive (${percent(share)})`;
}

// --- overview ---------------------------------------------------------------------------------

function stat(label, value, key) {
  return h(
    "div",
    { dataset: key ? { stat: key } : {} },
    h("dt", { text: label }),
    h("dd", { text: value }),
  );
}

function renderOverview(result) {
  const { summary, shortlist, hygiene } = result;
  const counts = actionCounts(hygiene);
  const scenes = result.images.flatMap((i) => i.prediction?.scores.map((s) => s.scene) ?? []);
  return h(
    "section",
    { class: "card summary plan-overview", "aria-labelledby": "plan-overview-title" },
    h("h2", { id: "plan-overview-title", text: "Plan" }),
    h("p", { class: "plan-pairs", text: pairsLine(shortlist) }),
    h(
      "dl",
      { class: "stats plan-counts" },
      stat("Images", result.images.length.toLocaleString("en"), "images"),
      stat("Pairs to match", shortlist.pairs.length.toLocaleString("en"), "pairs"),
      stat("Keep", counts.keep, "keep"),
      stat("Review", counts.review, "review"),
      stat("Drop", counts.drop, "drop"),
      stat("Duplicate groups", hygiene.duplicate_groups.length, "duplicate-groups"),
    ),
    summary
      ? h(
          "div",
          { class: "summary-grid" },
          h(
            "div",
            { class: "overall" },
            matcherBlock(summary.overall.matcher, { heading: "Overall matcher" }),
            h("p", { class: "overall-reason", text: summary.overall.reason }),
          ),
          distributionChart(summary.scene_distribution, scenes),
        )
      : h("p", {
          class: "notice",
          role: "status",
          text: "Fewer than two images could be read: there is no matcher to recommend.",
        }),
  );
}

// --- hygiene ----------------------------------------------------------------------------------

function hygieneDetails(image) {
  const facts = [
    ["Size", image.width && image.height ? `${image.width}×${image.height}` : null],
    ["Sharpness", image.sharpness == null ? null : image.sharpness.toFixed(1)],
    [
      "Relative sharpness",
      image.relative_sharpness == null ? null : percent(image.relative_sharpness, 0),
    ],
    [
      "Clipped highlights",
      image.clipped_highlights == null ? null : percent(image.clipped_highlights),
    ],
    ["Crushed shadows", image.clipped_shadows == null ? null : percent(image.clipped_shadows)],
    ["Focal length", image.focal_length_mm == null ? null : `${image.focal_length_mm} mm`],
    ["35 mm equivalent", image.focal_length_35mm == null ? null : `${image.focal_length_35mm} mm`],
    ["Camera", [image.camera_make, image.camera_model].filter(Boolean).join(" ") || null],
    ["Duplicate group", image.duplicate_group == null ? null : String(image.duplicate_group + 1)],
  ].filter(([, value]) => value !== null);
  return facts;
}

function hygieneTile(image, thumb) {
  const facts = hygieneDetails(image);
  const title = [
    image.filename,
    ...image.reasons,
    ...facts.map(([label, value]) => `${label}: ${value}`),
  ].join("\n");
  return h(
    "li",
    {
      class: "hygiene-tile",
      dataset: { action: image.action, filename: image.filename },
      title,
    },
    h(
      "div",
      { class: "hygiene-thumb" },
      thumbImg(thumb, image.filename),
      image.action === "keep"
        ? null
        : h("span", { class: `badge action-badge action-${image.action}`, text: image.action }),
    ),
    h("p", { class: "file-title", text: image.filename }),
    h("p", {
      class: "hygiene-flags",
      text: image.flags.length ? image.flags.map(flagLabel).join(", ") : "no flags",
    }),
    image.reasons.length || facts.length
      ? h(
          "details",
          {
            class: "why",
            // Filled when first opened: hundreds of tiles stay a few elements each.
            ontoggle: (event) => {
              const details = event.currentTarget;
              if (!details.open || details.childElementCount > 1) return;
              details.append(
                image.reasons.length
                  ? h(
                      "ul",
                      { class: "reasons" },
                      image.reasons.map((r) => h("li", { text: r })),
                    )
                  : "",
                h(
                  "dl",
                  { class: "facts" },
                  facts.map(([label, value]) =>
                    h("div", {}, h("dt", { text: label }), h("dd", { text: value })),
                  ),
                ),
              );
            },
          },
          h("summary", { text: image.reasons.length ? "Why" : "Details" }),
        )
      : null,
  );
}

function renderHygiene(result, thumbs) {
  const { hygiene } = result;
  const counts = actionCounts(hygiene);
  const total = hygiene.images.length;
  const grid = h(
    "ul",
    { class: "hygiene-grid", id: "plan-hygiene-grid", dataset: { filter: "all" } },
    hygiene.images.map((image) => hygieneTile(image, thumbs.get(image.filename))),
  );
  const shown = h("p", { class: "hint", id: "plan-filter-status", role: "status" });
  const describe = (filter) =>
    (shown.textContent =
      filter === "all"
        ? `Showing all ${plural(total, "image")}.`
        : `Showing ${counts[filter]} of ${plural(total, "image")}: ${filter}.`);
  describe("all");
  const choice = (value, label) =>
    h(
      "label",
      {},
      h("input", {
        type: "radio",
        name: "plan-filter",
        value,
        checked: value === "all",
        onchange: () => {
          grid.dataset.filter = value;
          describe(value);
        },
      }),
      h("span", { text: label }),
    );
  const groups = hygiene.duplicate_groups;
  return h(
    "section",
    { class: "card plan-hygiene", "aria-labelledby": "plan-hygiene-title" },
    h(
      "div",
      { class: "section-head" },
      h("h2", { id: "plan-hygiene-title", text: "Dataset hygiene" }),
      h(
        "fieldset",
        { class: "segmented plan-filter", "aria-label": "Show the images to" },
        choice("all", `All ${total}`),
        ACTIONS.map((action) =>
          choice(action, `${action[0].toUpperCase()}${action.slice(1)} ${counts[action]}`),
        ),
      ),
    ),
    shown,
    groups.length
      ? h(
          "details",
          { class: "duplicate-groups" },
          h("summary", { text: `${plural(groups.length, "duplicate group")}` }),
          h(
            "ul",
            {},
            groups.map((group) =>
              h(
                "li",
                { dataset: { group: group.id } },
                h("strong", { text: `Group ${group.id + 1}: ` }),
                `keep ${group.keep}; drop `,
                group.images.filter((name) => name !== group.keep).join(", "),
              ),
            ),
          ),
        )
      : null,
    h(
      "div",
      {
        class: "scroll-box",
        tabindex: "0",
        role: "region",
        "aria-label": "Images and their hygiene",
      },
      grid,
    ),
  );
}

// --- the shortlist as a matrix ------------------------------------------------------------------

/** The matrix's data: pairs as cells (indices in the dataset's order), ascending similarity. */
export function matrixModel(result) {
  const names = result.hygiene.images.map((i) => i.filename);
  const index = new Map(names.map((name, i) => [name, i]));
  const pairs = result.shortlist.pairs;
  let min = Infinity;
  let max = -Infinity;
  for (const p of pairs) {
    min = Math.min(min, p.similarity);
    max = Math.max(max, p.similarity);
  }
  const cells = pairs
    .map((p) => ({ i: index.get(p.image0), j: index.get(p.image1), pair: p }))
    .filter((c) => c.i !== undefined && c.j !== undefined)
    .sort((a, b) => a.pair.similarity - b.pair.similarity);
  const byCell = new Map();
  for (const c of cells) {
    byCell.set(c.i * names.length + c.j, c.pair);
    byCell.set(c.j * names.length + c.i, c.pair);
  }
  const partners = new Array(names.length).fill(0);
  for (const c of cells) {
    partners[c.i] += 1;
    partners[c.j] += 1;
  }
  return {
    names,
    actions: result.hygiene.images.map((i) => i.action),
    cells,
    byCell,
    partners,
    min: pairs.length ? min : 0,
    max: pairs.length ? max : 0,
  };
}

export function matrixSummary(model, shortlist) {
  const n = model.names.length;
  if (!model.cells.length) return `No pairs among ${plural(n, "image")}.`;
  const paired = model.partners.filter((k) => k > 0);
  return (
    `Adjacency matrix of ${plural(n, "image")} in the dataset's order: ${pairsLine(shortlist)}, ` +
    `similarity ${score(model.min)} to ${score(model.max)}; ` +
    `each paired image has ${Math.min(...paired)} to ${Math.max(...paired)} partners, ` +
    `${plural(shortlist.unpaired.length, "image")} in no pair.`
  );
}

/** Geometry shared by drawing and pointing: a hygiene strip, then n cells along each side. */
function layout(size, n, dpr) {
  const strip = Math.max(3, Math.round(5 * dpr));
  const origin = strip + Math.max(1, Math.round(2 * dpr));
  const cell = (size - origin) / Math.max(n, 1);
  const edge = (k) => origin + Math.floor(k * cell);
  return { strip, origin, cell, edge };
}

export function drawMatrix(canvas, model) {
  const n = model.names.length;
  const dpr = window.devicePixelRatio || 1;
  const css = canvas.clientWidth || 480; // a hidden tab: redrawn when it is shown
  const size = Math.max(n + 16, Math.round(css * dpr));
  if (canvas.width !== size) canvas.width = canvas.height = size;
  const ctx = canvas.getContext("2d", { alpha: false });
  const { strip, edge } = layout(size, n, dpr);
  const rect = (row, col) => {
    const x = edge(col);
    const y = edge(row);
    ctx.fillRect(x, y, Math.max(edge(col + 1) - x, 1), Math.max(edge(row + 1) - y, 1));
  };
  ctx.fillStyle = MATRIX_BG;
  ctx.fillRect(0, 0, size, size);
  ctx.fillStyle = MATRIX_DIAGONAL;
  for (let i = 0; i < n; i += 1) rect(i, i);
  for (const [i, action] of model.actions.entries()) {
    if (!(action in ACTION_COLOURS)) continue;
    ctx.fillStyle = ACTION_COLOURS[action];
    const from = edge(i);
    const width = Math.max(edge(i + 1) - from, 1);
    ctx.fillRect(from, 0, width, strip);
    ctx.fillRect(0, from, strip, width);
  }
  const span = model.max - model.min;
  for (const { i, j, pair } of model.cells) {
    const t = span > 0 ? (pair.similarity - model.min) / span : 0.5;
    ctx.fillStyle = PALETTE[Math.round(t * (PALETTE.length - 1))];
    rect(i, j);
    rect(j, i);
  }
}

/** The cell under a pointer: [row, column] in the dataset's order, or null. */
function cellAt(canvas, model, event) {
  const box = canvas.getBoundingClientRect();
  const scale = canvas.width / box.width;
  const { origin, cell } = layout(canvas.width, model.names.length, window.devicePixelRatio || 1);
  const x = (event.clientX - box.left) * scale - origin;
  const y = (event.clientY - box.top) * scale - origin;
  if (x < 0 || y < 0) return null;
  const row = Math.floor(y / cell);
  const col = Math.floor(x / cell);
  const n = model.names.length;
  return row < n && col < n ? [row, col] : null;
}

let matrixObserver = null;

function renderMatrix(result) {
  const model = matrixModel(result);
  const summaryText = matrixSummary(model, result.shortlist);
  const readout = h("p", { class: "matrix-readout hint", "aria-hidden": "true" });
  const idle = "Point at a cell to see its pair.";
  readout.textContent = idle;
  const canvas = h("canvas", {
    id: "plan-matrix",
    class: "matrix",
    role: "img",
    "aria-label": summaryText,
    dataset: {
      images: model.names.length,
      pairs: model.cells.length,
      min: model.min.toFixed(4),
      max: model.max.toFixed(4),
    },
    onpointermove: (event) => {
      const at = cellAt(canvas, model, event);
      if (!at) return (readout.textContent = idle);
      const [row, col] = at;
      const a = model.names[row];
      const b = model.names[col];
      if (row === col)
        return (readout.textContent = `${a}: ${plural(model.partners[row], "partner")}`);
      const pair = model.byCell.get(row * model.names.length + col);
      readout.textContent = pair
        ? `${a} × ${b} · similarity ${score(pair.similarity)} · ${pair.sources.join(" + ")}`
        : `${a} × ${b} · not shortlisted`;
    },
    onpointerleave: () => (readout.textContent = idle),
  });
  matrixObserver?.disconnect();
  let pending = false;
  matrixObserver = new ResizeObserver(() => {
    if (pending || !canvas.isConnected) return;
    pending = true;
    requestAnimationFrame(() => {
      pending = false;
      if (canvas.isConnected && canvas.clientWidth) drawMatrix(canvas, model);
    });
  });
  const figure = h(
    "figure",
    { class: "matrix-figure" },
    h("div", { class: "matrix-frame" }, canvas),
    readout,
    h(
      "div",
      { class: "matrix-legend", "aria-hidden": "true" },
      h("span", { text: score(model.min) }),
      h("span", {
        class: "legend-ramp",
        style: { background: `linear-gradient(90deg, ${RAMP.join(", ")})` },
      }),
      h("span", { text: score(model.max) }),
      h("span", { class: "legend-key" }, h("span", { class: "swatch none" }), "no pair"),
      h("span", { class: "legend-key" }, h("span", { class: "swatch drop" }), "drop"),
      h("span", { class: "legend-key" }, h("span", { class: "swatch review" }), "review"),
    ),
    h("figcaption", { class: "matrix-summary", text: summaryText }),
  );
  return { figure, canvas, model, observe: () => matrixObserver.observe(canvas) };
}

// --- the pair table -----------------------------------------------------------------------------

function pairRow(pair, rank) {
  return h(
    "tr",
    {},
    h("td", { text: rank }),
    h("td", { class: "name", text: pair.image0 }),
    h("td", { class: "name", text: pair.image1 }),
    h("td", { text: score(pair.similarity) }),
    h("td", { class: "sources", text: pair.sources.join(" + ") }),
  );
}

function appendRows(body, pairs, from, to) {
  const rows = document.createDocumentFragment();
  for (let k = from; k < to; k += 1) rows.append(pairRow(pairs[k], k + 1));
  body.append(rows);
}

function renderPairTable(pairs) {
  const body = h("tbody");
  appendRows(body, pairs, 0, Math.min(PAIRS_SHOWN, pairs.length));
  const status = h("p", { class: "hint", id: "plan-pairs-status", role: "status" });
  const describe = () => {
    const shown = body.rows.length;
    status.textContent =
      shown === pairs.length
        ? `Showing all ${plural(pairs.length, "pair")}.`
        : `Showing the ${shown} most similar of ${plural(pairs.length, "pair")}.`;
  };
  describe();
  let rendering = false;
  const toggle = h("button", {
    type: "button",
    class: "ghost small",
    id: "plan-pairs-all",
    text: `Show all ${plural(pairs.length, "pair")}`,
    hidden: pairs.length <= PAIRS_SHOWN,
    onclick: async () => {
      if (rendering) return;
      if (body.rows.length === pairs.length) {
        while (body.rows.length > PAIRS_SHOWN) body.lastElementChild.remove();
        toggle.textContent = `Show all ${plural(pairs.length, "pair")}`;
        return describe();
      }
      rendering = true;
      toggle.disabled = true;
      // A few hundred rows a frame: the page keeps answering while thousands are added.
      for (let from = body.rows.length; from < pairs.length; from += ROWS_PER_FRAME) {
        appendRows(body, pairs, from, Math.min(from + ROWS_PER_FRAME, pairs.length));
        status.textContent = `Adding pairs… ${body.rows.length} of ${pairs.length}`;
        await nextFrame();
      }
      rendering = false;
      toggle.disabled = false;
      toggle.textContent = `Show the first ${PAIRS_SHOWN}`;
      describe();
    },
  });
  return h(
    "div",
    { class: "pair-list" },
    h(
      "div",
      {
        class: "table-scroll scroll-box",
        tabindex: "0",
        role: "region",
        "aria-label": "Shortlisted pairs",
      },
      h(
        "table",
        { class: "metrics pairs-table" },
        h("caption", { text: "Pairs to match, most similar first" }),
        h(
          "thead",
          {},
          h(
            "tr",
            {},
            ["#", "Image", "Matched with", "Similarity", "Proposed by"].map((label) =>
              h("th", { scope: "col", text: label }),
            ),
          ),
        ),
        body,
      ),
    ),
    h("div", { class: "actions" }, status, toggle),
  );
}

function renderShortlist(result) {
  const { shortlist } = result;
  const matrix = renderMatrix(result);
  const unpaired = shortlist.unpaired;
  const section = h(
    "section",
    { class: "card plan-shortlist", "aria-labelledby": "plan-shortlist-title" },
    h(
      "div",
      { class: "section-head" },
      h("h2", { id: "plan-shortlist-title", text: "Pair shortlist" }),
      h("p", {
        class: "hint",
        text:
          `${shortlist.strategy} · ${shortlist.pairs_per_image} per image` +
          (shortlist.strategy.includes("sequential") ? ` · window ${shortlist.window}` : ""),
      }),
    ),
    h("div", { class: "shortlist-layout" }, matrix.figure, renderPairTable(shortlist.pairs)),
    h(
      "div",
      { class: "unpaired" },
      h("h3", { text: `Unpaired images (${unpaired.length})` }),
      unpaired.length
        ? [
            h("p", {
              class: "hint",
              text: "In no pair (dropped by hygiene, or alone): they cannot register.",
            }),
            h(
              "div",
              {
                class: "scroll-box",
                tabindex: "0",
                role: "region",
                "aria-label": "Unpaired images",
              },
              h(
                "ul",
                { class: "file-strip", id: "plan-unpaired" },
                unpaired.map((name) => h("li", { class: "file-chip", text: name, title: name })),
              ),
            ),
          ]
        : h("p", { class: "hint", text: "Every kept image is in at least one pair." }),
    ),
  );
  return { section, matrix };
}

// --- the whole result ---------------------------------------------------------------------------

export function planCsv(result) {
  const partners = matrixModel(result).partners;
  const scenes = new Map(result.images.map((i) => [i.filename, i.prediction?.top_scene]));
  const header = [
    "filename",
    "action",
    "flags",
    "reasons",
    "top_scene",
    "partners",
    "width",
    "height",
    "sharpness",
    "relative_sharpness",
    "clipped_highlights",
    "clipped_shadows",
    "focal_length_mm",
    "focal_length_35mm",
    "camera_make",
    "camera_model",
    "duplicate_group",
  ];
  const rows = result.hygiene.images.map((i, k) => [
    i.filename,
    i.action,
    i.flags.join(" "),
    i.reasons.join("; "),
    scenes.get(i.filename),
    partners[k],
    i.width,
    i.height,
    i.sharpness,
    i.relative_sharpness,
    i.clipped_highlights,
    i.clipped_shadows,
    i.focal_length_mm,
    i.focal_length_35mm,
    i.camera_make,
    i.camera_model,
    i.duplicate_group,
  ]);
  return csv([header, ...rows]);
}

function bundleButton(result) {
  const status = $("#plan-status");
  const button = h("button", {
    type: "button",
    class: "primary small",
    id: "plan-bundle",
    text: "Download bundle (.zip)",
    disabled: !result.summary,
    title: result.summary
      ? "pairs.txt, hloc, COLMAP and GLOMAP scripts and a README"
      : "Fewer than two images could be read: nothing to bundle",
    onclick: async () => {
      button.disabled = true;
      setStatus(status, "Preparing the bundle…");
      try {
        const id = result.bundle_url.split("/").at(-2);
        await downloadFrom(result.bundle_url, `plan-${id}.zip`);
        setStatus(status, "Bundle downloaded.", "ok");
      } catch (error) {
        setStatus(status, error.message, "error");
      } finally {
        button.disabled = false;
      }
    },
  });
  return button;
}

export function renderPlan(result, selection) {
  const root = $("#plan-results");
  const thumbs = new Map(selection.files.map((file, i) => [file.name, selection.urls[i]]));
  const downloads = downloadButtons(result, "clipq-plan", planCsv);
  downloads.prepend(bundleButton(result));
  const shortlist = renderShortlist(result);
  fill(
    root,
    h(
      "div",
      { class: "results-head" },
      h("h2", { text: `Plan · ${plural(result.images.length, "image")}` }),
      h("p", {
        class: "hint",
        text: [
          modelName(result.model),
          `taxonomy ${result.taxonomy.name} ${result.taxonomy.version}`,
          result.speed,
        ].join(" · "),
      }),
      downloads,
    ),
    outOfDomainNotice(result.images.map((i) => i.prediction?.domain)),
    renderOverview(result),
    renderHygiene(result, thumbs),
    shortlist.section,
  );
  drawMatrix(shortlist.matrix.canvas, shortlist.matrix.model);
  shortlist.matrix.observe();
}

// --- the form ---------------------------------------------------------------------------------

export function setupPlan() {
  const form = $("#plan-form");
  const zone = $("#plan-drop");
  const runButton = $("#plan-run");
  const strategy = $("#plan-strategy");
  const selection = new FileSelection($("#plan-selected"));
  const controls = {
    images: zone,
    speed: $("#plan-speed"),
    strategy,
    pairs_per_image: $("#plan-pairs-per-image"),
    window: $("#plan-window"),
    taxonomy: $("#plan-taxonomy"),
  };
  const errorOf = (field) => $(`#plan-${field.replaceAll("_", "-")}-error`);
  const runner = new JobRunner("plan", {
    controls: [
      runButton,
      strategy,
      controls.pairs_per_image,
      controls.window,
      controls.taxonomy,
      ...form.querySelectorAll("input[name=speed]"),
    ],
    onBusy: (busy) => zone.setAttribute("aria-disabled", String(busy)),
  });
  const updateButton = () => {
    const n = selection.files.length;
    runButton.disabled = runner.busy || !n;
    runButton.textContent = n ? `Plan ${plural(n, "image")}` : "Plan";
  };
  const clearFieldErrors = () => {
    for (const field of FIELDS) {
      errorOf(field).textContent = "";
      controls[field].removeAttribute("aria-invalid");
    }
  };
  /** Each message next to its control: `images` at the drop zone, `images[3]` on its chip. */
  const showFieldErrors = (error) => {
    selection.markErrors(error);
    let first = null;
    for (const { field, message } of error.fields) {
      const key = FIELDS.find((k) => field === k || field?.startsWith(`${k}.`));
      if (!key) continue;
      const el = errorOf(key);
      el.textContent = el.textContent ? `${el.textContent} ${message}` : message;
      controls[key].setAttribute("aria-invalid", "true");
      if (key === "taxonomy") $("#plan-taxonomy-details").open = true;
      first ??= key === "speed" ? $("input[name=speed]:checked", form) : controls[key];
    }
    return first;
  };
  const showHint = () => (
    ($("#plan-strategy-hint").textContent = STRATEGY_HINTS[strategy.value] ?? "")
  );
  strategy.addEventListener("change", showHint);
  showHint();

  dropZone(zone, $("#plan-files"), (files) => {
    if (runner.busy)
      return setStatus(runner.status, "A job is running: wait for it or cancel it.", "warn");
    selection.set(files);
    clearFieldErrors();
    setStatus(runner.status, "");
    $("#plan-results").replaceChildren();
    updateButton();
  });

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    if (runner.busy) return;
    clearFieldErrors();
    if (!selection.files.length) {
      errorOf("images").textContent = "Choose the dataset's images first.";
      return zone.focus();
    }
    const files = selection.files;
    const data = new FormData(form);
    const fields = {
      speed: data.get("speed"),
      strategy: strategy.value,
      pairs_per_image: controls.pairs_per_image.value.trim() || undefined,
      window: controls.window.value.trim() || undefined,
      taxonomy: controls.taxonomy.value.trim() || undefined,
    };
    try {
      const result = await runner.run(
        (onUpload) => api("/v1/plans", { method: "POST", form: upload(files, fields), onUpload }),
        "images embedded",
      );
      if (!result) return;
      performance.clearMarks("clipq-plan-result");
      performance.clearMeasures("clipq-plan-render");
      performance.mark("clipq-plan-result");
      renderPlan(result, selection);
      await nextFrame(); // laid out and painted once
      const render = performance.measure("clipq-plan-render", "clipq-plan-result");
      $("#plan-results").dataset.renderMs = render.duration.toFixed(1);
      const counts = actionCounts(result.hygiene);
      setStatus(
        runner.status,
        `Done: ${pairsLine(result.shortlist)}; ${counts.drop} to drop, ${counts.review} to review.`,
        "ok",
      );
    } catch (error) {
      const first = showFieldErrors(error);
      setStatus(runner.status, error.message, "error");
      first?.focus();
    } finally {
      updateButton();
    }
  });
}

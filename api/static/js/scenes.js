// The Scenes tab: scene of each image, the dataset summary, matcher recommendations.

import { api, modelName, upload } from "./api.js";
import { $, fill, h, percent, sceneLabel, score, setStatus } from "./dom.js";
import { csv, downloadButtons } from "./downloads.js";
import { dropZone, FileSelection, thumbImg } from "./files.js";
import { JobRunner } from "./jobs.js";
import {
  errorCard,
  matcherBlock,
  meter,
  outOfDomain,
  outOfDomainBadge,
  outOfDomainNotice,
  speedBadge,
} from "./results.js";
import { openViewer } from "./viewer.js";

export const TABLE_FROM = 7; // results from this many images show as a table first
export const CARDS_SHOWN = 48; // cards rendered at once in the cards view ("Show more")

export const SCENE_COLOURS = [
  "#6366f1",
  "#22c55e",
  "#f59e0b",
  "#06b6d4",
  "#ec4899",
  "#a855f7",
  "#ef4444",
  "#84cc16",
];
export const sceneColours = new Map();
export function sceneColour(scene) {
  if (!sceneColours.has(scene))
    sceneColours.set(scene, SCENE_COLOURS[sceneColours.size % SCENE_COLOURS.length]);
  return sceneColours.get(scene);
}

function uncertainBadge(p) {
  return p.uncertain
    ? h("span", {
        class: "badge uncertain",
        text: "uncertain",
        title: "Low confidence, or a narrow lead over the second scene",
      })
    : null;
}

export function renderSceneCard(image, thumb, { open = false, index = null } = {}) {
  const p = image.prediction;
  if (!p) return errorCard(image.filename, thumb, image.error);
  return h(
    "li",
    {
      class: "result-card scene-card",
      dataset: { scene: p.top_scene, filename: image.filename, index: index ?? "" },
    },
    h(
      "button",
      {
        type: "button",
        class: "thumb-frame thumb-button",
        "aria-label": `View ${image.filename}`,
        dataset: { view: index ?? "" },
      },
      thumbImg(thumb, image.filename),
    ),
    sceneCardBody(image, open),
  );
}

/** A card's words: the scene, its confidence and flags, every score, the matcher. */
export function sceneCardBody(image, open = false) {
  const p = image.prediction;
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
    "div",
    { class: "card-body" },
    h("h3", { class: "file-title", text: image.filename, title: image.filename }),
    h(
      "p",
      { class: "top-scene" },
      h("span", { class: "scene-dot", style: { background: sceneColour(p.top_scene) } }),
      h("strong", { class: "scene-name", text: sceneLabel(p.top_scene) }),
      h("span", { class: "confidence", text: percent(p.confidence) }),
      outOfDomainBadge(p.domain) ?? uncertainBadge(p),
    ),
    meter(p.confidence, `Confidence ${percent(p.confidence)}`),
    h("p", { class: "description", text: p.description }),
    h("details", { class: "all-scores", open }, h("summary", { text: "All scores" }), scores),
    matcherBlock(p.recommended_matcher),
  );
}

/** Bars for every scene (those no image fell into at 0 %), largest share first. */
export function distributionChart(distribution, sceneNames) {
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

export function renderSummary(summary, speed, sceneNames) {
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

export function scenesCsv(result) {
  const scenes = [
    ...new Set(result.images.flatMap((i) => i.prediction?.scores.map((s) => s.scene) ?? [])),
  ];
  const header = [
    "filename",
    "sha256",
    "model",
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
      result.model,
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

// --- many results: a table to sort, filter and group; the full card on demand ------------------

/** What a filter keeps: every image, one scene's, or those with a flag. */
export function sceneFilter(value) {
  if (value === "all") return () => true;
  if (value === "failed") return (image) => !image.prediction;
  if (value === "uncertain") return (image) => Boolean(image.prediction?.uncertain);
  if (value === "out-of-domain") return (image) => outOfDomain(image.prediction?.domain);
  const scene = value.replace(/^scene:/, "");
  return (image) => image.prediction?.top_scene === scene;
}

const SORTS = {
  order: { label: "Order chosen", key: (image) => image.index },
  "confidence-asc": {
    label: "Confidence, lowest first",
    key: (image) => image.prediction?.confidence ?? -1,
  },
  "confidence-desc": {
    label: "Confidence, highest first",
    key: (image) => -(image.prediction?.confidence ?? -1),
  },
  name: { label: "File name", key: (image) => image.filename },
};

/** The images in the order a sort says (stable: ties keep the order chosen). */
export function sortedImages(images, sort, grouped) {
  const key = SORTS[sort]?.key ?? SORTS.order.key;
  const scene = (image) => image.prediction?.top_scene ?? "\uffff"; // failed ones last
  return [...images].sort((a, b) => {
    if (grouped) {
      const byScene = scene(a).localeCompare(scene(b));
      if (byScene) return byScene;
    }
    const [x, y] = [key(a), key(b)];
    return (typeof x === "string" ? x.localeCompare(y) : x - y) || a.index - b.index;
  });
}

function flagBadges(image) {
  const p = image.prediction;
  if (!p) return [h("span", { class: "badge failed", text: "failed" })];
  return [outOfDomainBadge(p.domain), uncertainBadge(p)].filter(Boolean);
}

function tableRow(image, thumb) {
  const p = image.prediction;
  return h(
    "tr",
    {
      dataset: {
        index: image.index,
        filename: image.filename,
        scene: p?.top_scene ?? "",
        failed: p ? undefined : "",
      },
    },
    h("td", {}, h("div", { class: "row-thumb" }, thumbImg(thumb, ""))),
    h(
      "td",
      { class: "file-cell" },
      h("button", {
        type: "button",
        class: "link",
        text: image.filename,
        title: `View ${image.filename}`,
        dataset: { view: image.index },
      }),
    ),
    h(
      "td",
      { class: "scene-cell" },
      p
        ? [
            h("span", { class: "scene-dot", style: { background: sceneColour(p.top_scene) } }),
            sceneLabel(p.top_scene),
          ]
        : h("span", { class: "error-text", text: image.error?.detail ?? "could not be read" }),
    ),
    h("td", { class: "num", text: p ? percent(p.confidence) : "—" }),
    h("td", { class: "hide-narrow" }, h("span", { class: "flags" }, flagBadges(image))),
  );
}

function viewerItem(image, thumb) {
  const p = image.prediction;
  return {
    title: image.filename,
    src: thumb,
    note: "The file as chosen, whole.",
    facts: [
      ["Scene", p ? sceneLabel(p.top_scene) : "—"],
      ["Confidence", p ? percent(p.confidence) : "—"],
      ["Lead over the second", p ? percent(p.margin) : "—"],
      ["Flags", flagBadges(image).map((b) => b.textContent).join(", ") || "none"],
      ["SHA-256", image.sha256 ? `${image.sha256.slice(0, 16)}…` : "—"],
    ],
    details: () =>
      p
        ? sceneCardBody(image, true)
        : h("p", { class: "error-text", text: image.error?.detail ?? "could not be read" }),
  };
}

function option(value, label, selected = false) {
  return h("option", { value, text: label, selected });
}

export function renderScenes(result, selection) {
  const started = performance.now();
  const root = $("#scenes-results");
  const single = result.images.length === 1;
  const images = result.images.map((image, index) => ({ ...image, index }));
  const thumbs = images.map((_, i) => selection.urls[i]);
  const counts = new Map();
  for (const image of images) {
    const scene = image.prediction?.top_scene;
    if (scene) counts.set(scene, (counts.get(scene) ?? 0) + 1);
  }
  const count = (value) => images.filter(sceneFilter(value)).length;
  const view = {
    mode: images.length >= TABLE_FROM ? "table" : "cards",
    filter: "all",
    sort: "order",
    grouped: false,
    cards: CARDS_SHOWN,
  };
  const rows = images.map((image) => tableRow(image, thumbs[image.index]));
  const body = h("tbody");
  const table = h(
    "table",
    { class: "result-table", id: "scenes-table" },
    h("caption", { class: "visually-hidden", text: "Scene of each image" }),
    h(
      "thead",
      {},
      h(
        "tr",
        {},
        h("th", { scope: "col", text: "", "aria-label": "Picture" }),
        h("th", { scope: "col", text: "File" }),
        h("th", { scope: "col", text: "Scene" }),
        h("th", { scope: "col", class: "num", text: "Confidence" }),
        h("th", { scope: "col", class: "hide-narrow", text: "Flags" }),
      ),
    ),
    body,
  );
  const tableBox = h(
    "div",
    { class: "scroll-box", tabindex: "0", role: "region", "aria-label": "Scene of each image" },
    table,
  );
  const cards = h("ul", {
    class: single ? "result-grid single" : "result-grid",
    "aria-label": "Images",
  });
  const more = h("button", {
    type: "button",
    class: "ghost",
    id: "scenes-more",
    onclick: () => {
      view.cards += CARDS_SHOWN;
      update();
    },
  });
  const shown = h("p", { class: "hint", id: "scenes-shown", role: "status" });
  let visible = images;

  function update() {
    visible = sortedImages(images.filter(sceneFilter(view.filter)), view.sort, view.grouped);
    shown.textContent =
      view.filter === "all"
        ? `Showing all ${images.length} images.`
        : `Showing ${visible.length} of ${images.length} images.`;
    tableBox.hidden = view.mode !== "table";
    cards.hidden = view.mode !== "cards";
    if (view.mode === "table") {
      const children = [];
      let scene = null;
      for (const image of visible) {
        const top = image.prediction?.top_scene ?? "";
        if (view.grouped && top !== scene) {
          scene = top;
          const label = top ? sceneLabel(top) : "could not be read";
          const n = top ? counts.get(top) : count("failed");
          children.push(
            h(
              "tr",
              { class: "group-head", dataset: { group: top } },
              h("th", { colspan: "5", scope: "rowgroup", text: `${label} · ${n}` }),
            ),
          );
        }
        children.push(rows[image.index]);
      }
      body.replaceChildren(...children);
      more.hidden = true;
    } else {
      const some = visible.slice(0, view.cards);
      cards.replaceChildren(
        ...some.map((image) =>
          renderSceneCard(image, thumbs[image.index], { open: single, index: image.index }),
        ),
      );
      more.hidden = visible.length <= view.cards;
      more.textContent = `Show ${Math.min(CARDS_SHOWN, visible.length - view.cards)} more`;
    }
  }

  const tools = h(
    "div",
    { class: "view-tools", role: "group", "aria-label": "Show the results" },
    h(
      "label",
      { class: "field" },
      "View",
      h(
        "select",
        {
          id: "scenes-view",
          onchange: (e) => {
            view.mode = e.currentTarget.value;
            update();
          },
        },
        option("table", "Table", view.mode === "table"),
        option("cards", "Cards", view.mode === "cards"),
      ),
    ),
    h(
      "label",
      { class: "field" },
      "Show",
      h(
        "select",
        {
          id: "scenes-filter",
          onchange: (e) => {
            view.filter = e.currentTarget.value;
            update();
          },
        },
        option("all", `All ${images.length}`),
        [...counts.entries()].map(([scene, n]) =>
          option(`scene:${scene}`, `${sceneLabel(scene)} (${n})`),
        ),
        option("uncertain", `Uncertain (${count("uncertain")})`),
        option("out-of-domain", `Out of domain (${count("out-of-domain")})`),
        option("failed", `Failed (${count("failed")})`),
      ),
    ),
    h(
      "label",
      { class: "field" },
      "Sort",
      h(
        "select",
        {
          id: "scenes-sort",
          onchange: (e) => {
            view.sort = e.currentTarget.value;
            update();
          },
        },
        Object.entries(SORTS).map(([value, { label }]) => option(value, label)),
      ),
    ),
    h(
      "label",
      { class: "check" },
      h("input", {
        type: "checkbox",
        id: "scenes-group",
        onchange: (e) => {
          view.grouped = e.currentTarget.checked;
          update();
        },
      }),
      "Group by scene",
    ),
  );

  const results = h("div", {
    class: "scene-results",
    onclick: (event) => {
      const button = event.target.closest("[data-view]");
      if (!button || button.dataset.view === "") return;
      const at = visible.findIndex((image) => image.index === Number(button.dataset.view));
      openViewer(
        visible.map((image) => viewerItem(image, thumbs[image.index])),
        Math.max(0, at),
      );
    },
  });
  fill(results, single ? null : tools, single ? null : shown, tableBox, cards, more);
  update();
  fill(
    root,
    h(
      "div",
      { class: "results-head" },
      h("h2", { text: single ? "Result" : `${result.images.length} images` }),
      h("p", {
        class: "hint",
        text: `${modelName(result.model)} · taxonomy ${result.taxonomy.name} ${result.taxonomy.version}`,
      }),
      downloadButtons(result, "clipq-scenes", scenesCsv),
    ),
    outOfDomainNotice(result.images.map((i) => i.prediction?.domain)),
    result.summary
      ? renderSummary(
          result.summary,
          result.speed,
          result.images.flatMap((i) => i.prediction?.scores.map((s) => s.scene) ?? []),
        )
      : null,
    results,
  );
  requestAnimationFrame(() => {
    root.dataset.renderMs = (performance.now() - started).toFixed(1);
  });
}

export function setupScenes() {
  const form = $("#scenes-form");
  const zone = $("#scenes-drop");
  const runButton = $("#scenes-run");
  const label = (files) => {
    runButton.textContent = `Analyse ${files.length} image${files.length === 1 ? "" : "s"}`;
    runButton.disabled = !files.length || runner.busy;
  };
  const selection = new FileSelection($("#scenes-selected"), {
    onChange: (files) => {
      label(files);
      setStatus(runner.status, "");
    },
    onSkip: () => analyse(),
  });
  const runner = new JobRunner("scenes", {
    controls: [runButton, ...form.querySelectorAll("input[name=speed]")],
    onBusy: (busy) => {
      zone.setAttribute("aria-disabled", String(busy));
      selection.locked = busy; // no file leaves the selection while a job runs on it
      selection.render(selection.errors);
    },
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
    label(files);
    analyse();
  });
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    analyse();
  });
}

export async function loadSceneTypes() {
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


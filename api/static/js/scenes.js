// The Scenes tab: scene of each image, the dataset summary, matcher recommendations.

import { api, upload } from "./api.js";
import { $, fill, h, percent, sceneLabel, score, setStatus } from "./dom.js";
import { csv, downloadButtons } from "./downloads.js";
import { dropZone, FileSelection, thumbImg } from "./files.js";
import { JobRunner } from "./jobs.js";
import {
  errorCard,
  matcherBlock,
  meter,
  outOfDomainBadge,
  outOfDomainNotice,
  speedBadge,
} from "./results.js";

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

export function renderSceneCard(image, thumb, { open = false } = {}) {
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
        outOfDomainBadge(p.domain) ??
        (p.uncertain
          ? h("span", {
              class: "badge uncertain",
              text: "uncertain",
              title: "Low confidence, or a narrow lead over the second scene",
            })
          : null),
      ),
      meter(p.confidence, `Confidence ${percent(p.confidence)}`),
      h("p", { class: "description", text: p.description }),
      h("details", { class: "all-scores", open }, h("summary", { text: "All scores" }), scores),
      matcherBlock(p.recommended_matcher),
    ),
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

export function renderScenes(result, selection) {
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
    outOfDomainNotice(result.images.map((i) => i.prediction?.domain)),
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

export function setupScenes() {
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


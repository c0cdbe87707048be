// The model banner, above every tool: which model the workers serve and what it knows
// (GET /v1/models), said before any result. The embedded demo model gets a plain warning —
// it knows generated shapes only — with what to set for photographs, and "Try an example"
// pictures it does know (api/static/examples/, rendered by python -m clipcore.lab.examples),
// classified in one click.

import { authHeader, modelStrings } from "./api.js";
import { classifyExample } from "./classify.js";
import { $, fill, h, setStatus } from "./dom.js";

const EXAMPLES = "/static/examples/";
const KIND_NAMES = {
  "embedded-demo": "embedded demo",
  clip: "CLIP",
  coco: "COCO",
  custom: "custom",
};
const kindName = (kind) => KIND_NAMES[kind] ?? kind;

let shown = null; // the answer on screen: the banner is redrawn only when it changes
let manifest = null; // the examples' manifest, fetched once

/** Read GET /v1/models and show it; called at start, on a timer and when the key changes. */
export async function loadModels() {
  let answer;
  try {
    const response = await fetch("/v1/models", {
      headers: { Accept: "application/json", ...authHeader() },
    });
    answer = { status: response.status, text: await response.text() };
  } catch {
    answer = { status: 0, text: "" };
  }
  const key = `${answer.status} ${answer.text}`;
  if (key === shown) return;
  shown = key;
  let body = null;
  try {
    body = answer.text ? JSON.parse(answer.text) : null;
  } catch {
    body = null;
  }
  if (answer.status === 200 && body) await showModels(body);
  else showTrouble(answer.status, body);
}

export function setupModels() {
  const reload = () => {
    shown = null;
    loadModels();
  };
  $("#api-key-form").addEventListener("submit", reload);
  $("#api-key-forget").addEventListener("click", reload);
}

function banner(kind, ...children) {
  $("#model-banner").dataset.kind = kind;
  fill($("#model-banner-body"), ...children);
}

function showTrouble(status, problem) {
  if (status === 401) {
    banner(
      "unknown",
      h("p", {
        text: "This clipq needs an API key before it says which model it runs: enter it under “API key” above.",
      }),
    );
  } else if (status === 503) {
    banner(
      "unknown",
      h("p", {
        text: "No worker is running, so no model is loaded yet: jobs wait in the queue until one starts.",
      }),
      problem?.detail ? h("p", { class: "hint", text: problem.detail }) : null,
    );
  } else {
    const text = "Which model is loaded cannot be told: clipq is not reachable.";
    banner("unknown", h("p", { text }));
  }
}

async function showModels({ models, workers }) {
  if (!models.length) {
    banner(
      "unknown",
      h("p", {
        text: `${workers} worker${workers === 1 ? " is" : "s are"} running but none has loaded its model yet (with CLIPQ_PRELOAD_MODEL=false a worker loads it for its first job); it is named here once loaded.`,
      }),
    );
    return;
  }
  for (const model of models) modelStrings.set(model.model, model.id);
  const demo = models.some((m) => m.kind === "embedded-demo");
  const examples = await loadExamples();
  banner(
    demo ? "demo" : "clip",
    models.length > 1
      ? h("p", {
          class: "hint",
          text: `The workers serve ${models.length} different models (a rollout?): a job gets whichever takes it.`,
        })
      : null,
    models.map(modelBlock),
    examplesBlock(examples, models),
  );
}

/** "6 colours × 5 shapes (red, green, … × circle, square, …)", or the summary. */
function vocabulary(knows) {
  if (!knows) return null;
  if (knows.colours?.length && knows.shapes?.length)
    return `${knows.colours.length} colours × ${knows.shapes.length} shapes (${knows.colours.join(", ")} × ${knows.shapes.join(", ")})`;
  return knows.summary;
}

function modelBlock(model) {
  const demo = model.kind === "embedded-demo";
  const knows = vocabulary(model.knows);
  const headline = demo
    ? h(
        "p",
        { class: "model-headline" },
        h("strong", { text: "Demo model:" }),
        ` it knows only ${knows ?? "generated pictures"}; photographs will get meaningless answers.`,
      )
    : h(
        "p",
        { class: "model-headline" },
        "Model ",
        h("strong", { class: "model-id", text: model.id }),
        ` (${kindName(model.kind)})`,
        knows ? ` — it knows ${knows}.` : null,
      );
  return h(
    "div",
    { class: "model", dataset: { kind: model.kind, model: model.id } },
    headline,
    model.advice ? h("p", { class: "model-advice" }, withCode(model.advice)) : null,
    h(
      "dl",
      { class: "model-facts" },
      demo ? fact("Model", `${model.id} (${kindName(model.kind)})`) : null, // else the headline
      fact("Input", `${model.input_size} × ${model.input_size} px`),
      fact("Embeddings", `${model.embedding_dim}-d`),
      fact(
        "Detector",
        `${model.detector.id} (${kindName(model.detector.kind)})`,
        model.detector.summary,
      ),
      fact(
        "Domain check",
        model.domain_check ? "on" : "off",
        model.domain_check
          ? `Each result says whether the image looks like the model's reference images: ${model.domain_check}`
          : "This model has no reference images (CLIPQ_CLIP_DOMAIN_REFERENCE): results carry no domain check",
      ),
      fact("Workers", String(model.workers)),
    ),
    model.knows?.summary && demo
      ? h("p", { class: "hint model-summary", text: `Trained on: ${model.knows.summary}` })
      : null,
  );
}

function fact(name, value, title) {
  return h(
    "div",
    { class: "fact", dataset: { fact: name.toLowerCase() } },
    h("dt", { text: name }),
    h("dd", { text: value, title }),
  );
}

/** Settings in a sentence ("set CLIPQ_CLIP_MODEL=…") as code, the rest as text. */
function withCode(text) {
  return text
    .split(/(CLIPQ_[A-Z_]+(?:=[^\s,;()]*[^\s,;().])?)/)
    .map((part, i) => (i % 2 ? h("code", { text: part }) : part));
}

async function loadExamples() {
  if (!manifest) {
    manifest = fetch(`${EXAMPLES}examples.json`)
      .then((response) => (response.ok ? response.json() : { examples: [] }))
      .catch(() => {
        manifest = null; // try again on the next refresh
        return { examples: [] };
      });
  }
  return (await manifest).examples;
}

/** An example every served model knows: all its colours and shapes are in each's domain. */
function knownByAll(example, models) {
  return models.every((model) => {
    const { colours = [], shapes = [] } = model.knows ?? {};
    if (!colours.length || !shapes.length) return true; // a general CLIP knows a red circle
    return example.shows.every(([c, s]) => colours.includes(c) && shapes.includes(s));
  });
}

function examplesBlock(examples, models) {
  const usable = examples.filter((example) => knownByAll(example, models));
  if (!usable.length) return null;
  const stated = models.every((model) => model.knows?.colours?.length);
  const hint = stated ? "a picture this model knows" : "a picture of simple shapes";
  const status = h("p", { class: "status", role: "status", "aria-live": "polite" });
  return h(
    "div",
    { class: "examples", role: "group", "aria-labelledby": "examples-title" },
    h(
      "p",
      { class: "examples-title", id: "examples-title" },
      h("strong", { text: "Try an example" }),
      h("span", { class: "hint", text: ` — ${hint}, classified at once` }),
    ),
    h(
      "ul",
      { class: "example-list" },
      usable.map((example) =>
        h(
          "li",
          {},
          h(
            "button",
            {
              type: "button",
              class: "example",
              dataset: { example: example.file },
              title: `Classify against: ${example.labels.join(", ")}`,
              onclick: () => tryExample(example, status),
            },
            h("img", { src: `${EXAMPLES}${example.file}`, alt: "", width: 40, height: 40 }),
            h("span", { text: example.name }),
          ),
        ),
      ),
    ),
    status,
  );
}

async function tryExample(example, status) {
  setStatus(status, "");
  let file;
  try {
    const response = await fetch(`${EXAMPLES}${example.file}`);
    if (!response.ok) throw new Error(String(response.status));
    const blob = await response.blob();
    file = new File([blob], example.file, { type: blob.type || "image/png" });
  } catch {
    setStatus(status, "The example picture could not be loaded.", "error");
    return;
  }
  classifyExample([file], example.labels, example.prompt_template);
}

// The Classify tab: zero-shot labels for each image.

import { api, modelName, upload } from "./api.js";
import { $, fill, h, parseList, percent, score, setStatus } from "./dom.js";
import { csv, downloadButtons } from "./downloads.js";
import { dropZone, FileSelection, thumbImg } from "./files.js";
import { JobRunner } from "./jobs.js";
import { errorCard, meter, outOfDomainBadge, outOfDomainNotice } from "./results.js";

export function renderClassifyCard(image, thumb) {
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
            outOfDomainBadge(image.domain),
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

/** Why one label shows 100 %: the model's scores are shared among the labels given. */
export function soleLabelNote(result, labels) {
  if (labels.length !== 1) return null;
  const sure = result.images.every((i) => i.error || (i.predictions[0]?.probability ?? 0) > 0.9999);
  if (!sure) return null;
  return h("p", {
    class: "notice sole-label",
    role: "note",
    text: `With one label every image scores 100%: this model shares each image's probability among the labels it is given (a softmax), so a single label takes it all. Add the alternatives (“${labels[0]}, something else”) to see how well “${labels[0]}” fits.`,
  });
}

export function classifyCsv(result) {
  const rows = [["filename", "sha256", "model", "rank", "label", "probability", "error"]];
  const model = result.model;
  for (const image of result.images) {
    if (image.error)
      rows.push([image.filename, image.sha256, model, "", "", "", image.error.detail]);
    image.predictions.forEach((p, i) =>
      rows.push([image.filename, image.sha256, model, i + 1, p.label, p.probability.toFixed(6), ""]),
    );
  }
  return csv(rows);
}

/**
 * An example from the model banner: its pictures go into this tab's file input, its labels and
 * template into their fields, and it is classified at once (one click, a meaningful answer).
 */
export function classifyExample(files, labels, template) {
  $("#tab-classify").click();
  if ($("#classify-drop").getAttribute("aria-disabled") === "true")
    return setStatus($("#classify-status"), "A job is running: wait for it or cancel it.", "warn");
  $("#classify-labels").value = labels.join(", ");
  $("#classify-template").value = template;
  const input = $("#classify-files");
  const transfer = new DataTransfer();
  for (const file of files) transfer.items.add(file);
  input.files = transfer.files;
  input.dispatchEvent(new Event("change")); // the drop zone's own path: the selection, the button
  $("#classify-form").requestSubmit();
}

export function setupClassify() {
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
    top_k: $("#classify-topk-error"),
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
            text: `${result.images.length} image${result.images.length === 1 ? "" : "s"} · ${labels.length} label${labels.length === 1 ? "" : "s"}`,
          }),
          h("p", { class: "hint", text: modelName(result.model) }),
          downloadButtons(result, "clipq-classify", classifyCsv),
        ),
        soleLabelNote(result, labels),
        outOfDomainNotice(result.images.map((image) => image.domain)),
        h(
          "ul",
          { class: "result-grid" },
          result.images.map((image, i) => renderClassifyCard(image, selection.urls[i])),
        ),
      );
      setStatus(runner.status, "Done.", "ok");
    } catch (error) {
      selection.markErrors(error);
      let atField = false;
      for (const { field, message } of error.fields) {
        const key = Object.keys(fieldErrors).find((k) => field?.startsWith(k));
        if (key) {
          fieldErrors[key].textContent = message;
          atField = true;
        }
      }
      if (atField && error.fields.some((f) => f.field === "top_k")) $("#classify-topk").focus();
      setStatus(runner.status, atField ? "" : error.message, atField ? "" : "error");
    } finally {
      updateButton();
    }
  });
}


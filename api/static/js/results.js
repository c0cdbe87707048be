// Result pieces the tabs share: speed badges, meters, matcher blocks, error cards.

import { $, fill, h } from "./dom.js";
import { thumbImg } from "./files.js";
import { copyText, pipelineText } from "./pipeline.js";

export function speedBadge(speed) {
  return h("span", { class: `badge speed-${speed}`, text: speed, title: `${speed} matcher` });
}

export function meter(value, label) {
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

export function matcherBlock(matcher, { heading = "Recommended matcher" } = {}) {
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

/** True when the loaded model's domain check says the image looks like nothing it knows. */
export function outOfDomain(domain) {
  return Boolean(domain) && domain.in_domain === false;
}

export function outOfDomainBadge(domain) {
  if (!outOfDomain(domain)) return null;
  return h("span", {
    class: "badge out-of-domain",
    text: "out of domain",
    title: `This image looks like nothing the loaded model knows (similarity ${domain.score.toFixed(2)} to its reference images, below ${domain.threshold.toFixed(2)}): the answer is not meaningful`,
  });
}

/** A warning above a batch's results when some of its images are out of the model's domain. */
export function outOfDomainNotice(domains) {
  const count = domains.filter(outOfDomain).length;
  if (!count) return null;
  return h("p", {
    class: "notice out-of-domain-notice",
    role: "status",
    text: `${count} of ${domains.length} images look like nothing the loaded model knows: their answers are not meaningful. Load a model made for such images (see the model banner above).`,
  });
}

export function errorCard(filename, thumb, problem) {
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


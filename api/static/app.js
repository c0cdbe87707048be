// clipq's web page: native ES modules (this one and js/), no framework, no build step.
// Every action POSTs a job, then polls GET /v1/jobs/{id} to drive a progress bar and render
// the result. Errors (application/problem+json) are shown next to the control that caused them.
// Each part of the page is a module of js/; this one starts them.

import { setupApiKey, UNREACHABLE } from "./js/api.js";
import { setupClassify } from "./js/classify.js";
import { loadCollections, setupCollections } from "./js/collections.js";
import { $ } from "./js/dom.js";
import { loadModels, setupModels } from "./js/models.js";
import { setupPlan } from "./js/plan.js";
import { loadSceneTypes, setupScenes } from "./js/scenes.js";

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
  const fromHash = () => tabs.find((t) => t.id === `tab-${location.hash.slice(1)}`);
  select(fromHash() ?? tabs[0], false);
  // A link to #plan (or the address bar) opens its tab without a reload.
  window.addEventListener("hashchange", () => {
    const tab = fromHash();
    if (tab && tab.getAttribute("aria-selected") !== "true") select(tab, false);
  });
}

/** The header's pill: a few words (one line, whatever the state), the whole story as its title. */
async function checkService() {
  const el = $("#service-status");
  let health = "down";
  let [text, detail] = ["Unreachable", UNREACHABLE];
  try {
    const response = await fetch("/readyz", { headers: { Accept: "application/json" } });
    const body = await response.json().catch(() => null);
    if (response.ok) {
      health = "ready";
      text = `Ready · ${body.workers} worker${body.workers === 1 ? "" : "s"}`;
      detail = `The service is ready; ${text.slice(8)} running.`;
    } else if (body && body.redis === false) {
      [text, detail] = ["Job store down", "The job store (Redis) is down: jobs cannot be accepted."];
    } else if (body) {
      health = "degraded";
      [text, detail] = ["No worker", "No worker is running: jobs will wait in the queue."];
    }
  } catch {
    // unreachable: the defaults above
  }
  el.dataset.state = health;
  el.textContent = text;
  el.title = detail;
  el.setAttribute("aria-label", detail);
}

setupApiKey();
setupScenes();
setupPlan();
setupClassify();
setupCollections();
setupModels();
setupTabs();
loadModels();
loadSceneTypes();
checkService();
setInterval(() => {
  checkService();
  loadModels(); // redrawn only when the answer changes (a worker started, a rollout)
}, 20000);

// Imports by reference: webdataset shards, folders or URLs that the workers read themselves
// (POST /v1/collections/{id}/imports), with each shard's progress (GET …/imports/{job_id}).

import { api, sleep } from "./api.js";
import { $, fill, h, setStatus } from "./dom.js";

const POLL_MS = 1000;
const SHARDS_SHOWN = 200; // rows of the shard table; the counts above it cover every shard

const FIELDS = { webdataset: "shards", files: "paths", urls: "urls" };

/** The references, one a line, with the line each is on (for problems that name them). */
function references(text) {
  const refs = [];
  const lines = [];
  text.split("\n").forEach((raw, i) => {
    if (!raw.trim()) return;
    refs.push(raw.trim());
    lines.push(i + 1);
  });
  return { refs, lines };
}

const plural = (n, word) => `${n} ${word}${n === 1 ? "" : "s"}`;

/** A shard's first failed sample, named once (most problems already name their file). */
function sampleProblem(result) {
  const { sample, error } = result.errors[0];
  const first = error.detail.includes(sample) ? error.detail : `${sample}: ${error.detail}`;
  return result.failed > 1 ? `${first} (and ${result.failed - 1} more)` : first;
}

function shardRow(shard) {
  const r = shard.result;
  // each count kept on one line, the column wrapping between them
  const counts = !r
    ? []
    : r.skipped
      ? ["imported before: skipped"]
      : [`${r.added} added`, `${r.duplicates} already in`, `${r.failed} failed`].flatMap(
          (text, i) => [i ? " · " : null, h("span", { class: "count", text })],
        );
  const problem = shard.error?.detail ?? (r?.errors?.length ? sampleProblem(r) : "");
  return h(
    "tr",
    { dataset: { shard: shard.shard, status: shard.status } },
    h("td", { class: "num", text: String(shard.shard + 1) }),
    // the path clipped on its left (its end names the shard), read left to right all the same
    h(
      "td",
      { class: "file-cell", title: shard.name },
      h("span", {}, h("bdi", { text: shard.name })),
    ),
    h(
      "td",
      {},
      h("span", { class: `badge job-${shard.status}`, text: shard.status }),
      shard.attempts > 1 ? h("span", { class: "hint", text: ` attempt ${shard.attempts}` }) : null,
    ),
    h("td", { class: "num", text: String(shard.done) }),
    h("td", { class: "hide-narrow counts" }, counts),
    h("td", { class: "error-text hide-narrow", text: problem }),
  );
}

/** The import's progress: the bar (shards ended of all), the counts, a row per shard. */
export function renderImport(progress) {
  const { job, shards, total_shards: total } = progress;
  const ended = shards.filter((s) => ["succeeded", "failed", "cancelled"].includes(s.status));
  const running = shards.filter((s) => s.status === "running").length;
  const read = shards.reduce((sum, s) => sum + s.done, 0);
  const bar = $("#source-progress");
  if (total) {
    bar.max = total;
    bar.value = job.progress.done;
  } else bar.removeAttribute("value");
  const words = !total
    ? job.status === "queued"
      ? "Waiting for a worker to split the import…"
      : "Splitting the import into shards…"
    : `${job.progress.done} of ${plural(total, "shard")} ended · ${running} running · ${plural(read, "sample")} read`;
  $("#source-job .job-text").textContent = words;
  const failed = ended.filter((s) => s.status === "failed").length;
  fill(
    $("#source-shards"),
    total
      ? h(
          "div",
          { class: "scroll-box shard-box", tabindex: "0", role: "region", "aria-label": "Shards" },
          h(
            "table",
            { class: "result-table", id: "source-shard-table" },
            h("caption", {
              class: "visually-hidden",
              text: "Each shard of the import",
            }),
            h(
              "thead",
              {},
              h(
                "tr",
                {},
                ["#", "Shard", "Status", "Samples read", "Images", "Problem"].map((text, i) =>
                  h("th", {
                    scope: "col",
                    class: i >= 4 ? "hide-narrow" : i === 0 || i === 3 ? "num" : null,
                    text,
                  }),
                ),
              ),
            ),
            h("tbody", {}, shards.slice(0, SHARDS_SHOWN).map(shardRow)),
          ),
        )
      : null,
    total > SHARDS_SHOWN
      ? h("p", { class: "hint", text: `The first ${SHARDS_SHOWN} shards of ${total}.` })
      : null,
    failed
      ? h("p", {
          class: "hint error-text",
          text: `${plural(failed, "shard")} failed: the others go on.`,
        })
      : null,
  );
}

export function setupImports({ current, onImported }) {
  const form = $("#source-form");
  const status = $("#source-status");
  const input = $("#source-refs");
  const error = $("#source-refs-error");
  const run = $("#source-run");
  const cancel = $("#source-cancel");
  let jobId = null;

  cancel.addEventListener("click", async () => {
    if (!jobId) return;
    try {
      await api(`/v1/jobs/${encodeURIComponent(jobId)}`, { method: "DELETE" });
      setStatus(status, "Cancelling: shards being read stop at their next run of samples…", "warn");
    } catch (problem) {
      if (problem.status !== 409) setStatus(status, problem.message, "error");
    }
  });

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const collection = current();
    error.textContent = "";
    input.removeAttribute("aria-invalid");
    if (!collection) return setStatus(status, "Choose or create a collection first.", "error");
    const kind = $("#source-kind").value;
    const { refs, lines } = references(input.value);
    if (!refs.length) {
      error.textContent = "Give at least one shard pattern, path or URL.";
      input.setAttribute("aria-invalid", "true");
      return input.focus();
    }
    const body = {
      source: { kind, [FIELDS[kind]]: refs },
      labels: $("#source-labels").value,
      crops: $("#source-crops").checked,
    };
    const base = `/v1/collections/${encodeURIComponent(collection.id)}/imports`;
    run.disabled = true;
    setStatus(status, "Sending…");
    try {
      const job = await api(base, { method: "POST", json: body });
      jobId = job.id;
      cancel.hidden = false;
      $("#source-job").hidden = false;
      setStatus(status, "");
      let progress;
      for (;;) {
        progress = await api(`${base}/${encodeURIComponent(job.id)}?limit=${SHARDS_SHOWN}`);
        renderImport(progress);
        if (["succeeded", "failed", "cancelled"].includes(progress.job.status)) break;
        await sleep(POLL_MS);
      }
      const done = progress.job;
      if (done.status === "succeeded") {
        const r = done.result;
        setStatus(
          status,
          `Imported ${plural(r.added, "image")} from ${plural(r.shards, "shard")}` +
            `${r.shards_skipped ? ` (${r.shards_skipped} imported before)` : ""}` +
            `${r.duplicates ? `; ${r.duplicates} already in` : ""}${r.failed ? `; ${r.failed} failed` : ""}` +
            `${r.shards_failed ? `; ${plural(r.shards_failed, "shard")} could not be read` : ""}.` +
            ` The collection holds ${plural(r.image_count, "image")}.`,
          r.failed || r.shards_failed ? "warn" : "ok",
        );
      } else if (done.status === "cancelled") setStatus(status, "Cancelled.", "warn");
      else setStatus(status, done.error?.detail ?? "The import failed.", "error");
      onImported();
    } catch (problem) {
      const field = problem.fields?.find((f) => (f.field ?? "").startsWith("source."));
      const at = field?.field.match(/^source\.\w+\[(\d+)\]/);
      if (field) {
        error.textContent = `${at ? `Line ${lines[Number(at[1])] ?? Number(at[1]) + 1}: ` : ""}${field.message}.`;
        input.setAttribute("aria-invalid", "true");
        input.focus();
        setStatus(status, "");
      } else setStatus(status, problem.message, "error");
    } finally {
      jobId = null;
      run.disabled = false;
      cancel.hidden = true;
      $("#source-job").hidden = true;
    }
  });
}

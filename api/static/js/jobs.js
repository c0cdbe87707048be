// Jobs in the page: the progress bar, cancelling, the busy state of a form.

import { api, ApiError, pollJob } from "./api.js";
import { $, setStatus } from "./dom.js";

/**
 * One tool's job area: a progress bar, a status line, the buttons to disable while it runs.
 * run(submit, noun) POSTs — submit(onUpload) returns the accepted Job and may report upload
 * progress — then polls, and resolves with the finished job's result, or null when it was
 * cancelled. Errors propagate to the caller, which shows them next to what caused them.
 */
export class JobRunner {
  constructor(prefix, { controls = [], onBusy = () => {} } = {}) {
    this.box = $(`#${prefix}-job`);
    this.bar = $("progress", this.box);
    this.text = $(".job-text", this.box);
    this.status = $(`#${prefix}-status`);
    this.cancelButton = $(`#${prefix}-cancel`);
    this.controls = controls;
    this.onBusy = onBusy;
    this.jobId = null;
    this.busy = false;
    this.cancelButton?.addEventListener("click", () => this.cancel());
  }

  setBusy(busy) {
    this.busy = busy;
    for (const control of this.controls) control.disabled = busy;
    if (this.cancelButton) this.cancelButton.hidden = !busy;
    this.onBusy(busy);
  }

  /**
   * The bar and its words from the job's own fields. A job whose worker was lost goes back
   * to the queue (``queued`` with ``attempts`` ≥ 1) and starts again from 0 under a new
   * attempt: the words say so, and the bar never shows the lost attempt's count as live.
   */
  showProgress(job, noun) {
    this.box.hidden = false;
    const { done, total } = job.progress;
    const attempts = job.attempts ?? 0;
    this.box.dataset.attempt = String(attempts);
    if (job.status === "queued") {
      this.bar.removeAttribute("value"); // indeterminate until a worker takes it
      this.text.textContent = attempts
        ? `Worker lost — retrying (attempt ${attempts + 1}), waiting for a worker…`
        : "Waiting for a worker…";
      return;
    }
    this.bar.max = Math.max(total, 1);
    this.bar.value = done;
    const count = total ? `${done} of ${total} ${noun}` : "Working…";
    this.text.textContent =
      attempts > 1 ? `Worker lost — retrying (attempt ${attempts}): ${count}` : count;
  }

  /** The upload's own progress, before the job exists. */
  showUpload(loaded, total) {
    this.bar.max = Math.max(total, 1);
    this.bar.value = loaded;
    this.text.textContent = `Uploading ${Math.floor((100 * loaded) / Math.max(total, 1))}%`;
  }

  async run(submit, noun = "images") {
    this.setBusy(true);
    setStatus(this.status, "Sending…");
    this.box.hidden = false;
    this.bar.removeAttribute("value");
    this.text.textContent = "";
    try {
      const accepted = await submit((loaded, total) => this.showUpload(loaded, total));
      this.jobId = accepted.id;
      setStatus(this.status, "");
      const job = await pollJob(accepted.id, (update, note) => {
        if (update) {
          this.showProgress(update, noun);
          setStatus(this.status, "");
        } else setStatus(this.status, note, "warn");
      });
      if (job.status === "succeeded") return job.result;
      if (job.status === "cancelled") {
        setStatus(this.status, "Cancelled.", "warn");
        return null;
      }
      throw new ApiError(job.error?.detail || "The job failed.", { problem: job.error });
    } finally {
      this.jobId = null;
      this.box.hidden = true;
      this.setBusy(false);
    }
  }

  async cancel() {
    if (!this.jobId) return;
    this.cancelButton.disabled = true;
    try {
      await api(`/v1/jobs/${encodeURIComponent(this.jobId)}`, { method: "DELETE" });
      setStatus(this.status, "Cancelling…", "warn");
    } catch (error) {
      if (error.status !== 409) setStatus(this.status, error.message, "error");
    } finally {
      this.cancelButton.disabled = false;
    }
  }
}


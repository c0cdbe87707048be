"""Celery tasks: a few lines each — load inputs by id, call clipcore, store the result."""

from __future__ import annotations

from clipcore.classify import classify_uploads
from clipcore.contracts import (
    TASK_NAMES,
    ClassifyPayload,
    ClassifyResult,
    JobKind,
    ScenesPayload,
    ScenesResult,
)
from clipcore.retrieval_models import (
    EvaluatePayload,
    EvaluateResult,
    IngestPayload,
    IngestResult,
    SearchPayload,
    SearchResult,
)
from clipcore.scene_classifier import classify_scene_uploads
from clipcore.settings import get_settings
from clipcore.taxonomy import load_default_taxonomy
from worker import collections, runtime
from worker.celery_app import app
from worker.jobs import ProgressCallback, load_uploads, run_job


@app.task(name=TASK_NAMES[JobKind.classify])
def classify(job_id: str) -> str | None:
    def work(payload: ClassifyPayload, progress: ProgressCallback) -> ClassifyResult:
        settings = get_settings()
        clip = runtime.clip()
        images = classify_uploads(
            clip,
            runtime.text_cache(),
            load_uploads(runtime.store(), payload.images),
            labels=payload.labels,
            prompt_template=payload.prompt_template,
            top_k_labels=payload.top_k,
            batch_size=settings.batch_size,
            max_pixels=settings.max_image_pixels,
            on_progress=progress,
        )
        return ClassifyResult(model=clip.model_id, images=images)

    return run_job(runtime.store(), job_id, ClassifyPayload.model_validate_json, work)


@app.task(name=TASK_NAMES[JobKind.scenes])
def scenes(job_id: str) -> str | None:
    def work(payload: ScenesPayload, progress: ProgressCallback) -> ScenesResult:
        settings = get_settings()
        return classify_scene_uploads(
            runtime.clip(),
            runtime.text_cache(),
            load_uploads(runtime.store(), payload.images),
            taxonomy=payload.taxonomy or load_default_taxonomy(),
            speed=payload.speed,
            min_confidence=settings.scene_min_confidence,
            min_margin=settings.scene_min_margin,
            batch_size=settings.batch_size,
            max_pixels=settings.max_image_pixels,
            on_progress=progress,
        )

    return run_job(runtime.store(), job_id, ScenesPayload.model_validate_json, work)


@app.task(name=TASK_NAMES[JobKind.ingest])
def ingest(job_id: str) -> str | None:
    def work(payload: IngestPayload, progress: ProgressCallback) -> IngestResult:
        return collections.ingest(
            runtime.collections(),
            runtime.clip(),
            runtime.detector(),
            payload,
            lambda items: load_uploads(runtime.store(), items),
            progress,
            get_settings(),
        )

    return run_job(runtime.store(), job_id, IngestPayload.model_validate_json, work)


@app.task(name=TASK_NAMES[JobKind.search])
def search(job_id: str) -> str | None:
    def work(payload: SearchPayload, progress: ProgressCallback) -> SearchResult:
        result = collections.search(
            runtime.collections(),
            runtime.indexes(),
            runtime.clip(),
            runtime.text_cache(),
            payload,
            get_settings(),
        )
        progress(1)
        return result

    return run_job(runtime.store(), job_id, SearchPayload.model_validate_json, work)


@app.task(name=TASK_NAMES[JobKind.evaluate])
def evaluate(job_id: str) -> str | None:
    def work(payload: EvaluatePayload, progress: ProgressCallback) -> EvaluateResult:
        return collections.evaluate(
            runtime.collections(),
            runtime.indexes(),
            runtime.clip(),
            payload,
            progress,
            get_settings(),
        )

    return run_job(runtime.store(), job_id, EvaluatePayload.model_validate_json, work)

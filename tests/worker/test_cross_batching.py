"""Cross-job batching against a real Redis and a random CLIP: shared batches, same answers."""

from __future__ import annotations

import hashlib
import time
import uuid
from pathlib import Path

import pytest
import redis
import torch

from clipcore.batching import Upload
from clipcore.classify import classify_uploads
from clipcore.clip_model import LoadedClip, load_clip
from clipcore.encode import EmbeddingCache
from clipcore.scene_classifier import classify_scene_uploads
from clipcore.taxonomy import Speed, load_default_taxonomy
from clipq.contracts.jobs import ClassifyPayload, ImageRef, JobStatus, ScenesPayload
from clipq.settings import Settings
from clipq.store.jobs import (
    QUEUED_KEY,
    RUNNING_KEY,
    WorkerStore,
    blob_key,
    job_from_record,
    job_key,
)
from clipq.store.jobs import new_record as record_of
from tests.support import distinct_pngs, truncated_png
from worker.cross_batching import Models, gather, run_batched

LABELS = ["cat", "dog", "bird"]


@pytest.fixture(scope="module")
def clip(random_clip_dir: Path) -> LoadedClip:
    return load_clip(str(random_clip_dir), "cpu")


@pytest.fixture
def store(redis_url: str) -> WorkerStore:
    client = redis.Redis.from_url(redis_url)
    client.delete(QUEUED_KEY, RUNNING_KEY)
    return WorkerStore(client, ttl_seconds=120, lease_seconds=3)


class Recorder:
    """Models for the worker, counting the forward passes and their sizes."""

    def __init__(self, clip: LoadedClip) -> None:
        self.batches: list[int] = []
        self.models = Models(clip, EmbeddingCache(), observe=self.observe)
        self.before_embedding = lambda: None

    def observe(self, images: int, seconds: float) -> None:
        self.batches.append(images)

    def __call__(self) -> Models:
        self.before_embedding()
        return self.models


def settings(**overrides: object) -> Settings:
    return Settings(**{"batch_size": 16, "batch_wait_ms": 0, **overrides})


def submit(store: WorkerStore, payload: ClassifyPayload | ScenesPayload, blobs: list[bytes]) -> str:
    """What the API does: upload bytes, a queued record, a place in the queue."""
    job_id = uuid.uuid4().hex
    for data in blobs:
        store.redis.set(blob_key(hashlib.sha256(data).hexdigest()), data, ex=120)
    store.redis.hset(job_key(job_id), mapping=record_of(job_id, payload, total=len(blobs)))
    store.redis.expire(job_key(job_id), 120)
    store.redis.zadd(QUEUED_KEY, {job_id: time.time()})
    return job_id


def refs(blobs: list[bytes], prefix: str = "") -> list[ImageRef]:
    return [
        ImageRef(sha256=hashlib.sha256(data).hexdigest(), filename=f"{prefix}{i}.png")
        for i, data in enumerate(blobs)
    ]


def classify_job(store: WorkerStore, blobs: list[bytes], labels: list[str] = LABELS) -> str:
    payload = ClassifyPayload(images=refs(blobs), labels=labels, prompt_template="{}", top_k=2)
    return submit(store, payload, blobs)


def job(store: WorkerStore, job_id: str):
    return job_from_record(store.redis.hgetall(job_key(job_id)))


def uploads(blobs: list[bytes]) -> list[Upload]:
    return [Upload(r.filename, r.sha256, d) for r, d in zip(refs(blobs), blobs, strict=True)]


def test_many_small_jobs_share_one_forward_pass(store: WorkerStore, clip: LoadedClip) -> None:
    images = distinct_pngs(12, (24, 20))
    ids = [classify_job(store, [data]) for data in images]
    recorder = Recorder(clip)

    assert run_batched(store, ids[0], settings(), recorder) == JobStatus.succeeded
    assert recorder.batches == [12]
    for job_id, data in zip(ids, images, strict=True):
        done = job(store, job_id)
        assert done.status == JobStatus.succeeded, done.error
        assert done.attempts == 1 and done.progress.done == 1
        # The same as the job run alone.
        alone = classify_uploads(
            clip,
            EmbeddingCache(),
            uploads([data]),
            labels=LABELS,
            prompt_template="{}",
            top_k_labels=2,
            batch_size=1,
            max_pixels=10**6,
        )
        for got, expected in zip(done.result.images, alone, strict=True):
            assert [p.label for p in got.predictions] == [p.label for p in expected.predictions]
            for p, q in zip(got.predictions, expected.predictions, strict=True):
                assert p.probability == pytest.approx(q.probability, abs=1e-5)
    assert store.redis.zcard(QUEUED_KEY) == 0 and store.redis.zcard(RUNNING_KEY) == 0


def test_classify_and_scene_jobs_batch_together_each_with_its_own_answer(
    store: WorkerStore, clip: LoadedClip
) -> None:
    blobs = distinct_pngs(5, (30, 30))
    first = classify_job(store, blobs[:2], ["red", "blue"])
    second = classify_job(store, blobs[2:3], ["x", "y", "z"])
    scenes = submit(store, ScenesPayload(images=refs(blobs[3:]), speed=Speed.fast), blobs[3:])
    bad = classify_job(store, [truncated_png()])
    recorder = Recorder(clip)

    assert run_batched(store, first, settings(), recorder) == JobStatus.succeeded
    assert recorder.batches == [5]  # the truncated image never reaches the model
    assert {p.label for p in job(store, first).result.images[0].predictions} <= {"red", "blue"}
    assert {p.label for p in job(store, second).result.images[0].predictions} <= {"x", "y", "z"}
    scene_result = job(store, scenes).result
    expected = classify_scene_uploads(
        clip,
        EmbeddingCache(),
        uploads(blobs[3:]),
        taxonomy=load_default_taxonomy(),
        speed=Speed.fast,
        min_confidence=0.5,
        min_margin=0.1,
        batch_size=1,
        max_pixels=10**6,
    )
    assert scene_result.summary is not None
    for got, want in zip(scene_result.images, expected.images, strict=True):
        assert got.prediction.top_scene == want.prediction.top_scene
        assert got.prediction.confidence == pytest.approx(want.prediction.confidence, abs=1e-5)
    broken = job(store, bad)
    assert broken.status == JobStatus.succeeded
    assert broken.result.images[0].error.status == 422


def test_cancelling_one_claimed_job_leaves_the_others_alone(
    store: WorkerStore, clip: LoadedClip
) -> None:
    ids = [classify_job(store, [data]) for data in distinct_pngs(4, (20, 20))]
    recorder = Recorder(clip)
    # The client cancels the third job after the worker claimed it, before its result.
    recorder.before_embedding = lambda: store.redis.hset(job_key(ids[2]), "status", "cancelled")

    assert run_batched(store, ids[0], settings(), recorder) == JobStatus.succeeded
    statuses = [job(store, j).status for j in ids]
    assert statuses == ["succeeded", "succeeded", "cancelled", "succeeded"]
    assert job(store, ids[2]).result is None


def test_a_claimed_jobs_own_delivery_is_skipped(store: WorkerStore, clip: LoadedClip) -> None:
    lead, claimed = (classify_job(store, [d]) for d in distinct_pngs(2, (22, 22)))
    recorder = Recorder(clip)
    during = []
    # While the batch runs, the claimed job's message reaches another worker: dropped (-3).
    recorder.before_embedding = lambda: during.append(store.start(claimed, "other-worker"))

    assert run_batched(store, lead, settings(), recorder) == JobStatus.succeeded
    assert during == [-3]
    finished = job(store, claimed)
    assert finished.status == JobStatus.succeeded and finished.attempts == 1
    # Later its message reaches this worker: the job has ended, nothing runs again.
    assert run_batched(store, claimed, settings(), recorder) is None
    assert recorder.batches == [2]
    assert job(store, claimed).finished_at == finished.finished_at


def test_claims_stop_at_one_model_batch_and_leave_large_jobs(
    store: WorkerStore, clip: LoadedClip
) -> None:
    images = distinct_pngs(40, (20, 20))
    large = classify_job(store, images[:20])  # a whole batch or more: runs alone
    small = [classify_job(store, images[20 + 3 * i : 23 + 3 * i]) for i in range(6)]
    recorder = Recorder(clip)

    assert run_batched(store, small[0], settings(batch_size=8), recorder) == JobStatus.succeeded
    assert recorder.batches == [6]  # 3 + 3 images; a third job of 3 would not fit in 8
    assert [job(store, j).status for j in small] == ["succeeded"] * 2 + ["queued"] * 4
    assert job(store, large).status == JobStatus.queued


def test_a_lone_job_does_not_wait_but_arrivals_are_gathered(
    store: WorkerStore, clip: LoadedClip
) -> None:
    images = distinct_pngs(3, (18, 18))
    lead = classify_job(store, images[:1])
    store.start(lead, "lease")
    started = time.monotonic()
    assert gather(store, "lease", settings(batch_wait_ms=1000), budget=15) == []
    assert time.monotonic() - started < 0.5

    second = classify_job(store, images[1:2])
    started = time.monotonic()
    claimed = gather(store, "lease", settings(batch_wait_ms=300), budget=15)
    assert claimed == [second]
    assert 0.25 < time.monotonic() - started < 2  # waited for more, up to the wait
    assert job(store, second).status == JobStatus.running


def test_jobs_out_of_attempts_are_not_claimed(store: WorkerStore, clip: LoadedClip) -> None:
    lead, worn = (classify_job(store, [d]) for d in distinct_pngs(2, (26, 26)))
    store.redis.hset(job_key(worn), "attempts", store.max_attempts)
    recorder = Recorder(clip)
    assert run_batched(store, lead, settings(), recorder) == JobStatus.succeeded
    assert job(store, worn).status == JobStatus.queued  # its own delivery will fail it
    assert run_batched(store, worn, settings(), recorder) == JobStatus.failed
    assert job(store, worn).error.type == "/problems/worker-lost"


def test_embeddings_are_float_unit_vectors_from_one_call(
    store: WorkerStore, clip: LoadedClip
) -> None:
    from worker.cross_batching import embed_shared

    blobs = distinct_pngs(3, (21, 21))
    groups = [uploads(blobs)[:2], uploads(blobs)[1:]]
    recorder = Recorder(clip)
    embedded = embed_shared(recorder(), groups, settings())
    assert recorder.batches == [3]  # the image both jobs share (same bytes and name) once
    assert [len(g) for g in embedded] == [2, 2]
    for item in embedded[0] + embedded[1]:
        assert isinstance(item, torch.Tensor)
        assert float(item.norm()) == pytest.approx(1.0, abs=1e-5)

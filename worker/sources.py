"""Imports by reference in a worker: split an import into shards, import one shard, answer.

A shard is streamed, never stored: its samples are read in runs of :data:`APPEND_EVERY`,
each run's images already in the collection (by SHA-256) are skipped before they are
decoded, and the rest are decoded, embedded (with crops when asked) and appended by
:func:`worker.collections.ingest`, as uploaded images are. A shard read to its end is
remembered by the collection (``{c}:sources``), so an import run again skips it; one cut
short (its worker killed) is read again by the next worker, which skips what is in.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable, Iterator, Sequence
from itertools import islice
from typing import Any

import torch
from pydantic import ValidationError

from clipcore.batching import Upload
from clipcore.clip_model import LoadedClip
from clipcore.errors import ClipqError, InvalidInput
from clipcore.prompts import MAX_LABEL_LENGTH
from clipcore.webdataset import Sample, read_samples, sidecar
from clipq.contracts.collections import IngestItem, IngestPayload, IngestStatus
from clipq.contracts.jobs import JobStatus
from clipq.contracts.sources import (
    MAX_SAMPLE_ERRORS,
    LabelsFrom,
    SampleError,
    ShardSpec,
    SourceImportPayload,
    SourceImportResult,
    SourceKind,
    SourceShardPayload,
    SourceShardResult,
)
from clipq.errors import RelayedProblem, SourceUnreadable
from clipq.settings import Settings
from clipq.sources import expand_braces
from clipq.store.collections import Collections
from clipq.store.jobs import SHARDS_LEASE, WorkerStore, shard_job_id
from worker.collections import ingest, require_collection
from worker.jobs import Notify, RunningJob, ended
from worker.source_reader import READ_ERRORS, SourceReader

log = logging.getLogger(__name__)

# Samples per append: each is one transaction under the collection's lock and one progress
# report; a killed worker's successor re-reads them but embeds none of those appended.
APPEND_EVERY = 256
MAX_METADATA_BYTES = 4096  # as for uploaded images (api.forms)


def split(
    payload: SourceImportPayload, reader: SourceReader, settings: Settings
) -> list[ShardSpec]:
    """The import's shards: one per tar, or ``files_per_shard`` files or URLs each.
    :class:`InvalidInput` (naming the reference) for one this worker may not read."""
    source, limit = payload.source, settings.ingest_max_shards
    specs: list[ShardSpec] = []
    if source.kind == SourceKind.webdataset:
        for index, pattern in enumerate(source.shards):
            field = f"source.shards[{index}]"
            for url in _expanded(pattern, field, limit):
                read = reader.checked(url, field)  # the name too: '/a.tar' is 'file:///a.tar'
                specs.append(ShardSpec(name=read, webdataset=True, urls=[read]))
                _at_most(specs, limit)
        return specs
    if source.kind == SourceKind.files:
        images: list[str] = []
        sidecars: set[str] = set()
        for index, path in enumerate(source.paths):
            found, beside = reader.images_under(path, f"source.paths[{index}]")
            images += found
            sidecars |= beside
    else:
        images = [reader.checked(url, f"source.urls[{i}]") for i, url in enumerate(source.urls)]
        sidecars = set()
    if not images:
        raise InvalidInput.for_field("source", "names no image files")
    size = source.files_per_shard
    for start in range(0, len(images), size):
        chunk = images[start : start + size]
        sides = sorted(side for url in chunk for side in _sidecar_names(url) if side in sidecars)
        name = f"{chunk[0]} +{len(chunk) - 1}"
        specs.append(ShardSpec(name=name, webdataset=False, urls=chunk, sidecars=sides))
        _at_most(specs, limit)
    return specs


def _expanded(pattern: str, field: str, limit: int) -> list[str]:
    try:
        return expand_braces(pattern, limit)
    except ValueError as exc:
        raise InvalidInput.for_field(field, str(exc)) from None


def _at_most(specs: list[ShardSpec], limit: int) -> None:
    if len(specs) > limit:
        raise InvalidInput.for_field(
            "source", f"more than {limit} shards (CLIPQ_INGEST_MAX_SHARDS): import it in parts"
        )


def _sidecar_names(url: str) -> list[str]:
    stem = url.rpartition(".")[0]
    return [f"{stem}.txt", f"{stem}.json"]


def shard_payloads(
    job_id: str, payload: SourceImportPayload, specs: list[ShardSpec]
) -> list[SourceShardPayload]:
    return [
        SourceShardPayload(
            collection_id=payload.collection_id,
            parent=job_id,
            shard=number,
            spec=spec,
            labels=payload.labels,
            crops=payload.crops,
        )
        for number, spec in enumerate(specs)
    ]


def import_shard(
    store: Collections,
    clip: LoadedClip,
    detector: torch.nn.Module,
    payload: SourceShardPayload,
    reader: SourceReader,
    owner: str,
    progress: Callable[[int], None],
    settings: Settings,
) -> SourceShardResult:
    """Read one shard into the collection; its tally. A shard that cannot be read (missing,
    refused, cut off) raises :class:`SourceUnreadable` with what it had appended kept."""
    spec = payload.spec
    require_collection(store, payload.collection_id, settings.clip_model)
    result = SourceShardResult(
        collection_id=payload.collection_id,
        shard=payload.shard,
        name=spec.name,
        read=0,
        added=0,
        duplicates=0,
        failed=0,
    )
    if store.source_done(payload.collection_id, spec.name):
        result.skipped = True
        return result
    if not payload.crops:
        settings = settings.model_copy(update={"crops_per_image": 0})
    samples = _samples(spec, reader, settings)
    while run := list(islice(samples, APPEND_EVERY)):
        _append(store, clip, detector, payload, run, owner, result, settings)
        result.read += len(run)
        progress(result.read)
    store.mark_source_done(
        payload.collection_id,
        spec.name,
        {"read": result.read, "added": result.added, "failed": result.failed},
    )
    return result


def _append(
    store: Collections,
    clip: LoadedClip,
    detector: torch.nn.Module,
    payload: SourceShardPayload,
    run: list[Sample],
    owner: str,
    result: SourceShardResult,
    settings: Settings,
) -> None:
    items: list[IngestItem] = []
    data: dict[str, bytes] = {}
    for sample in run:
        if sample.image is None:
            _failed(result, sample.name, SourceUnreadable(f"{sample.name}: {sample.problem}"))
            continue
        sha256 = hashlib.sha256(sample.image).hexdigest()
        try:
            items.append(
                IngestItem(
                    sha256=sha256,
                    filename=sample.name[-200:],
                    labels=_labels(sample, payload.labels),
                    metadata=_metadata(sample),
                )
            )
        except ValidationError as exc:
            message = exc.errors()[0]["msg"]
            _failed(result, sample.name, InvalidInput.for_field("labels", message))
            continue
        data[sha256] = sample.image
    if not items:
        return

    def uploads_of(fresh: Sequence[IngestItem]) -> list[Upload]:
        return [Upload(item.filename, item.sha256, data[item.sha256], owner) for item in fresh]

    ingested = ingest(
        store,
        clip,
        detector,
        IngestPayload(collection_id=payload.collection_id, images=items),
        uploads_of,
        lambda done: None,
        settings,
    )
    result.added += ingested.added
    result.duplicates += ingested.duplicates
    for image in ingested.images:
        if image.status == IngestStatus.failed and image.error is not None:
            result.failed += 1
            if len(result.errors) < MAX_SAMPLE_ERRORS:
                result.errors.append(SampleError(sample=image.filename, error=image.error))


def _failed(result: SourceShardResult, name: str, error: ClipqError) -> None:
    result.failed += 1
    if len(result.errors) < MAX_SAMPLE_ERRORS:
        result.errors.append(SampleError(sample=name, error=error.to_problem()))


def _samples(spec: ShardSpec, reader: SourceReader, settings: Settings) -> Iterator[Sample]:
    limit = settings.ingest_max_image_bytes
    if spec.webdataset:
        [url] = spec.urls
        with reader.open(url, settings.ingest_max_shard_bytes) as stream:
            try:
                yield from read_samples(stream, limit)  # type: ignore[arg-type]
            except ClipqError:
                raise
            except READ_ERRORS as exc:
                raise SourceUnreadable(f"{url}: {exc or exc.__class__.__name__}") from None
        return
    sidecars = set(spec.sidecars)
    for url in spec.urls:
        sample = Sample(key=url, name=url.rpartition("/")[2] or url)
        try:
            sample.image = reader.read(url, limit)
            for side in _sidecar_names(url):
                if side in sidecars:
                    sidecar(sample, side.rpartition(".")[2], reader.read(side, limit))
        except ClipqError as exc:
            sample.image, sample.problem = None, exc.detail
        yield sample


def _labels(sample: Sample, source: LabelsFrom) -> list[str]:
    if source == LabelsFrom.caption:
        caption = (sample.caption or "").strip()
        return [caption[:MAX_LABEL_LENGTH]] if caption else []
    if source == LabelsFrom.json:
        found = sample.metadata.get("labels", sample.metadata.get("label"))
        if isinstance(found, str):
            return [found]
        if isinstance(found, list):
            return [str(label) for label in found]
    return []


def _metadata(sample: Sample) -> dict[str, Any]:
    """The sample's .json with its caption, kept within 4 KB: past it, only the short
    fields (img2dataset's EXIF blob is what grows)."""
    metadata = dict(sample.metadata)
    if sample.caption:
        metadata["caption"] = sample.caption
    if len(json.dumps(metadata)) <= MAX_METADATA_BYTES:
        return metadata
    kept: dict[str, Any] = {}
    for key, value in metadata.items():
        if isinstance(value, int | float | bool | str) and len(str(value)) <= 500:
            kept[key] = value
            if len(json.dumps(kept)) > MAX_METADATA_BYTES:
                kept.pop(key)
                break
    return kept


def shard_progress(jobs: WorkerStore, job: RunningJob, parent: str) -> Callable[[int], None]:
    """Progress of a shard job that stops it once its import is over (cancelled): the
    shard is cancelled too, so that no worker takes it again."""

    def report(done: int) -> None:
        if jobs.status(parent) != JobStatus.running:
            jobs.cancel(job.job_id)
        job.progress(done)

    return report


def answer(
    jobs: WorkerStore, collections: Collections, job_id: str, payload: SourceImportPayload
) -> SourceImportResult:
    """The import's result from its shard jobs' (the first problem if every shard failed)."""
    shards = jobs.total(job_id)
    found = jobs.jobs([shard_job_id(job_id, n) for n in range(shards)])
    results = [j.result for j in found if j and isinstance(j.result, SourceShardResult)]
    problems = [j.error for j in found if j and j.error is not None]
    if problems and not results:
        raise RelayedProblem(problems[0])
    counts = collections.counts(payload.collection_id)
    return SourceImportResult(
        collection_id=payload.collection_id,
        shards=shards,
        shards_skipped=sum(r.skipped for r in results),
        shards_failed=shards - len(results),
        added=sum(r.added for r in results),
        duplicates=sum(r.duplicates for r in results),
        failed=sum(r.failed for r in results),
        image_count=counts[1] if counts else 0,
    )


def shard_ended(jobs: WorkerStore, collections: Collections, shard_id: str, notify: Notify) -> None:
    """After a shard job ended (or a duplicate delivery found it ended): count it in its
    import; once every shard has, answer the import (again, if the worker that counted the
    last died before answering: its task is delivered again)."""
    if jobs.status(shard_id) not in (JobStatus.succeeded, JobStatus.failed):
        return  # running elsewhere, or cancelled with its import
    shard = SourceShardPayload.model_validate_json(jobs.payload(shard_id) or "")
    if jobs.shard_ended(shard.parent, shard.shard) != 1:
        return
    payload = SourceImportPayload.model_validate_json(jobs.payload(shard.parent) or "")
    try:
        answered = jobs.succeed(
            shard.parent, SHARDS_LEASE, answer(jobs, collections, shard.parent, payload)
        )
    except ClipqError as exc:
        answered = jobs.fail(shard.parent, SHARDS_LEASE, exc.to_problem())
    if answered:  # not by a duplicate delivery racing the first answer
        ended(jobs, [shard.parent], notify)

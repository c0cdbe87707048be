"""Collections in a worker: the in-memory index per collection, refreshed by version."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch

from clipcore import retrieval
from clipcore.batching import EmbeddingStore, Upload, embed_uploads
from clipcore.clip_model import LoadedClip
from clipcore.encode import embed_texts
from clipcore.ingest import CropSettings, PreparedImage, prepare_images
from clipcore.metrics import mean
from clipcore.model_names import model_key
from clipcore.problem import Problem
from clipcore.retrieval import CollectionIndex
from clipcore.schemas import RerankMode
from clipcore.vector_index import IndexPolicy, RowSource
from clipq.contracts.collections import (
    Collection,
    EvaluatePayload,
    EvaluateResult,
    IngestedImage,
    IngestItem,
    IngestPayload,
    IngestResult,
    IngestStatus,
    ModeMetrics,
    QueryEvaluation,
    QueryMetrics,
)
from clipq.errors import Conflict, NotFound, QuotaExceeded, RelayedProblem
from clipq.settings import Settings
from clipq.store.collections import Collections
from clipq.store.shards import ShardView
from worker import saved_indexes

log = logging.getLogger(__name__)


class CollectionIndexes:
    """One :class:`CollectionIndex` per collection, loaded on first use.

    Rows are only ever appended, so a refresh reads just the rows added since
    the last one; a collection deleted (and perhaps re-created) starts over. With a
    ``folder`` (``CLIPQ_INDEX_DIR``), approximate indexes trained here are saved there and
    a collection met for the first time is mapped from it (:mod:`worker.saved_indexes`).
    """

    def __init__(
        self,
        store: Collections | ShardView,
        policy: IndexPolicy | None = None,
        folder: Path | None = None,
    ) -> None:
        self.store = store
        self.policy = policy or IndexPolicy()
        self.folder = folder
        self._indexes: dict[str, CollectionIndex] = {}
        self._lock = threading.Lock()

    def get(self, collection_id: str) -> CollectionIndex:
        counts = self.store.counts(collection_id)
        if counts is None:
            self.forget(collection_id)
            raise NotFound(f"no collection {collection_id!r}")
        version, images, crops, dim = counts
        with self._lock:
            index = self._indexes.get(collection_id)
            if index is None or index.size > images:
                index = self._indexes[collection_id] = self._fresh(
                    collection_id, images, crops, dim
                )
            if index.version != version:
                self._refresh(collection_id, index, images, crops, dim, version)
                shard = getattr(self.store, "shard", None)
                where = f", {shard}" if shard else ""
                log.info("collection %s%s: %d images held", collection_id, where, index.size)
        if index.built and self.folder:  # outside the lock: a large write takes seconds
            saved_indexes.save(self.folder, collection_id, index)
        return index

    def forget(self, collection_id: str) -> None:
        """A collection that is gone: its index, saved index and vector files go too."""
        self._indexes.pop(collection_id, None)
        if self.folder:
            saved_indexes.remove(self.folder, collection_id)
        if self.store.files:
            self.store.files.remove(collection_id)

    def sweep(self) -> list[str]:
        """Remove the files of deleted collections (the API deletes what is in Redis)."""
        held = set(self.store.files.collection_ids()) if self.store.files else set()
        if self.folder and self.folder.is_dir():
            held |= {p.name for p in self.folder.iterdir() if p.is_dir()}
        gone = sorted(c for c in held if self.store.counts(c) is None)
        for collection_id in gone:
            self.forget(collection_id)
        return gone

    def _fresh(self, collection_id: str, images: int, crops: int, dim: int) -> CollectionIndex:
        sources = self._sources(collection_id, dim)
        if self.folder and images >= self.policy.exact_below:
            saved = saved_indexes.load(
                self.folder, collection_id, self.store, self.policy, images, crops, sources
            )
            if saved is not None:
                return saved
        return CollectionIndex(policy=self.policy, image_source=sources[0], crop_source=sources[1])

    def _sources(self, collection_id: str, dim: int) -> tuple[RowSource | None, RowSource | None]:
        """For a collection in files, where its approximate indexes read exact vectors
        (images, crops)."""
        if not dim or not self.store.vectors_in_files(collection_id):
            return None, None
        take = self.store.take_rows
        return (
            lambda rows: take(collection_id, "emb", rows, dim),
            lambda rows: take(collection_id, "crop", rows, dim),
        )

    def _refresh(
        self,
        collection_id: str,
        index: CollectionIndex,
        images: int,
        crops: int,
        dim: int,
        version: int,
    ) -> None:
        """Append the rows added since ``index`` was last refreshed, ``REFRESH_ROWS`` images
        (with their crops) at a time; an empty index met past ``exact_below`` is built at
        its full size instead."""
        have_images, have_crops = index.size, index.crop_count
        store = self.store
        try:
            owners = store.read_rows(collection_id, "owner", have_crops, crops, 1)[:, 0]
            owners = owners.astype(np.int64)
            if have_images == 0 and images >= max(self.policy.exact_below, 1) and dim:
                index.build_approximate(
                    _ids(store, collection_id, 0, images),
                    lambda a, b: store.read_rows(collection_id, "emb", a, b, dim),
                    torch.from_numpy(owners),
                    lambda a, b: store.read_rows(collection_id, "crop", a, b, dim),
                    dim,
                    version,
                )
                return
            for start in range(have_images, max(images, have_images + 1), REFRESH_ROWS):
                end = min(start + REFRESH_ROWS, images)
                # the crops of these images: owners are image rows, in order
                low = have_crops + int(np.searchsorted(owners, start))
                high = have_crops + int(np.searchsorted(owners, end))
                index.extend(
                    store.image_ids(collection_id, start, end),
                    _tensor(store.read_rows(collection_id, "emb", start, end, dim), dim),
                    _tensor(store.read_rows(collection_id, "crop", low, high, dim), dim),
                    torch.from_numpy(owners[low - have_crops : high - have_crops]),
                    version if end == images else -1,
                )
        except LookupError as exc:  # deleted or replaced while we read
            self._indexes.pop(collection_id, None)
            raise NotFound(f"collection {collection_id} was deleted while it was read") from exc


REFRESH_ROWS = 262_144  # images read and added at a time: 512 MB of fp32 at 512-d


def _ids(store: Collections | ShardView, collection_id: str, start: int, end: int) -> list[str]:
    ids: list[str] = []
    for first in range(start, end, REFRESH_ROWS):
        ids += store.image_ids(collection_id, first, min(first + REFRESH_ROWS, end))
    return ids


def _tensor(rows: np.ndarray, dim: int) -> torch.Tensor:
    # fp16 in Redis; fp32 in memory, since CPUs multiply fp32 far faster than fp16.
    if dim == 0:  # nothing ingested yet: no width known
        return torch.empty(0, 0)
    return torch.from_numpy(rows.astype(np.float32)).reshape(-1, dim)


def require_collection(
    store: Collections | ShardView, collection_id: str, model: str
) -> Collection:
    """The collection, if it exists and holds embeddings of this worker's model."""
    collection = store.get(collection_id)
    if collection is None:
        raise NotFound(f"no collection {collection_id!r}")
    if model_key(collection.model) != model_key(model):
        raise Conflict(
            f"collection {collection.name!r} holds embeddings of {collection.model!r}, "
            f"but this worker runs {model!r}"
        )
    return collection


def ingest(
    store: Collections,
    clip: LoadedClip,
    detector: torch.nn.Module,
    payload: IngestPayload,
    uploads_of: Callable[[Sequence[IngestItem]], list[Upload]],
    progress: Callable[[int], None],
    settings: Settings,
) -> IngestResult:
    """Embed new images (with their crops) and append them; known bytes are duplicates."""
    collection = require_collection(store, payload.collection_id, settings.clip_model)
    known = store.known_images(payload.collection_id, [item.sha256 for item in payload.images])
    first_of: dict[str, IngestItem] = {}
    for item, image_id in zip(payload.images, known, strict=True):
        if not image_id:
            first_of.setdefault(item.sha256, item)  # the same bytes twice: the first is added
    fresh = list(first_of.values())
    duplicates = len(payload.images) - len(fresh)
    # The API refused a request past the tenant's quota; here concurrent ingests meet it too.
    room = store.room(store.owner(payload.collection_id), settings.max_images_per_tenant)
    over_quota = {item.sha256: _over_quota(settings) for item in fresh[room:]}
    fresh = fresh[:room]
    fresh_ids = {id(item) for item in fresh}
    crops = CropSettings(
        settings.crops_per_image,
        settings.crop_min_score,
        collection.crop_background,
        settings.crop_context,
    )
    prepared = prepare_images(
        clip,
        detector,
        uploads_of(fresh),
        crops=crops,
        batch_size=settings.batch_size,
        max_pixels=settings.max_image_pixels,
        max_batch_pixels=settings.max_batch_pixels,
        on_progress=lambda done: progress(duplicates + done),
    )
    ok = [
        (item, p) for item, p in zip(fresh, prepared, strict=True) if isinstance(p, PreparedImage)
    ]
    try:
        stored_ids = (
            store.append(
                payload.collection_id,
                [_record(item, p) for item, p in ok],
                _stack([p.embedding[None] for _, p in ok]),
                _stack([p.crop_embeddings for _, p in ok]),
                [len(p.regions) for _, p in ok],
                settings.max_images_per_tenant,
            )
            if ok
            else {}
        )
    except LookupError:
        raise NotFound(
            f"collection {payload.collection_id} was deleted during the ingest"
        ) from None
    # Concurrent ingests of the same tenant may have taken the room counted above.
    over_quota |= {
        item.sha256: _over_quota(settings) for item, _ in ok if item.sha256 not in stored_ids
    }
    stored = {
        item.sha256: (stored_ids[item.sha256], len(p.regions))
        for item, p in ok
        if item.sha256 in stored_ids
    }
    failures = {
        item.sha256: p for item, p in zip(fresh, prepared, strict=True) if isinstance(p, Problem)
    }
    images = []
    for item, image_id in zip(payload.images, known, strict=True):
        entry = IngestedImage(filename=item.filename, sha256=item.sha256, status=IngestStatus.added)
        if item.sha256 in over_quota:
            entry.status, entry.error = IngestStatus.failed, over_quota[item.sha256]
        elif id(item) not in fresh_ids:  # stored before, or earlier in this same upload
            entry.status = IngestStatus.duplicate
            entry.image_id = image_id or stored.get(item.sha256, (None, 0))[0]
        elif item.sha256 in failures:
            entry.status, entry.error = IngestStatus.failed, failures[item.sha256]
        else:
            entry.image_id, entry.regions = stored[item.sha256]
        images.append(entry)
    return IngestResult(
        collection_id=payload.collection_id,
        added=sum(1 for i in images if i.status == IngestStatus.added),
        duplicates=sum(1 for i in images if i.status == IngestStatus.duplicate),
        failed=sum(1 for i in images if i.status == IngestStatus.failed),
        images=images,
    )


def _over_quota(settings: Settings) -> Problem:
    return QuotaExceeded(
        f"the API key's {settings.max_images_per_tenant} images are stored "
        "(CLIPQ_MAX_IMAGES_PER_TENANT); delete a collection first"
    ).to_problem()


def _record(item: IngestItem, prepared: PreparedImage) -> dict:
    return {
        "id": item.sha256[:24],
        "sha256": item.sha256,
        "filename": item.filename,
        "labels": item.labels,
        "metadata": item.metadata,
        "width": prepared.width,
        "height": prepared.height,
        "regions": [region.model_dump() for region in prepared.regions],
        "thumbnail": prepared.thumbnail,
    }


def _stack(parts: list[torch.Tensor]) -> np.ndarray:
    parts = [p for p in parts if p.numel()]
    return torch.cat(parts).numpy() if parts else np.zeros((0, 0), dtype=np.float32)


def embed_query_image(
    clip: LoadedClip,
    uploads: list[Upload],
    settings: Settings,
    cache: EmbeddingStore | None = None,
) -> torch.Tensor:
    """The unit embedding of an uploaded query image, or the problem that stops the search."""
    [embedded] = embed_uploads(
        clip,
        uploads,
        batch_size=1,
        max_pixels=settings.max_image_pixels,
        max_batch_pixels=settings.max_batch_pixels,
        cache=cache,
    )
    if isinstance(embedded, Problem):
        raise RelayedProblem(embedded)
    return embedded


QUERY_CHUNK = 64


def evaluate(
    store: Collections,
    indexes: CollectionIndexes,
    clip: LoadedClip,
    payload: EvaluatePayload,
    progress: Callable[[int], None],
    settings: Settings,
) -> EvaluateResult:
    """Recall@K and MRR of every query, without and with crop reranking."""
    require_collection(store, payload.collection_id, settings.clip_model)
    index = indexes.get(payload.collection_id)
    row_labels = store.image_labels(payload.collection_id, index.image_ids)
    # A deleted image's rows stay in the index until it is rebuilt: ranked past, never
    # counted (not a distractor, not one of the images).
    deleted = store.deleted(payload.collection_id)
    gone = {row for row, image_id in enumerate(index.image_ids) if image_id in deleted}
    row_labels = [[] if row in gone else labels for row, labels in enumerate(row_labels)]
    outcomes: dict[RerankMode, list] = {mode: [] for mode in RerankMode}
    for start in range(0, len(payload.queries), QUERY_CHUNK):
        chunk = payload.queries[start : start + QUERY_CHUNK]
        embeddings = embed_texts(clip, [q.query for q in chunk])
        for mode in RerankMode:
            ranked = retrieval.rankings(
                index, embeddings, mode, index.size, payload.fusion, payload.crop_weight
            )
            ranked = [[row for row in ranking if row not in gone] for ranking in ranked]
            outcomes[mode] += retrieval.evaluate_rankings(
                ranked, row_labels, [q.relevant_labels for q in chunk], payload.ks
            )
        progress(start + len(chunk))
    modes = {
        mode: ModeMetrics(
            recall_at={str(k): mean([o.recall_at[str(k)] for o in found]) for k in payload.ks},
            mrr=mean([o.reciprocal_rank for o in found]),
        )
        for mode, found in outcomes.items()
    }
    queries = [
        QueryEvaluation(
            query=q.query,
            relevant_labels=q.relevant_labels,
            relevant_count=sum(1 for labels in row_labels if set(labels) & set(q.relevant_labels)),
            none=QueryMetrics(**vars(plain)),
            crops=QueryMetrics(**vars(reranked)),
        )
        for q, plain, reranked in zip(
            payload.queries, outcomes[RerankMode.none], outcomes[RerankMode.crops], strict=True
        )
    ]
    return EvaluateResult(
        collection_id=payload.collection_id,
        ks=payload.ks,
        images=index.size - len(gone),
        modes=modes,
        queries=queries,
    )

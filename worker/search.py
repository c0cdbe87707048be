"""Searching a collection (by text, by one of its images, by an uploaded image), whole or
in shards.

A search is computed as parts (:func:`search_part`: one per shard, or one for a whole
collection) and answered from them (:func:`answer`): the best hits of all parts, and the
"no match" decision. A calibrated threshold merges exactly across shards: each part
brings every null prompt's best score in its rows, and a collection's best is the maximum
of its shards'. Sharded, every shard's worker runs its part as it comes
(:func:`run_shard`); the part that completes the set answers, so no task waits for another.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import asdict, dataclass

import torch

from clipcore import retrieval
from clipcore.classify import cached_classifier
from clipcore.clip_model import LoadedClip
from clipcore.encode import EmbeddingCache
from clipcore.errors import ClipqError
from clipcore.problem import Problem
from clipcore.retrieval import CollectionIndex
from clipcore.search_decision import MatchDecision, null_prompts, null_scores
from clipq.contracts.collections import ImageRef, SearchHit, SearchPayload, SearchResult
from clipq.contracts.jobs import JobStatus
from clipq.errors import NotFound, RelayedProblem, internal_error
from clipq.settings import Settings
from clipq.store.collections import Collections
from clipq.store.jobs import WorkerStore
from clipq.store.shards import ShardView
from worker.collections import CollectionIndexes, require_collection

log = logging.getLogger(__name__)


@dataclass
class PartHit:
    image_id: str
    score: float
    image_score: float
    crop_score: float | None
    region: int | None  # which of the image's regions the crop score is from


@dataclass
class SearchPart:
    hits: list[PartHit]
    nulls: list[float] | None  # each null prompt's best score here (a calibrated search)
    approximate: bool
    images: int  # rows searched

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> SearchPart:
        data = json.loads(text)
        return cls([PartHit(**hit) for hit in data.pop("hits")], **data)


def search(
    store: Collections,
    indexes: CollectionIndexes,
    clip: LoadedClip,
    text_cache: EmbeddingCache,
    payload: SearchPayload,
    settings: Settings,
    embed_upload: Callable[[ImageRef], torch.Tensor],
) -> SearchResult:
    """A whole collection, searched here."""
    part = search_part(store, indexes, clip, text_cache, payload, settings, embed_upload)
    return answer(store, payload, [part])


def search_part(
    store: Collections | ShardView,
    indexes: CollectionIndexes,
    clip: LoadedClip,
    text_cache: EmbeddingCache,
    payload: SearchPayload,
    settings: Settings,
    embed_upload: Callable[[ImageRef], torch.Tensor],
) -> SearchPart:
    """The best hits among the rows ``indexes`` holds (a shard's, or all)."""
    require_collection(store, payload.collection_id, settings.clip_model)
    index = indexes.get(payload.collection_id)
    query, itself = query_embedding(store, index, clip, text_cache, payload, embed_upload)
    scoring = (payload.rerank, payload.fusion, payload.crop_weight)
    deleted = store.deleted(payload.collection_id)  # their rows stay: rank past them
    ranked = retrieval.search(index, query, payload.top_k + len(deleted), *scoring, exclude=itself)
    ranked = [hit for hit in ranked if index.image_ids[hit.row] not in deleted][: payload.top_k]
    nulls = None
    if payload.min_score is None and payload.query is not None and index.size:
        prompts = cached_classifier(text_cache, clip, list(null_prompts()), ["{}"])
        nulls = retrieval.null_best(index, prompts, *scoring).tolist()
    hits = [
        PartHit(
            index.image_ids[hit.row],
            hit.score,
            hit.image_score,
            hit.crop_score,
            None if hit.crop_row is None else index.region_index(hit.crop_row),
        )
        for hit in ranked
    ]
    return SearchPart(hits, nulls, index.approximate, index.size)


def query_embedding(
    store: Collections | ShardView,
    index: CollectionIndex,
    clip: LoadedClip,
    text_cache: EmbeddingCache,
    payload: SearchPayload,
    embed_upload: Callable[[ImageRef], torch.Tensor],
) -> tuple[torch.Tensor, int | None]:
    """The query as a unit embedding, and the row it is here (left out of the hits)."""
    if payload.query is not None:
        return cached_classifier(text_cache, clip, [payload.query], ["{}"])[0], None
    if payload.image is not None:
        return embed_upload(payload.image), None
    image_id = payload.image_id or ""
    row = index.row_of(image_id)
    if row is not None:
        return index.vector(row), row
    vector = store.vector_of(payload.collection_id, image_id)  # another shard's image
    if vector is None:
        raise NotFound(f"no image {image_id!r} in collection {payload.collection_id!r}")
    return torch.from_numpy(vector), None


def answer(
    store: Collections | ShardView, payload: SearchPayload, parts: list[SearchPart]
) -> SearchResult:
    """The result from every part: the best ``top_k`` hits and whether they are a match."""
    ranked = sorted((hit for part in parts for hit in part.hits), key=lambda hit: -hit.score)
    ranked = ranked[: payload.top_k]
    best = ranked[0].score if ranked else None
    threshold: float | None
    if payload.min_score is not None:
        threshold, decision = payload.min_score, "min_score"
    elif payload.query is None:  # the null prompts are text: they say nothing of image scores
        threshold, decision = None, "none"
    elif best is None:  # an empty collection: nothing to match, nothing to calibrate on
        threshold, decision = 1.0, "calibrated"
    else:
        nulls = torch.tensor([part.nulls for part in parts if part.nulls]).max(dim=0).values
        threshold, decision = MatchDecision().threshold(null_scores(nulls)), "calibrated"
    result = SearchResult(
        collection_id=payload.collection_id,
        query=payload.query,
        image_id=payload.image_id,
        image=payload.image.filename if payload.image else None,
        rerank=payload.rerank,
        fusion=payload.fusion,
        min_score=None if threshold is None else round(threshold, 4),
        decision=decision,
        no_match=best is None or (threshold is not None and best < threshold),
        approximate=any(part.approximate for part in parts),
        best_score=best,
        hits=[],
    )
    if result.no_match:
        return result
    found = store.images(payload.collection_id, [hit.image_id for hit in ranked])
    if None in found and store.get(payload.collection_id) is None:
        raise NotFound(f"collection {payload.collection_id} was deleted during the search")
    for hit, record in zip(ranked, found, strict=True):
        if record is None:  # deleted since it was ranked
            continue
        box = None if hit.region is None else record.regions[hit.region].box
        result.hits.append(
            SearchHit(
                image_id=record.id,
                filename=record.filename,
                labels=record.labels,
                metadata=record.metadata,
                score=hit.score,
                image_score=hit.image_score,
                crop_score=hit.crop_score,
                crop_box=box,
                width=record.width,
                height=record.height,
                thumbnail_url=record.thumbnail_url,
            )
        )
    return result


def run_shard(
    store: WorkerStore,
    job_id: str,
    shard: int,
    shards: int,
    compute: Callable[[SearchPayload], SearchPart],
    finish: Callable[[], JobStatus | None],
) -> JobStatus | None:
    """This shard's part of a queued search; the shard that completes the set finishes the
    job (``finish``: the job's lifecycle, answering from the stored parts)."""
    raw = store.payload(job_id)
    if raw is None:
        log.info("search %s is gone; shard %s skipped", job_id, shard)
        return None
    try:
        part = compute(SearchPayload.model_validate_json(raw)).to_json()
    except ClipqError as exc:  # the job fails with it, once every shard has spoken
        part = json.dumps({"error": exc.to_problem().model_dump(mode="json")})
    except Exception:  # a bug: the job still ends (failed), not queued for ever
        log.exception("shard %s of search %s failed", shard, job_id)
        part = json.dumps({"error": internal_error().model_dump(mode="json")})
    if store.add_part(job_id, shard, part) < shards:
        return None
    return finish()


def answer_parts(store: Collections, payload: SearchPayload, parts: list[str]) -> SearchResult:
    """A sharded search's result from its stored parts (the first problem, if any)."""
    for text in parts:
        error = json.loads(text).get("error")
        if error:
            raise RelayedProblem(Problem.model_validate(error))
    return answer(store, payload, [SearchPart.from_json(text) for text in parts])

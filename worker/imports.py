"""Bulk import of precomputed embeddings into a collection: one part per job."""

from __future__ import annotations

import gc
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager

from clipcore.embedding_files import read_embeddings, read_metadata
from clipcore.errors import InvalidInput
from clipq.contracts.collections import ImageRef, ImportPayload, ImportResult
from clipq.errors import NotFound
from clipq.settings import Settings
from clipq.store.collections import Collections
from worker.collections import require_collection


def import_part(
    store: Collections,
    payload: ImportPayload,
    blobs_of: Callable[[Sequence[ImageRef]], list[bytes]],
    model_dim: int,
    progress: Callable[[int], None],
    settings: Settings,
) -> ImportResult:
    """Check the part's embeddings and metadata, then append all its rows or none.

    The index is not touched: extending it part by part would halve the import rate and
    retrain it at every fourfold growth; the ``clipq.index`` task builds it once the import
    has gone quiet (:func:`worker.tasks.index`)."""
    require_collection(store, payload.collection_id, settings.clip_model)
    counts = store.counts(payload.collection_id)
    dim = (counts[3] if counts else 0) or model_dim
    if payload.dim != dim:  # the API checked against what it knew; this is the model itself
        raise InvalidInput.for_field(
            "embeddings", f"holds {payload.dim}-d embeddings; the collection's model makes {dim}-d"
        )
    refs = [payload.embeddings] + ([payload.metadata] if payload.metadata else [])
    data = blobs_of(refs)
    embeddings = read_embeddings(data[0], dim)
    with _collector_paused():
        rows = read_metadata(
            data[1] if payload.metadata else b"",
            payload.metadata.filename if payload.metadata else "",
            len(embeddings),
            payload.part,
        )
        try:
            image_count, before = store.import_rows(
                payload.collection_id,
                payload.part,
                rows,
                embeddings,
                settings.max_images_per_tenant,
            )
        except LookupError:
            raise NotFound(
                f"collection {payload.collection_id} was deleted during the import"
            ) from None
    progress(len(rows))
    return ImportResult(
        collection_id=payload.collection_id,
        part=payload.part,
        imported=0 if before else len(rows),
        already_imported=before,
        image_count=image_count,
    )


@contextmanager
def _collector_paused() -> Iterator[None]:
    """No garbage collection while a part's rows are made and stored: each pass would walk
    every object the worker holds (its indexes' ids among them), over and over."""
    gc.disable()
    try:
        yield
    finally:
        gc.enable()

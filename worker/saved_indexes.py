"""Approximate indexes saved on a volume (``CLIPQ_INDEX_DIR``), memory-mapped by the workers.

A worker that trains a collection's FAISS index writes it here; a worker that meets the
collection later (another process of the host, or this one after a restart) maps the
file instead of reading every row from Redis and training again, and appends only the
rows added since. Mapped pages are shared by every process of the host.

Layout, per collection: ``{dir}/{collection_id}/latest.json`` names the files of the
images' and the crops' index and how many rows each holds; each file is written under a
new name and ``latest.json`` is replaced last, so a reader sees a whole snapshot or the one
before. A save writes the parts trained here and keeps naming the mapped ones; files no
snapshot names are removed. Redis stays the record: a lost folder only costs a retrain.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import uuid
from pathlib import Path

import numpy as np
import torch

from clipcore.retrieval import CollectionIndex
from clipcore.vector_index import ApproximateIndex, IndexPolicy, RowSource
from clipq.store.collections import Collections
from clipq.store.shards import ShardView

log = logging.getLogger(__name__)
LATEST = "latest.json"


def save(folder: Path, collection_id: str, index: CollectionIndex) -> None:
    """Write the parts of ``index`` trained here, then the snapshot that names them all."""
    home = folder / collection_id
    previous = _latest(home) or {}
    snapshot: dict = {}
    for part in ("images", "crops"):
        approximate: ApproximateIndex | None = getattr(index, f"approximate_{part}")
        if approximate is None or approximate.flat:
            snapshot[part] = None
        elif approximate.mapped:  # loaded from here: the file already holds its base
            snapshot[part] = previous.get(part)
        else:
            name = f"{part}-{approximate.size}-{uuid.uuid4().hex[:8]}.faiss"
            approximate.save(home / name)
            snapshot[part] = {
                "file": name,
                "rows": approximate.size,
                "trained_rows": approximate.trained_rows,
            }
    partial = home / f".{LATEST}.{os.getpid()}"
    partial.write_text(json.dumps(snapshot))
    os.replace(partial, home / LATEST)
    named = {p["file"] for p in snapshot.values() if p}
    for stale in home.glob("*.faiss"):
        if stale.name not in named:
            stale.unlink(missing_ok=True)
    index.built = False
    log.info("saved the index of collection %s: %s", collection_id, snapshot)


def load(
    folder: Path,
    collection_id: str,
    store: Collections | ShardView,
    policy: IndexPolicy,
    images_now: int,
    crops_now: int,
    sources: tuple[RowSource | None, RowSource | None] = (None, None),
) -> CollectionIndex | None:
    """The saved index of a collection, mapped, or None (nothing saved, or unusable).

    ``sources`` (images, crops): where an index saved without fp16 copies re-scores from
    (the collection's files)."""
    home = folder / collection_id
    snapshot = _latest(home)
    if not snapshot or not snapshot.get("images"):
        return None
    images_part, crops_part = snapshot["images"], snapshot.get("crops")
    rows, crop_rows = images_part["rows"], crops_part["rows"] if crops_part else 0
    if rows > images_now or crop_rows > crops_now:  # a deleted collection's id reused: never
        return None
    try:
        images = _load(home, images_part, policy, sources[0])
        crops = _load(home, crops_part, policy, sources[1]) if crops_part else None
        ids = store.image_ids(collection_id, 0, rows)
        owners = store.read_rows(collection_id, "owner", 0, crop_rows, 1)
    except (OSError, RuntimeError, LookupError) as exc:  # half-written, removed, or corrupt
        log.warning("cannot use the saved index of collection %s: %s", collection_id, exc)
        return None
    owner_rows = torch.from_numpy(owners[:, 0].astype(np.int64))
    log.info("mapped the saved index of collection %s: %s", collection_id, snapshot)
    return CollectionIndex.from_saved(images, crops, ids, owner_rows, policy)


def _load(
    home: Path, part: dict, policy: IndexPolicy, source: RowSource | None
) -> ApproximateIndex:
    trained = part.get("trained_rows")
    return ApproximateIndex.load(home / part["file"], policy, trained, source)


def remove(folder: Path, collection_id: str) -> None:
    shutil.rmtree(folder / collection_id, ignore_errors=True)


def _latest(home: Path) -> dict | None:
    try:
        return json.loads((home / LATEST).read_text())
    except (OSError, ValueError):
        return None

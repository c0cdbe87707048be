"""Reading the CIFAR-10 "python version" batches from a local folder.

The folder is the one the dataset's archive unpacks to: ``data_batch_1`` …
``data_batch_5``, ``test_batch`` and ``batches.meta``. The files are Python
pickles, the format the dataset is published in: read only copies you trust. Their
arrays are numpy's, so reading them needs numpy (the worker extra; :mod:`clipq._optional`).
"""

from __future__ import annotations

import io
import pickle
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from PIL import Image

from clipq._optional import numpy

if TYPE_CHECKING:
    import numpy as np

SPLITS = {"train": [f"data_batch_{i}" for i in range(1, 6)], "test": ["test_batch"]}


def label_names(folder: Path) -> list[str]:
    with (folder / "batches.meta").open("rb") as f:
        meta = pickle.load(f, encoding="bytes")
    return [name.decode() for name in meta[b"label_names"]]


def read_cifar10(
    folder: Path, split: str = "test", limit: int | None = None
) -> Iterator[tuple[str, bytes, str]]:
    """Yield (filename, PNG bytes, label name) for each image of ``split`` (train or test)."""
    names = label_names(folder)
    count = 0
    for batch_name in SPLITS[split]:
        path = folder / batch_name
        if not path.exists():
            raise FileNotFoundError(f"{path} is missing: is {folder} a CIFAR-10 python folder?")
        with path.open("rb") as f:
            batch = pickle.load(f, encoding="bytes")
        pixels = numpy().asarray(batch[b"data"], dtype="uint8").reshape(-1, 3, 32, 32)
        filenames = [name.decode() for name in batch[b"filenames"]]
        for array, filename, label in zip(pixels, filenames, batch[b"labels"], strict=True):
            if limit is not None and count >= limit:
                return
            buffer = io.BytesIO()
            Image.fromarray(array.transpose(1, 2, 0)).save(buffer, format="PNG")
            yield filename, buffer.getvalue(), names[label]
            count += 1


def write_cifar10_like(
    folder: Path, images: np.ndarray, labels: list[int], names: list[str]
) -> None:
    """Write a small folder in the CIFAR-10 format (for tests and demos)."""
    folder.mkdir(parents=True, exist_ok=True)
    data = images.transpose(0, 3, 1, 2).reshape(len(images), -1).astype("uint8")
    batch = {
        b"data": data,
        b"labels": labels,
        b"filenames": [f"img_{i:05d}.png".encode() for i in range(len(images))],
        b"batch_label": b"testing batch 1 of 1",
    }
    with (folder / "test_batch").open("wb") as f:
        pickle.dump(batch, f)
    with (folder / "batches.meta").open("wb") as f:
        pickle.dump({b"label_names": [n.encode() for n in names], b"num_vis": 3072}, f)

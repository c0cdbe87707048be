"""Collections' embedding rows in append-only files on a volume (``CLIPQ_VECTOR_DIR``).

At ten million images, fp16 vectors are 10 GB: in Redis they would be its largest cost,
held in RAM; here they cost disk, and the workers of a host memory-map them (shared pages
the kernel can evict), which is also where an approximate index re-scores its candidates
from (:class:`clipcore.vector_index.ApproximateIndex` with a source). Redis stays the record:
a collection's counts there say how many rows are committed, and nothing past them is read.

Layout: ``{dir}/{collection_id}/{kind}-{segment:05d}.bin``, ``SEGMENT_ROWS`` rows a file,
``kind`` as in :mod:`clipq.store.collections` (``emb``, ``crop``, ``owner``). A write first
cuts a file back to its first row (what a writer that died before committing left there
goes), appends, and syncs, all before the Redis transaction that commits the rows.
"""

from __future__ import annotations

import mmap
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from clipq._optional import numpy
from clipq.errors import ServiceUnavailable

if TYPE_CHECKING:
    import numpy as np

SEGMENT_ROWS = 1 << 20  # 1 GB of 512-d fp16 a file: ten files for ten million images


class VectorFiles:
    def __init__(self, root: Path) -> None:
        self.root = root
        self._maps: dict[Path, tuple[mmap.mmap, np.ndarray]] = {}  # for take(), by file

    def home(self, collection_id: str) -> Path:
        return self.root / collection_id

    def _segments(
        self, collection_id: str, kind: str, start: int, end: int
    ) -> Iterator[tuple[Path, int, int, int]]:
        """(file, first row in it, rows, offset into the caller's range) covering start..end."""
        position = start
        while position < end:
            segment, within = divmod(position, SEGMENT_ROWS)
            take = min(SEGMENT_ROWS - within, end - position)
            path = self.home(collection_id) / f"{kind}-{segment:05d}.bin"
            yield path, within, take, position - start
            position += take

    def write(self, collection_id: str, kind: str, start: int, rows: np.ndarray) -> None:
        """Rows ``start``.. of ``kind``: whatever is at or past ``start`` is replaced."""
        self.home(collection_id).mkdir(parents=True, exist_ok=True)
        data = numpy().ascontiguousarray(rows)
        row_bytes = data.itemsize * (data.shape[1] if data.ndim > 1 else 1)
        for path, within, take, offset in self._segments(
            collection_id, kind, start, start + len(data)
        ):
            with open(path, "ab") as handle:
                handle.truncate(within * row_bytes)
                handle.write(data[offset : offset + take].tobytes())
                handle.flush()
                os.fsync(handle.fileno())

    def read(
        self, collection_id: str, kind: str, start: int, end: int, width: int, dtype: str
    ) -> np.ndarray:
        """Rows ``start``..``end`` (a copy); a 503 if the files are short (not shared)."""
        np = numpy()
        out = np.empty((end - start, width), dtype)
        row_bytes = out.itemsize * width
        for path, within, take, offset in self._segments(collection_id, kind, start, end):
            try:
                with open(path, "rb") as handle:
                    handle.seek(within * row_bytes)
                    data = handle.read(take * row_bytes)
            except FileNotFoundError:
                data = b""
            if len(data) != take * row_bytes:
                raise ServiceUnavailable(f"{path} holds fewer rows than Redis committed: {_SHARED}")
            out[offset : offset + take] = np.frombuffer(data, dtype).reshape(take, width)
        return out

    def take(
        self, collection_id: str, kind: str, rows: np.ndarray, width: int, dtype: str
    ) -> np.ndarray:
        """The rows at these (sorted) positions, through memory maps of the files.

        Scattered rows of a file larger than the page cache keeps would each wait for a read
        of their own, one after another (1,000 rows of 10 GB, cold: p95 117 ms); asking the
        kernel for all their pages first lets it read them at once (14 ms), for about 1 us a
        row when they are cached already.
        """
        np = numpy()
        out = np.empty((len(rows), width), dtype)
        row_bytes = np.dtype(dtype).itemsize * width
        segments = rows // SEGMENT_ROWS
        for segment in np.unique(segments):
            picked = segments == segment
            path = self.home(collection_id) / f"{kind}-{int(segment):05d}.bin"
            within = rows[picked] - int(segment) * SEGMENT_ROWS
            pages, mapped = self._map(path, int(within.max()) + 1, width, dtype)
            if hasattr(mmap, "MADV_WILLNEED"):
                starts = within * row_bytes // mmap.PAGESIZE * mmap.PAGESIZE
                ends = (within + 1) * row_bytes
                for start, end in zip(starts.tolist(), ends.tolist(), strict=True):
                    pages.madvise(mmap.MADV_WILLNEED, start, end - start)
            out[picked] = mapped[within]
        return out

    def _map(self, path: Path, rows: int, width: int, dtype: str) -> tuple[mmap.mmap, np.ndarray]:
        held = self._maps.get(path)
        if held is None or len(held[1]) < rows:  # the file has grown since it was mapped
            np = numpy()
            row_bytes = np.dtype(dtype).itemsize * width
            size = path.stat().st_size if path.exists() else 0
            if size // row_bytes < rows:
                raise ServiceUnavailable(f"{path} holds fewer rows than Redis committed: {_SHARED}")
            with open(path, "rb") as handle:
                pages = mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ)
            # Without this each page fault reads ahead 128 KB around a single wanted row:
            # 1,000 rows of 10 GB from a cold page cache read 128 MB (p95 358 ms, 96 without).
            if hasattr(mmap, "MADV_RANDOM"):  # Linux, macOS
                pages.madvise(mmap.MADV_RANDOM)
            whole = size // row_bytes
            mapped = np.frombuffer(pages, dtype, count=whole * width).reshape(whole, width)
            held = self._maps[path] = (pages, mapped)
        return held

    def remove(self, collection_id: str) -> None:
        home = self.home(collection_id)
        self._maps = {p: m for p, m in self._maps.items() if p.parent != home}
        shutil.rmtree(home, ignore_errors=True)

    def collection_ids(self) -> list[str]:
        return [p.name for p in self.root.iterdir() if p.is_dir()] if self.root.is_dir() else []


_SHARED = "CLIPQ_VECTOR_DIR must be one folder (volume) shared by every worker and kept"

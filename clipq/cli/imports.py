"""``clipq import``: precomputed embeddings into a collection, in parts, resumable.

Reads a clip-retrieval output folder (``img_emb/*.npy`` + ``metadata/*.parquet``), a folder
of ``.npy`` files with a ``.parquet`` or ``.csv`` beside each, or one ``.npy``; sends each
file in parts of ``--part-rows`` float16 rows (under the service's request limit) named
``{file}:{first}-{end}``. The parts the collection has already are skipped, so running the
command again after an interruption finishes the import. Needs numpy and pyarrow
(``pip install 'clipq[bulk]'``).
"""

from __future__ import annotations

import argparse
import csv
import io
from collections import deque
from collections.abc import Collection, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tqdm import tqdm

from clipq._optional import numpy
from clipq.cli.collections import add_server_arguments, client
from clipq.settings import get_settings

if TYPE_CHECKING:
    from clipcore.embedding_files import ImportFile

# A part's float16 rows: 49,152 at 512 dimensions, within the 64 MB request limit at any
# width. Each part is a job, and a job's dispatch costs about 0.1 s: 1 M embeddings were
# imported at 44 k/s in these parts, 39 k/s in 32,768-row ones (bench/collections_at_scale).
PART_BYTES = 48 << 20
# Uploads go one after another while the worker imports those before: with two parts in
# the service the uploads waited on the worker (51 k/s at 1 M), with three they do not (61 k/s).
IN_FLIGHT = 3


@dataclass(frozen=True)
class Part:
    name: str
    rows: int
    embeddings: bytes
    metadata: tuple[str, bytes] | None


def add_parser(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "import", help="import precomputed embeddings (clip-retrieval's img_emb + metadata)"
    )
    add_server_arguments(parser, get_settings().server)
    parser.add_argument("--collection", "-c", required=True, help="collection name or id")
    parser.add_argument("--quiet", "-q", action="store_true", help="no progress bar")
    parser.add_argument("path", type=Path, help="a clip-retrieval output folder, or .npy file(s)")
    parser.add_argument("--metadata", type=Path, help="for a single .npy: its .parquet or .csv")
    parser.add_argument("--model", help="the model that made them (checked by the service)")
    parser.add_argument(
        "--part-rows",
        type=int,
        help="rows per request (default: 48 MB of float16; a resumed file keeps its parts')",
    )
    parser.add_argument(
        "--in-flight",
        type=int,
        default=IN_FLIGHT,
        help="parts in the service at once (uploads continue while the worker imports)",
    )
    parser.set_defaults(run=run_import)


def run_import(args: argparse.Namespace) -> int:
    from clipcore.embedding_files import import_files

    files = import_files(args.path, args.metadata)
    if not files:
        print(f"error: no .npy files in {args.path}")
        return 2
    service = client(args)
    collection = service.collection(args.collection, create=True)
    done = service.imported_parts(collection.id)
    total = sum(_rows(f.embeddings) for f in files)
    imported = skipped = 0
    with tqdm(total=total, unit="emb", unit_scale=True, disable=args.quiet, desc="import") as bar:
        # The next part uploads while the service imports the one before, and is sent only
        # once that one is accepted: the parts land in the files' order.
        sent: deque[tuple[Part, Any]] = deque()

        def finish_oldest() -> None:
            nonlocal imported, skipped
            part, pending = sent.popleft()
            result = service.finish_part(pending)
            imported += result.imported
            skipped += part.rows if result.already_imported else 0
            bar.update(part.rows)

        for file in files:
            rows = args.part_rows or part_rows_of(file.embeddings, done)
            for part in parts_of(file, rows, skip=done):
                if not part.embeddings:
                    skipped += part.rows
                    bar.update(part.rows)
                    continue
                if len(sent) >= max(1, args.in_flight):
                    finish_oldest()
                sent.append((part, service.send_part(collection.id, part, args.model)))
        while sent:
            finish_oldest()
    print(f"{collection.name}: {imported} embeddings imported, {skipped} there already")
    return 0


def parts_of(file: ImportFile, part_rows: int, skip: Collection[str] = ()) -> Iterator[Part]:
    """The file's parts, as float16 ``.npy`` bytes with their metadata rows; parts named in
    ``skip`` come without bytes (nothing is read for them)."""
    np = numpy()
    vectors = np.load(file.embeddings, mmap_mode="r")
    metadata = _MetadataSlicer(file.metadata) if file.metadata else None
    for start in range(0, len(vectors), part_rows):
        end = min(start + part_rows, len(vectors))
        name = f"{file.embeddings.name}:{start}-{end}"
        if name in skip:
            yield Part(name, end - start, b"", None)
            continue
        buffer = io.BytesIO()
        np.save(buffer, np.ascontiguousarray(vectors[start:end], dtype=np.float16))
        rows = metadata.rows(start, end) if metadata else None
        yield Part(name, end - start, buffer.getvalue(), rows)


def part_rows_of(npy: Path, done: Collection[str]) -> int:
    """Rows per part for this file: as many as its parts imported before held (a resumed
    import must name the same ranges), else ``PART_BYTES`` of float16 rows."""
    for name in sorted(done):
        file, _, rows = name.rpartition(":")
        first, _, end = rows.partition("-")
        if file == npy.name and first == "0" and end.isdigit():
            return int(end)  # the first part is a whole one unless it was the file's last
    width = int(numpy().load(npy, mmap_mode="r").shape[1])
    return max(1, PART_BYTES // (2 * width))


def _rows(npy: Path) -> int:
    return int(numpy().load(npy, mmap_mode="r").shape[0])


class _MetadataSlicer:
    """Rows ``start``..``end`` of a Parquet or CSV file, as a file of the same kind."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.parquet = path.suffix == ".parquet"
        if self.parquet:
            import pyarrow.parquet as pq

            self.table: Any = pq.read_table(path)
        else:
            with path.open(newline="", encoding="utf-8-sig") as handle:
                reader = csv.reader(handle)
                self.header = next(reader, [])
                self.lines = list(reader)

    def rows(self, start: int, end: int) -> tuple[str, bytes]:
        buffer = io.BytesIO()
        if self.parquet:
            import pyarrow.parquet as pq

            pq.write_table(self.table.slice(start, end - start), buffer)
        else:
            text = io.StringIO(newline="")
            csv.writer(text).writerows([self.header, *self.lines[start:end]])
            buffer.write(text.getvalue().encode())
        return self.path.name, buffer.getvalue()

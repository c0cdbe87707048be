"""Reading webdataset tar shards as img2dataset writes them, from any binary stream.

A sample is the run of consecutive members that share a key (the member's path up to the
first dot of its file name): ``000012.jpg`` + ``000012.txt`` (the caption) + ``000012.json``
(the metadata). The tar is read as a stream (``r|*``): nothing is seeked, so a shard can be
an HTTP response or a bucket object read once from its start.
"""

from __future__ import annotations

import json
import posixpath
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import IO, Any

IMAGE_EXTENSIONS = ("jpg", "jpeg", "png", "webp", "bmp", "gif", "tif", "tiff")
MAX_SIDECAR_BYTES = 64 * 1024  # a caption or a metadata record; img2dataset's are < 4 KB


@dataclass
class Sample:
    """One sample: its key, the image member's name and bytes (None if it had none, or one
    too large: ``problem`` says which), its caption and metadata."""

    key: str
    name: str = ""
    image: bytes | None = None
    caption: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    problem: str | None = None


def split_key(member: str) -> tuple[str, str]:
    """(key, extension) of a member: ``a/b/0001.seg.jpg`` → (``a/b/0001``, ``seg.jpg``)."""
    folder, base = posixpath.split(member)
    stem, _, extension = base.partition(".")
    return posixpath.join(folder, stem), extension.lower()


def read_samples(stream: IO[bytes], max_image_bytes: int) -> Iterator[Sample]:
    """The samples of a tar stream, in order. Members that are not files, and hidden ones
    (``._x``, macOS' resource forks), are skipped; a sample without an image is given with
    its problem, as is one whose image is over ``max_image_bytes`` (not read)."""
    current: Sample | None = None
    with tarfile.open(fileobj=stream, mode="r|*") as archive:
        for member in archive:
            if not member.isfile() or posixpath.basename(member.name).startswith("."):
                continue
            key, extension = split_key(member.name)
            if current is not None and key != current.key:
                yield _complete(current)
                current = None
            if current is None:
                current = Sample(key)
            _take(archive, member, extension, current, max_image_bytes)
    if current is not None:
        yield _complete(current)


def _take(
    archive: tarfile.TarFile,
    member: tarfile.TarInfo,
    extension: str,
    sample: Sample,
    max_image_bytes: int,
) -> None:
    last = extension.rpartition(".")[2]
    if last in IMAGE_EXTENSIONS and sample.image is None and sample.problem is None:
        sample.name = member.name
        if member.size > max_image_bytes:
            sample.problem = f"{member.size} bytes, more than {max_image_bytes}"
            return
        sample.image = _read(archive, member)
    elif last in ("txt", "json") and member.size <= MAX_SIDECAR_BYTES:
        sidecar(sample, last, _read(archive, member))


def sidecar(sample: Sample, extension: str, data: bytes) -> None:
    """Take a caption (``txt``) or metadata (``json``, an object) into the sample; an
    unreadable one is left out, as img2dataset's readers do."""
    text = data.decode("utf-8", errors="replace")
    if extension == "txt":
        sample.caption = text.strip()
        return
    try:
        value = json.loads(text)
    except ValueError:
        return
    if isinstance(value, dict):
        sample.metadata = value


def _read(archive: tarfile.TarFile, member: tarfile.TarInfo) -> bytes:
    handle = archive.extractfile(member)
    return handle.read() if handle is not None else b""


def _complete(sample: Sample) -> Sample:
    if sample.image is None and sample.problem is None:
        sample.problem = "no image in the sample"
        sample.name = sample.name or sample.key
    return sample

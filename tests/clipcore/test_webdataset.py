"""Reading webdataset shards as img2dataset writes them, from a stream that cannot seek."""

from __future__ import annotations

import io
import json
import tarfile

from clipcore.webdataset import read_samples, split_key


class OneWay(io.RawIOBase):
    """A stream that can only be read forward, like an HTTP response."""

    def __init__(self, data: bytes) -> None:
        self.data = io.BytesIO(data)

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:  # type: ignore[override]
        chunk = self.data.read(len(buffer))
        buffer[: len(chunk)] = chunk
        return len(chunk)


def shard(members: list[tuple[str, bytes]]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def test_samples_group_members_by_key() -> None:
    data = shard(
        [
            ("00/000.jpg", b"jpeg0"),
            ("00/000.txt", b" a cat \n"),
            ("00/000.json", json.dumps({"url": "u0", "labels": ["cat"]}).encode()),
            ("00/._001.jpg", b"resource fork"),
            ("00/001.json", b"{not json"),
            ("00/001.png", b"png1"),
            ("00/002.txt", b"caption without an image"),
            ("00/003.jpg", b"x" * 100),
        ]
    )
    samples = list(read_samples(OneWay(data), max_image_bytes=50))
    assert [s.key for s in samples] == ["00/000", "00/001", "00/002", "00/003"]
    first, second, third, fourth = samples
    assert (first.name, first.image, first.caption) == ("00/000.jpg", b"jpeg0", "a cat")
    assert first.metadata == {"url": "u0", "labels": ["cat"]}
    assert (second.image, second.metadata, second.problem) == (b"png1", {}, None)
    assert third.image is None and third.problem == "no image in the sample"
    assert fourth.image is None and "more than 50" in (fourth.problem or "")


def test_keys_are_up_to_the_first_dot() -> None:
    assert split_key("a/b/0001.seg.JPG") == ("a/b/0001", "seg.jpg")
    assert split_key("0001.jpg") == ("0001", "jpg")

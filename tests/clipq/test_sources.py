"""References an import may read: brace expansion and the deployment's policy, without I/O."""

from __future__ import annotations

import pytest

from clipcore.errors import InvalidInput
from clipq.settings import Settings
from clipq.sources import checked_reference, expand_braces, local_path


def test_brace_patterns_expand_as_webdataset_writes_them() -> None:
    assert expand_braces("s/{00008..00011}.tar", 10) == [f"s/{n:05d}.tar" for n in range(8, 12)]
    assert expand_braces("{a,b}-{1..2}", 10) == ["a-1", "a-2", "b-1", "b-2"]
    assert expand_braces("x{a,{b,c}}y", 10) == ["xay", "xby", "xcy"]
    assert expand_braces("plain.tar", 10) == ["plain.tar"]
    assert expand_braces("{3..1}", 10) == ["3", "2", "1"]
    with pytest.raises(ValueError, match="more than 10"):
        expand_braces("{0..10}", 10)
    with pytest.raises(ValueError, match="without its"):
        expand_braces("{0..3", 10)
    assert expand_braces("{x}-{1..2}", 10) == ["{x}-1", "{x}-2"]
    with pytest.raises(ValueError, match="more than 10"):
        expand_braces("{0..999999999999999}", 10)
    with pytest.raises(ValueError, match="too many brace groups"):
        expand_braces("{a,b}" * 1000, 10**6)


def test_local_paths_only_under_the_roots() -> None:
    settings = Settings(ingest_roots="/data,/mnt/shards/")
    assert checked_reference("/data/a.tar", "f", settings) == "file:///data/a.tar"
    assert checked_reference("file:///mnt/shards/x/1.tar", "f", settings) == (
        "file:///mnt/shards/x/1.tar"
    )
    for outside in ("/data/../etc/passwd", "/database/a.tar", "file:///etc/passwd"):
        with pytest.raises(InvalidInput, match="outside"):
            checked_reference(outside, "f", settings)
    with pytest.raises(InvalidInput, match="absolute"):
        checked_reference("data/a.tar", "f", settings)
    with pytest.raises(InvalidInput, match="CLIPQ_INGEST_ROOTS is empty"):
        checked_reference("/data/a.tar", "f", Settings(ingest_roots=""))
    with pytest.raises(InvalidInput, match="no host"):
        checked_reference("file://other/data/a.tar", "f", settings)


def test_symlinks_are_followed_where_the_worker_reads(tmp_path) -> None:
    root, outside = tmp_path / "root", tmp_path / "outside"
    root.mkdir()
    outside.mkdir()
    (root / "link").symlink_to(outside)
    settings = Settings(ingest_roots=str(root))
    assert local_path(f"{root}/link/a.tar", "f", settings) == f"{root}/link/a.tar"
    with pytest.raises(InvalidInput, match="outside"):
        local_path(f"{root}/link/a.tar", "f", settings, resolve=True)


def test_remote_schemes_as_configured() -> None:
    settings = Settings()
    assert checked_reference("https://h/a.tar", "f", settings) == "https://h/a.tar"
    with pytest.raises(InvalidInput, match="s3:// is not read"):
        checked_reference("s3://bucket/a.tar", "f", settings)
    assert checked_reference("s3://b/a.tar", "f", Settings(ingest_schemes="s3")) == "s3://b/a.tar"
    with pytest.raises(InvalidInput, match="credentials"):
        checked_reference("https://u:p@h/a.tar", "f", settings)
    with pytest.raises(InvalidInput) as refused:
        checked_reference("http:///a.tar", "source.urls[3]", settings)
    assert refused.value.errors[0].field == "source.urls[3]"
    with pytest.raises(InvalidInput, match="not a valid"):
        checked_reference("http://[::1/a.jpg", "f", settings)

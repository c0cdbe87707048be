"""Imports by reference end to end: real webdataset shards and folders on disk, some served
over a local HTTP server, read by real worker processes; no mock of the reader."""

from __future__ import annotations

import functools
import hashlib
import http.server
import io
import json
import os
import signal
import subprocess
import tarfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.conftest import ROOT, Service, env_on, private_redis, running_service
from tests.e2e.test_cli_collections import CLIPQ
from tests.e2e.test_collections import create, run
from tests.e2e.test_faults import parent_of
from tests.support import distinct_pngs, truncated_png


def add(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    tar.addfile(info, io.BytesIO(data))


def write_shard(path: Path, first: int, images: list[bytes]) -> None:
    """A shard as img2dataset writes it: key.png, key.txt (caption), key.json (metadata)."""
    with tarfile.open(path, "w") as tar:
        for offset, data in enumerate(images):
            key = f"{first + offset:09d}"
            add(tar, f"{key}.png", data)
            add(tar, f"{key}.txt", f"a photo number {first + offset}".encode())
            meta = {"key": key, "url": f"https://example.com/{key}.png", "labels": ["odd"]}
            if (first + offset) % 2 == 0:
                meta["labels"] = ["even"]
            add(tar, f"{key}.json", json.dumps(meta).encode())


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("sources")
    images = distinct_pngs(2000)
    shards = root / "shards"
    shards.mkdir()
    for n in range(3):  # 3 x 6 samples, the last one's image cut short
        batch = images[6 * n : 6 * n + 6]
        write_shard(
            shards / f"{n:05d}.tar", 6 * n, batch if n < 2 else [*batch[:5], truncated_png()]
        )
    write_shard(shards / "big.tar", 100, images[100:700])  # for the killed worker
    folder = root / "folder" / "sub"
    folder.mkdir(parents=True)
    for i in range(5):
        (folder / f"f{i}.png").write_bytes(images[1000 + i])
        (folder / f"f{i}.txt").write_text(f"folder image {i}")
    (root / "folder" / "notes.md").write_text("not an image")
    return root


@pytest.fixture(scope="module")
def http_root(data: Path) -> Iterator[str]:
    """The data folder over HTTP, from a server of this test's own."""
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(data))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


@pytest.fixture(scope="module")
def sources(base_env, data: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    """Two workers that may read ``data`` and the local HTTP server, on a Redis of their own."""
    folder = tmp_path_factory.mktemp("sources-service")
    with private_redis(folder / "redis", appendfsync="no") as server:
        env = env_on(
            base_env,
            server,
            CLIPQ_INGEST_ROOTS=str(data),
            CLIPQ_INGEST_ALLOW_HOSTS="127.0.0.1",
            CLIPQ_JOB_LEASE_SECONDS="3",
        )
        with running_service(env, folder / "logs", workers=2) as service:
            yield service


def start_import(service: Service, collection_id: str, source: dict, **options) -> dict:
    body = {"source": source, **options}
    response = service.http.post(f"/v1/collections/{collection_id}/imports", json=body)
    assert response.status_code == 202, response.text
    assert response.headers["location"] == f"/v1/jobs/{response.json()['id']}"
    return response.json()


def progress(service: Service, collection_id: str, job_id: str) -> dict:
    response = service.http.get(f"/v1/collections/{collection_id}/imports/{job_id}")
    assert response.status_code == 200, response.text
    return response.json()


def all_images(service: Service, collection_id: str) -> list[dict]:
    images: list[dict] = []
    while True:
        page = service.http.get(
            f"/v1/collections/{collection_id}/images",
            params={"offset": len(images), "limit": 500},
        ).json()
        images += page["images"]
        if len(images) >= page["total"]:
            return images


def test_webdataset_shards_are_imported_searchable_and_skipped_when_sent_again(
    sources: Service, data: Path
) -> None:
    collection = create(sources, "from-shards")
    pattern = str(data / "shards" / "{00000..00002}.tar")
    job = start_import(sources, collection["id"], {"kind": "webdataset", "shards": [pattern]})
    final = sources.wait_for(job["id"], timeout=120)
    assert final["status"] == "succeeded", final
    assert final["progress"] == {"done": 3, "total": 3}
    assert final["result"] | {"image_count": 0} == {
        "kind": "source_import",
        "collection_id": collection["id"],
        "shards": 3,
        "shards_skipped": 0,
        "shards_failed": 0,
        "added": 17,
        "duplicates": 0,
        "failed": 1,
        "image_count": 0,
    }
    assert final["result"]["image_count"] == 17
    shown = progress(sources, collection["id"], job["id"])
    assert shown["total_shards"] == 3 and shown["job"]["status"] == "succeeded"
    assert [s["name"] for s in shown["shards"]] == [
        f"file://{data}/shards/{n:05d}.tar" for n in range(3)
    ]
    assert all(s["status"] == "succeeded" and s["done"] == 6 for s in shown["shards"])
    [error] = shown["shards"][2]["result"]["errors"]
    assert error["sample"] == "000000017.png"

    images = {i["filename"]: i for i in all_images(sources, collection["id"])}
    assert len(images) == 17
    first = images["000000000.png"]
    assert first["labels"] == ["even"] and images["000000001.png"]["labels"] == ["odd"]
    assert first["metadata"]["caption"] == "a photo number 0"
    assert first["metadata"]["url"] == "https://example.com/000000000.png"
    assert first["thumbnail_url"] and first["regions"]  # crops by default
    thumbnail = sources.http.get(first["thumbnail_url"])
    assert thumbnail.status_code == 200 and thumbnail.content[:2] == b"\xff\xd8"

    found = run(sources, collection["id"], "search", {"query": "a photo", "min_score": -1})
    assert found["status"] == "succeeded", found
    assert len(found["result"]["hits"]) == 10
    evaluated = run(sources, collection["id"], "evaluate", {})
    assert evaluated["status"] == "succeeded" and evaluated["result"]["images"] == 17

    again = start_import(sources, collection["id"], {"kind": "webdataset", "shards": [pattern]})
    final = sources.wait_for(again["id"], timeout=60)
    assert final["status"] == "succeeded", final
    assert final["result"]["shards_skipped"] == 3 and final["result"]["added"] == 0
    assert final["result"]["image_count"] == 17


def test_no_image_bytes_reach_redis(sources: Service, data: Path) -> None:
    collection = create(sources, "no-bytes")
    before = set(sources.redis.scan_iter("clipq:blob:*"))
    job = start_import(
        sources,
        collection["id"],
        {"kind": "webdataset", "shards": [str(data / "shards" / "00000.tar")]},
        crops=False,
    )
    assert sources.wait_for(job["id"], timeout=60)["status"] == "succeeded"
    assert set(sources.redis.scan_iter("clipq:blob:*")) == before


def test_folders_and_urls_over_http(sources: Service, data: Path, http_root: str) -> None:
    collection = create(sources, "from-files")
    job = start_import(
        sources,
        collection["id"],
        {"kind": "files", "paths": [str(data / "folder")], "files_per_shard": 2},
        labels="caption",
    )
    final = sources.wait_for(job["id"], timeout=60)
    assert final["status"] == "succeeded", final
    assert final["result"]["shards"] == 3 and final["result"]["added"] == 5
    images = {i["filename"]: i for i in all_images(sources, collection["id"])}
    assert images["f3.png"]["labels"] == ["folder image 3"]
    assert images["f3.png"]["metadata"] == {"caption": "folder image 3"}

    other = create(sources, "from-urls")
    urls = [f"{http_root}/folder/sub/f{i}.png" for i in range(5)] + [f"{http_root}/missing.png"]
    job = start_import(sources, other["id"], {"kind": "urls", "urls": urls})
    final = sources.wait_for(job["id"], timeout=60)
    assert final["status"] == "succeeded", final
    assert (final["result"]["added"], final["result"]["failed"]) == (5, 1)
    shard = progress(sources, other["id"], job["id"])["shards"][0]
    assert "missing.png: not found" in shard["result"]["errors"][0]["error"]["detail"]
    ids = {i["sha256"] for i in all_images(sources, other["id"])}
    assert ids == {i["sha256"] for i in images.values()}  # the same files, by either road

    tars = create(sources, "tars-over-http")
    pattern = f"{http_root}/shards/{{00000..00001}}.tar"
    job = start_import(sources, tars["id"], {"kind": "webdataset", "shards": [pattern]})
    final = sources.wait_for(job["id"], timeout=60)
    assert final["status"] == "succeeded", final
    assert final["result"]["added"] == 12


def test_a_missing_shard_fails_alone(sources: Service, data: Path) -> None:
    collection = create(sources, "missing-shard")
    pattern = str(data / "shards" / "{00001,00404}.tar")
    job = start_import(sources, collection["id"], {"kind": "webdataset", "shards": [pattern]})
    final = sources.wait_for(job["id"], timeout=60)
    assert final["status"] == "succeeded", final
    assert final["result"]["shards_failed"] == 1 and final["result"]["added"] == 6
    shards = progress(sources, collection["id"], job["id"])["shards"]
    assert shards[1]["status"] == "failed"
    assert shards[1]["error"]["type"].endswith("/source-unreadable")
    assert "not found" in shards[1]["error"]["detail"]

    alone = create(sources, "only-missing")
    source = {"kind": "webdataset", "shards": [str(data / "shards" / "00404.tar")]}
    final = sources.wait_for(start_import(sources, alone["id"], source)["id"], timeout=60)
    assert final["status"] == "failed" and "not found" in final["error"]["detail"]


@pytest.mark.parametrize(
    ("source", "field", "words"),
    [
        ({"kind": "webdataset", "shards": ["/etc/passwd"]}, "source.shards[0]", "outside"),
        ({"kind": "webdataset", "shards": ["{a,b"]}, "source.shards[0]", "without its"),
        ({"kind": "files", "paths": ["relative/dir"]}, "source.paths[0]", "absolute"),
        ({"kind": "urls", "urls": ["x", "ftp://host/a.jpg"]}, "source.urls[0]", "absolute"),
        ({"kind": "urls", "urls": ["ftp://host/a.jpg"]}, "source.urls[0]", "ftp://"),
        ({"kind": "urls", "urls": ["s3://bucket/a.jpg"]}, "source.urls[0]", "INGEST_SCHEMES"),
        ({"kind": "urls", "urls": ["http://u:p@host/a.jpg"]}, "source.urls[0]", "credentials"),
    ],
)
def test_references_this_service_does_not_read_are_422_naming_the_field(
    sources: Service, source: dict, field: str, words: str
) -> None:
    collection = create(sources)
    response = sources.http.post(
        f"/v1/collections/{collection['id']}/imports", json={"source": source}
    )
    assert response.status_code == 422, response.text
    problem = response.json()
    assert problem["errors"][0]["field"] == field and words in problem["detail"], problem


def test_a_symlink_out_of_the_roots_is_refused_by_the_worker(
    sources: Service, data: Path, tmp_path: Path
) -> None:
    outside = tmp_path / "secret.tar"
    write_shard(outside, 0, distinct_pngs(2))
    link = data / "link.tar"
    link.symlink_to(outside)
    collection = create(sources, "symlink")
    job = start_import(sources, collection["id"], {"kind": "webdataset", "shards": [str(link)]})
    final = sources.wait_for(job["id"], timeout=60)
    assert final["status"] == "failed", final
    assert "outside the folders" in final["error"]["detail"]


def test_a_worker_killed_mid_shard_is_redone_elsewhere_without_duplicates(
    sources: Service, data: Path
) -> None:
    collection = create(sources, "killed")
    source = {"kind": "webdataset", "shards": [str(data / "shards" / "big.tar")]}
    job = start_import(sources, collection["id"], source, crops=False)
    shard_key = f"clipq:job:{job['id']}-0"
    deadline = time.monotonic() + 120
    while int(sources.redis.hget(shard_key, "progress_done") or 0) < 256:
        assert time.monotonic() < deadline, "the shard never got going"
        time.sleep(0.02)
    child = int(sources.redis.hget(shard_key, "lease").decode().split(":")[1])
    main = parent_of(child)
    assert main in [p.pid for p in sources.workers]
    os.kill(main, signal.SIGKILL)  # the whole worker, as on a lost host
    os.kill(child, signal.SIGKILL)

    final = sources.wait_for(job["id"], timeout=180)
    assert final["status"] == "succeeded", final
    [shard] = progress(sources, collection["id"], job["id"])["shards"]
    assert shard["attempts"] == 2 and shard["status"] == "succeeded"
    assert shard["result"]["read"] == 600
    assert shard["result"]["added"] + shard["result"]["duplicates"] == 600
    assert shard["result"]["duplicates"] >= 256  # appended before the kill: not embedded again
    images = all_images(sources, collection["id"])
    expected = {hashlib.sha256(d).hexdigest() for d in distinct_pngs(700)[100:700]}
    assert len(images) == 600 and {i["sha256"] for i in images} == expected
    rows = sources.redis.lrange(f"clipq:coll:{{{collection['id']}}}:rows", 0, -1)
    assert len(rows) == len(set(rows)) == 600


def test_a_cancelled_import_stops_taking_shards(sources: Service, data: Path) -> None:
    collection = create(sources, "cancelled")
    shards = [str(data / "shards" / "big.tar")] * 1 + [
        str(data / "shards" / f"{n:05d}.tar") for n in range(3)
    ]
    job = start_import(sources, collection["id"], {"kind": "webdataset", "shards": shards})
    deadline = time.monotonic() + 60
    while sources.redis.hget(f"clipq:job:{job['id']}", "shards") is None:
        assert time.monotonic() < deadline, "the import was never split"
        time.sleep(0.02)
    assert sources.http.delete(f"/v1/jobs/{job['id']}").status_code in (200, 202, 204)
    deadline = time.monotonic() + 60
    while True:
        shown = progress(sources, collection["id"], job["id"])
        if all(s["status"] in ("cancelled", "succeeded", "failed") for s in shown["shards"]):
            break
        assert time.monotonic() < deadline, shown
        time.sleep(0.2)
    assert shown["job"]["status"] == "cancelled"
    assert any(s["status"] == "cancelled" for s in shown["shards"]), shown


def test_cli_ingest_from_shards_resumes(sources: Service, data: Path) -> None:
    pattern = "shards/{00000..00001}.tar"  # relative: the CLI sends it absolute
    first = clipq(sources, "ingest", "-c", "cli-shards", "--from", pattern, "-q", cwd=data)
    assert first.returncode == 0, first.stderr
    assert "cli-shards: 12 added, 0 duplicates, 0 failed; 2 shards (0 imported before" in (
        first.stdout
    )
    again = clipq(sources, "ingest", "-c", "cli-shards", "--from", pattern, "-q", cwd=data)
    assert again.returncode == 0, again.stderr
    assert "0 added" in again.stdout and "(2 imported before, 0 failed); 12 images" in (
        again.stdout
    )
    missing = clipq(
        sources, "ingest", "-c", "cli-shards", "--from", "shards/nope.tar", "-q", cwd=data
    )
    assert missing.returncode == 2 and "not found" in missing.stderr


def clipq(service: Service, *args: str, cwd: Path) -> subprocess.CompletedProcess:
    # this checkout's clipq, whatever the environment's editable install points at
    path = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    env = {**os.environ, "CLIPQ_SERVER": service.base_url, "PYTHONPATH": path}
    return subprocess.run(
        [CLIPQ, *args], capture_output=True, text=True, env=env, cwd=cwd, timeout=120
    )

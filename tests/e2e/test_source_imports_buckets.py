"""Imports by reference from buckets: real webdataset shards and a folder in a bucket of a
server of the test's own, over HTTP (moto's S3, gcp-storage-emulator's GCS), read by real
worker processes through fsspec, s3fs and gcsfs, with credentials and endpoint from the
worker's environment only."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import httpx
import pytest

from tests.e2e.conftest import Service, env_on, free_port, private_redis, running_service
from tests.e2e.test_collections import create
from tests.e2e.test_source_imports import all_images, progress, start_import, write_shard
from tests.support import distinct_pngs

BUCKET = "clipq-shards"
S3_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "clipq-test", "AWS_SECRET_ACCESS_KEY": "clipq-test-secret"}

Put = Callable[[str, bytes], None]  # (key, bytes) into the bucket


@dataclass
class Bucket:
    scheme: str  # s3, gs
    env: dict[str, str]  # the worker's environment, which it reads the bucket with


def fill(put: Put, tmp_path_factory: pytest.TempPathFactory) -> None:
    """Two shards and a folder of images with captions (and a file that is no image)."""
    folder = tmp_path_factory.mktemp("bucket-shards")
    images = distinct_pngs(40, (40, 40))
    for n in range(2):
        path = folder / f"{n:05d}.tar"
        write_shard(path, 500 + 8 * n, images[8 * n : 8 * n + 8])
        put(f"shards/{n:05d}.tar", path.read_bytes())
    for i in range(3):
        put(f"loose/img{i}.png", images[30 + i])
        put(f"loose/img{i}.txt", f"loose {i}".encode())
    put("loose/readme.md", b"not an image")


@contextmanager
def s3_server() -> Iterator[tuple[Bucket, Put]]:
    boto3 = pytest.importorskip("boto3")
    moto_server = pytest.importorskip("moto.server")
    pytest.importorskip("s3fs")
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=0)
    server.start()
    endpoint = f"http://127.0.0.1:{server.get_host_and_port()[1]}"
    client = boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id=S3_CREDENTIALS["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=S3_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
    )
    client.create_bucket(Bucket=BUCKET)
    env = {"AWS_ENDPOINT_URL": endpoint, "AWS_DEFAULT_REGION": "us-east-1", **S3_CREDENTIALS}
    try:
        yield (
            Bucket("s3", env),
            lambda key, data: client.put_object(Bucket=BUCKET, Key=key, Body=data),
        )
    finally:
        server.stop()


@contextmanager
def gcs_server() -> Iterator[tuple[Bucket, Put]]:
    emulator = pytest.importorskip("gcp_storage_emulator.server")
    pytest.importorskip("gcsfs")
    port = free_port()
    server = emulator.create_server("127.0.0.1", port, in_memory=True, default_bucket=BUCKET)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    http = httpx.Client(base_url=endpoint)

    def put(key: str, data: bytes) -> None:
        params = {"uploadType": "media", "name": key}
        http.post(
            f"/upload/storage/v1/b/{BUCKET}/o", params=params, content=data
        ).raise_for_status()

    env = {
        "STORAGE_EMULATOR_HOST": endpoint,
        # gcsfs asks GCS's gRPC control API what kind of bucket it is; the emulator has none
        "GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT": "false",
        "NO_GCE_CHECK": "True",  # no metadata server to wait for: anonymous at once
    }
    try:
        yield Bucket("gs", env), put
    finally:
        http.close()
        server.stop()


SERVERS = {"s3": s3_server, "gs": gcs_server}


@pytest.fixture(scope="module", params=list(SERVERS))
def bucket(request: pytest.FixtureRequest, tmp_path_factory) -> Iterator[Bucket]:
    with SERVERS[request.param]() as (bucket, put):
        fill(put, tmp_path_factory)
        yield bucket


@pytest.fixture(scope="module")
def on_bucket(base_env, bucket: Bucket, tmp_path_factory) -> Iterator[Service]:
    """A service that reads the bucket's scheme with what its environment says."""
    folder = tmp_path_factory.mktemp(f"{bucket.scheme}-service")
    with private_redis(folder / "redis", appendfsync="no") as server:
        env = env_on(base_env, server, CLIPQ_INGEST_SCHEMES=f"http,https,{bucket.scheme}")
        with running_service(env | bucket.env, folder / "logs") as service:
            yield service


def test_shards_in_a_bucket_are_imported(on_bucket: Service, bucket: Bucket) -> None:
    collection = create(on_bucket, f"from-{bucket.scheme}")
    pattern = f"{bucket.scheme}://{BUCKET}/shards/{{00000..00001}}.tar"
    source = {"kind": "webdataset", "shards": [pattern]}
    final = on_bucket.wait_for(start_import(on_bucket, collection["id"], source)["id"], 120)
    assert final["status"] == "succeeded", final
    result = final["result"]
    assert (result["shards"], result["added"], result["failed"]) == (2, 16, 0)
    shards = progress(on_bucket, collection["id"], final["id"])["shards"]
    names = [f"{bucket.scheme}://{BUCKET}/shards/{n:05d}.tar" for n in range(2)]
    assert [s["name"] for s in shards] == names
    images = {i["filename"]: i for i in all_images(on_bucket, collection["id"])}
    assert len(images) == 16
    assert images["000000500.png"]["metadata"]["caption"] == "a photo number 500"
    assert images["000000500.png"]["labels"] == ["even"]
    # The same import again reads nothing twice.
    again = on_bucket.wait_for(start_import(on_bucket, collection["id"], source)["id"], 60)
    assert again["result"]["shards_skipped"] == 2 and again["result"]["image_count"] == 16


def test_a_folder_in_a_bucket_is_listed_and_imported(on_bucket: Service, bucket: Bucket) -> None:
    collection = create(on_bucket, f"{bucket.scheme}-folder")
    source = {"kind": "files", "paths": [f"{bucket.scheme}://{BUCKET}/loose"]}
    job = start_import(on_bucket, collection["id"], source, labels="caption")
    final = on_bucket.wait_for(job["id"], timeout=120)
    assert final["status"] == "succeeded", final
    images = sorted(all_images(on_bucket, collection["id"]), key=lambda i: i["filename"])
    assert [i["filename"] for i in images] == ["img0.png", "img1.png", "img2.png"]
    assert [i["labels"] for i in images] == [["loose 0"], ["loose 1"], ["loose 2"]]


def test_a_missing_key_fails_its_shard_alone(on_bucket: Service, bucket: Bucket) -> None:
    collection = create(on_bucket, f"{bucket.scheme}-missing")
    pattern = f"{bucket.scheme}://{BUCKET}/shards/{{00001,00404}}.tar"
    source = {"kind": "webdataset", "shards": [pattern]}
    final = on_bucket.wait_for(start_import(on_bucket, collection["id"], source)["id"], 120)
    assert final["status"] == "succeeded" and final["result"]["shards_failed"] == 1, final
    shards = progress(on_bucket, collection["id"], final["id"])["shards"]
    assert shards[1]["status"] == "failed" and "not found" in shards[1]["error"]["detail"]


def test_a_request_carries_no_credentials_and_no_scheme_not_allowed(
    on_bucket: Service, bucket: Bucket
) -> None:
    other = "gs" if bucket.scheme == "s3" else "s3"
    for reference in (
        f"{bucket.scheme}://clipq-test:clipq-test-secret@{BUCKET}/shards/00000.tar",
        f"{other}://bucket/a.tar",
    ):
        collection = create(on_bucket)
        body = {"source": {"kind": "webdataset", "shards": [reference]}}
        response = on_bucket.http.post(f"/v1/collections/{collection['id']}/imports", json=body)
        assert response.status_code == 422, (reference, response.text)
        assert response.json()["errors"][0]["field"] == "source.shards[0]"

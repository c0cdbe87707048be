"""Imports by reference from ``s3://``: real webdataset shards and a folder in a bucket of an
S3 server of the test's own (moto's, over HTTP), read by real worker processes through fsspec
and s3fs with credentials and endpoint from the worker's environment only."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.e2e.conftest import Service, env_on, private_redis, running_service
from tests.e2e.test_collections import create
from tests.e2e.test_source_imports import all_images, progress, start_import, write_shard
from tests.support import distinct_pngs

boto3 = pytest.importorskip("boto3")
moto_server = pytest.importorskip("moto.server")
pytest.importorskip("s3fs")

BUCKET = "clipq-shards"
CREDENTIALS = {"AWS_ACCESS_KEY_ID": "clipq-test", "AWS_SECRET_ACCESS_KEY": "clipq-test-secret"}


@pytest.fixture(scope="module")
def s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """An S3 endpoint with a bucket: two shards and a folder of images with captions."""
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=0)
    server.start()
    endpoint = f"http://127.0.0.1:{server.get_host_and_port()[1]}"
    client = boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id=CREDENTIALS["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
    )
    client.create_bucket(Bucket=BUCKET)
    folder = tmp_path_factory.mktemp("s3-shards")
    images = distinct_pngs(40, (40, 40))
    for n in range(2):
        path = folder / f"{n:05d}.tar"
        write_shard(path, 500 + 8 * n, images[8 * n : 8 * n + 8])
        client.upload_file(str(path), BUCKET, f"shards/{n:05d}.tar")
    for i in range(3):
        client.put_object(Bucket=BUCKET, Key=f"loose/img{i}.png", Body=images[30 + i])
        client.put_object(Bucket=BUCKET, Key=f"loose/img{i}.txt", Body=f"loose {i}".encode())
    client.put_object(Bucket=BUCKET, Key="loose/readme.md", Body=b"not an image")
    yield endpoint
    server.stop()


@pytest.fixture(scope="module")
def on_s3(base_env, s3: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    """A service that reads s3:// with the credentials and endpoint of its environment."""
    folder = tmp_path_factory.mktemp("s3-service")
    with private_redis(folder / "redis", appendfsync="no") as server:
        env = env_on(
            base_env,
            server,
            CLIPQ_INGEST_SCHEMES="http,https,s3",
            AWS_ENDPOINT_URL=s3,
            AWS_DEFAULT_REGION="us-east-1",
            **CREDENTIALS,
        )
        with running_service(env, folder / "logs") as service:
            yield service


def test_shards_in_a_bucket_are_imported(on_s3: Service) -> None:
    collection = create(on_s3, "from-s3")
    pattern = f"s3://{BUCKET}/shards/{{00000..00001}}.tar"
    job = start_import(on_s3, collection["id"], {"kind": "webdataset", "shards": [pattern]})
    final = on_s3.wait_for(job["id"], timeout=120)
    assert final["status"] == "succeeded", final
    result = final["result"]
    assert (result["shards"], result["added"], result["failed"]) == (2, 16, 0)
    shards = progress(on_s3, collection["id"], job["id"])["shards"]
    assert [s["name"] for s in shards] == [f"s3://{BUCKET}/shards/{n:05d}.tar" for n in range(2)]
    images = {i["filename"]: i for i in all_images(on_s3, collection["id"])}
    assert len(images) == 16
    assert images["000000500.png"]["metadata"]["caption"] == "a photo number 500"
    assert images["000000500.png"]["labels"] == ["even"]
    # The same import again reads nothing twice.
    again = on_s3.wait_for(
        start_import(on_s3, collection["id"], {"kind": "webdataset", "shards": [pattern]})["id"],
        timeout=60,
    )
    assert again["result"]["shards_skipped"] == 2 and again["result"]["image_count"] == 16


def test_a_folder_in_a_bucket_is_listed_and_imported(on_s3: Service) -> None:
    collection = create(on_s3, "s3-folder")
    source = {"kind": "files", "paths": [f"s3://{BUCKET}/loose"]}
    final = on_s3.wait_for(
        start_import(on_s3, collection["id"], source, labels="caption")["id"], timeout=120
    )
    assert final["status"] == "succeeded", final
    images = sorted(all_images(on_s3, collection["id"]), key=lambda i: i["filename"])
    assert [i["filename"] for i in images] == ["img0.png", "img1.png", "img2.png"]
    assert [i["labels"] for i in images] == [["loose 0"], ["loose 1"], ["loose 2"]]


def test_a_missing_key_fails_its_shard_alone(on_s3: Service) -> None:
    collection = create(on_s3, "s3-missing")
    pattern = f"s3://{BUCKET}/shards/{{00001,00404}}.tar"
    final = on_s3.wait_for(
        start_import(on_s3, collection["id"], {"kind": "webdataset", "shards": [pattern]})["id"],
        timeout=120,
    )
    assert final["status"] == "succeeded" and final["result"]["shards_failed"] == 1, final
    shards = progress(on_s3, collection["id"], final["id"])["shards"]
    assert shards[1]["status"] == "failed" and "not found" in shards[1]["error"]["detail"]


@pytest.mark.parametrize(
    "reference",
    [f"s3://clipq-test:clipq-test-secret@{BUCKET}/shards/00000.tar", "gs://bucket/a.tar"],
)
def test_a_request_carries_no_credentials_and_no_scheme_not_allowed(
    on_s3: Service, reference: str
) -> None:
    collection = create(on_s3)
    body = {"source": {"kind": "webdataset", "shards": [reference]}}
    response = on_s3.http.post(f"/v1/collections/{collection['id']}/imports", json=body)
    assert response.status_code == 422, response.text
    assert response.json()["errors"][0]["field"] == "source.shards[0]"

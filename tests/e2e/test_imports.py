"""Bulk import of precomputed embeddings end to end: clip-retrieval's layout, checks, resume."""

from __future__ import annotations

import hashlib
import io
import subprocess
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tests.e2e.conftest import Service
from tests.e2e.test_cli_collections import CLIPQ
from tests.e2e.test_collections import create, run


def npy(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()


def parquet(columns: dict) -> bytes:
    buffer = io.BytesIO()
    pq.write_table(pa.table(columns), buffer)
    return buffer.getvalue()


def post_part(service: Service, collection_id: str, embeddings: bytes, metadata=None, **form):
    files = [("embeddings", ("img_emb_0.npy", embeddings, "application/octet-stream"))]
    if metadata is not None:
        files.append(("metadata", metadata))
    return service.http.post(f"/v1/collections/{collection_id}/embeddings", files=files, data=form)


@pytest.fixture(scope="module")
def dim(service: Service) -> int:
    return service.http.get("/v1/models").json()["models"][0]["embedding_dim"]


def pairs(dim: int, count: int, seed: int = 0) -> np.ndarray:
    """``count`` unit vectors in near-identical pairs (rows 2i and 2i+1), fp32."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((count // 2, dim))
    vectors = np.repeat(centres, 2, axis=0) + rng.standard_normal((count, dim)) * 0.05
    return (vectors / np.linalg.norm(vectors, axis=1, keepdims=True)).astype(np.float32)


def test_clip_retrieval_part_is_searchable_and_imported_once(service: Service, dim: int) -> None:
    collection = create(service, "imported")
    vectors = pairs(dim, 40)
    metadata = parquet(
        {
            "image_path": [f"frames/{i:04d}.jpg" for i in range(40)],
            "caption": [f"frame {i}" for i in range(40)],
            "labels": [["even"] if i % 2 == 0 else ["odd"] for i in range(40)],
        }
    )
    embeddings = npy(vectors.astype(np.float16))
    response = post_part(
        service, collection["id"], embeddings, ("metadata_0.parquet", metadata), part="img_emb_0"
    )
    assert response.status_code == 202, response.text
    job = service.wait_for(response.json()["id"])
    assert job["status"] == "succeeded", job["error"]
    uploaded = hashlib.sha256(embeddings).hexdigest()
    assert not service.redis.exists(f"clipq:blob:{uploaded}")  # imported: its bytes dropped
    assert job["progress"] == {"done": 40, "total": 40}
    assert job["result"] | {"kind": "import"} == {
        "kind": "import",
        "collection_id": collection["id"],
        "part": "img_emb_0",
        "imported": 40,
        "already_imported": False,
        "image_count": 40,
    }
    page = service.http.get(
        f"/v1/collections/{collection['id']}/images", params={"limit": 500}
    ).json()
    assert page["total"] == 40
    first = page["images"][0]
    assert first["filename"] == "frames/0000.jpg" and first["metadata"] == {"caption": "frame 0"}
    assert first["labels"] == ["even"] and first["thumbnail_url"] is None
    # image -> image over imported rows: each vector's twin comes first
    ids = [image["id"] for image in page["images"]]
    for row in (0, 7, 30):
        similar = run(service, collection["id"], f"images/{ids[row]}/similar", {"top_k": 3})
        assert similar["status"] == "succeeded", similar["error"]
        assert similar["result"]["hits"][0]["image_id"] == ids[row ^ 1]
    # labels of imported rows are evaluation queries like ingested ones
    labels = service.http.get(f"/v1/collections/{collection['id']}").json()
    assert labels["image_count"] == 40
    # the same part again: refused before it is queued, and listed as imported
    again = post_part(service, collection["id"], npy(vectors), part="img_emb_0")
    assert again.status_code == 409 and "img_emb_0" in again.json()["detail"]
    parts = service.http.get(f"/v1/collections/{collection['id']}/embeddings").json()
    assert parts == {"parts": [{"part": "img_emb_0", "rows": 40, "first_row": 0}]}


def test_a_second_part_appends_and_the_default_name_is_its_hash(service: Service, dim: int) -> None:
    collection = create(service, "two parts")
    first = pairs(dim, 10, seed=1)
    csv = "filename,site\n" + "".join(f"a{i}.jpg,north\n" for i in range(10))
    for array, metadata in ((first, ("a.csv", csv.encode())), (pairs(dim, 6, seed=2), None)):
        response = post_part(service, collection["id"], npy(array), metadata)
        assert response.status_code == 202, response.text
        assert service.wait_for(response.json()["id"])["status"] == "succeeded"
    parts = service.http.get(f"/v1/collections/{collection['id']}/embeddings").json()["parts"]
    assert [(p["rows"], p["first_row"]) for p in parts] == [(10, 0), (6, 10)]
    assert len(parts[0]["part"]) == 64  # sha256 of the .npy
    images = service.http.get(
        f"/v1/collections/{collection['id']}/images", params={"limit": 20}
    ).json()["images"]
    assert images[0]["filename"] == "a0.jpg" and images[0]["metadata"] == {"site": "north"}
    assert images[10]["filename"].endswith("#0")  # no metadata: named by part and row
    same = post_part(service, collection["id"], npy(first))
    assert same.status_code == 409


def test_mismatched_dimension_and_model_are_refused_before_queueing(
    service: Service, dim: int
) -> None:
    collection = create(service, "refusals")
    wrong = post_part(service, collection["id"], npy(np.ones((3, dim + 1), np.float32)))
    assert wrong.status_code == 422, wrong.text
    assert wrong.json()["errors"][0]["field"] == "embeddings"
    assert f"makes {dim}-d" in wrong.json()["detail"]
    model = post_part(service, collection["id"], npy(pairs(dim, 2)), model="ViT-L-14")
    assert model.status_code == 422 and model.json()["errors"][0]["field"] == "model"
    for bad, why in (
        (b"not an array", "is not a .npy file"),
        (npy(np.ones((4,), np.float32)), "2-D"),
        (npy(np.ones((2, dim), np.int64)), "float16 or float32"),
        (npy(pairs(dim, 4))[:-8], "truncated"),
    ):
        refused = post_part(service, collection["id"], bad)
        assert refused.status_code == 422 and why in refused.json()["detail"], refused.text
    assert service.http.get(f"/v1/collections/{collection['id']}").json()["image_count"] == 0


def test_bad_numbers_or_metadata_fail_the_job_and_add_nothing(service: Service, dim: int) -> None:
    collection = create(service, "bad parts")
    broken = pairs(dim, 4)
    broken[2, 5] = np.nan
    short = ("m.parquet", parquet({"image_path": ["only-one.jpg"]}))
    for array, metadata, field in (
        (broken, None, "embeddings[2]"),
        (pairs(dim, 4), short, "metadata"),
        (pairs(dim, 4), ("m.parquet", b"PAR1 not really"), "metadata"),
    ):
        response = post_part(service, collection["id"], npy(array), metadata)
        assert response.status_code == 202, response.text
        job = service.wait_for(response.json()["id"])
        assert job["status"] == "failed" and job["error"]["status"] == 422, job
        assert job["error"]["errors"][0]["field"] == field
    assert service.http.get(f"/v1/collections/{collection['id']}").json()["image_count"] == 0
    assert service.http.get(f"/v1/collections/{collection['id']}/embeddings").json() == {
        "parts": []
    }


def test_cli_imports_a_clip_retrieval_folder_and_resumes(
    service: Service, dim: int, tmp_path: Path
) -> None:
    """Two img_emb files in parts of 8 rows, after an interrupted run that sent the first
    file: the second run sends only the rest, a third finds every part there."""
    (tmp_path / "img_emb").mkdir()
    (tmp_path / "metadata").mkdir()
    for index, count in enumerate((20, 12)):
        np.save(tmp_path / "img_emb" / f"img_emb_{index}.npy", pairs(dim, count, seed=index))
        names = [f"shard{index}/{i}.jpg" for i in range(count)]
        pq.write_table(
            pa.table({"image_path": names, "caption": ["c"] * count}),
            tmp_path / "metadata" / f"metadata_{index}.parquet",
        )
    command = [CLIPQ, "import", "--server", service.base_url, "-q", "-c", "from-folder"]
    command += ["--part-rows", "8"]
    first_file = str(tmp_path / "img_emb" / "img_emb_0.npy")
    done = subprocess.run([*command, first_file], capture_output=True, text=True, timeout=300)
    assert "from-folder: 20 embeddings imported, 0 there already" in done.stdout, done.stderr
    done = subprocess.run([*command, str(tmp_path)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "from-folder: 12 embeddings imported, 20 there already" in done.stdout
    again = subprocess.run([*command, str(tmp_path)], capture_output=True, text=True, timeout=300)
    assert "from-folder: 0 embeddings imported, 32 there already" in again.stdout, again.stderr
    [collection] = [
        c for c in service.http.get("/v1/collections").json() if c["name"] == "from-folder"
    ]
    parts = service.http.get(f"/v1/collections/{collection['id']}/embeddings").json()["parts"]
    assert [p["part"] for p in parts] == [
        "img_emb_0.npy:0-8",
        "img_emb_0.npy:8-16",
        "img_emb_0.npy:16-20",
        "img_emb_1.npy:0-8",
        "img_emb_1.npy:8-12",
    ]
    images = service.http.get(
        f"/v1/collections/{collection['id']}/images", params={"offset": 20, "limit": 1}
    ).json()["images"]
    assert images[0]["filename"] == "shard1/0.jpg"

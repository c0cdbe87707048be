"""Every bad request gets a clear 4xx problem naming what was wrong, and creates no job."""

from __future__ import annotations

import io
import os

import pytest
from PIL import Image

from tests.e2e.conftest import Service
from tests.support import distinct_pngs, png_bytes

RED = png_bytes((220, 40, 40))


def bomb_png() -> bytes:
    """A 2000×2000 PNG (4 Mpx, over the test limit of 1 Mpx) that is only a few KB."""
    buffer = io.BytesIO()
    Image.new("L", (2000, 2000), 0).save(buffer, format="PNG", optimize=True)
    return buffer.getvalue()


def form(*images: tuple[str, bytes], labels: list[str] | None = None, **fields: str) -> dict:
    """A multipart body (always multipart, even without files, as curl -F sends it)."""
    parts = [("images", (name, data, "application/octet-stream")) for name, data in images]
    parts += [("labels", (None, label)) for label in (["cat", "dog"] if labels is None else labels)]
    parts += [(key, (None, value)) for key, value in fields.items()]
    return {"files": parts}


CASES = {
    "no files": (form(), 422, "images"),
    "text file": (form(("notes.txt", b"hello, not an image")), 422, "notes.txt"),
    "header-truncated png": (form(("cut.png", RED[:20])), 422, "cut.png"),
    "zero bytes": (form(("empty.png", b"")), 422, "empty.png"),
    "decompression bomb": (form(("bomb.png", bomb_png())), 422, "bomb.png"),
    "too many files": (
        form(*[(f"{i}.png", data) for i, data in enumerate(distinct_pngs(501))]),
        422,
        "500",
    ),
    "no labels": (form(("a.png", RED), labels=[]), 422, "labels"),
    "empty label": (form(("a.png", RED), labels=["cat", "  "]), 422, "labels[1]"),
    "duplicate labels": (form(("a.png", RED), labels=["cat", "dog", "cat"]), 422, "labels[2]"),
    "over 1000 labels": (
        form(("a.png", RED), labels=[f"l{i}" for i in range(1001)]),
        422,
        "labels",
    ),
    "top_k below 1": (form(("a.png", RED), top_k="0"), 422, "top_k"),
    "template without slot": (
        form(("a.png", RED), prompt_template="a photo"),
        422,
        "prompt_template",
    ),
    "path in filename": (form(("../../etc/passwd", RED)), 422, "path parts"),
    "text where a file belongs": (
        {"files": [("images", (None, "not a file")), ("labels", (None, "cat"))]},
        422,
        "must be a file",
    ),
    "second file bad": (form(("a.png", RED), ("b.txt", b"plain text")), 422, "images[1]"),
}


def job_count(service: Service) -> int:
    return sum(1 for _ in service.redis.scan_iter(match="clipq:job:*"))


@pytest.mark.parametrize("case", CASES, ids=list(CASES))
def test_bad_request_is_a_named_4xx_problem(service: Service, case: str) -> None:
    request, status, mentions = CASES[case]
    before = job_count(service)
    response = service.http.post("/v1/classify", **request)
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["status"] == status
    assert {"type", "title", "status", "detail"} <= problem.keys()
    assert "<class" not in response.text and "UploadFile" not in response.text  # not our code
    assert response.headers["x-content-type-options"] == "nosniff"
    assert mentions in problem["detail"] or any(
        mentions in error["field"] or mentions in error["message"]
        for error in problem.get("errors") or []
    ), problem
    assert job_count(service) == before


def test_upload_over_the_byte_limit_is_413(service: Service) -> None:
    response = service.http.post("/v1/classify", **form(("big.png", os.urandom(3 * 1024 * 1024))))
    assert response.status_code == 413
    assert response.headers["content-type"] == "application/problem+json"


def test_chunked_upload_over_the_byte_limit_is_413(service: Service) -> None:
    def chunks():
        for _ in range(40):
            yield os.urandom(100_000)

    response = service.http.post(
        "/v1/classify",
        content=chunks(),
        headers={"content-type": "multipart/form-data; boundary=x"},
    )
    assert response.status_code == 413


@pytest.mark.parametrize("body", [b"{not json", b'{"labels": ["cat"]}'])
def test_json_body_is_415(service: Service, body: bytes) -> None:
    response = service.http.post(
        "/v1/classify", content=body, headers={"content-type": "application/json"}
    )
    assert response.status_code == 415
    assert response.headers["content-type"] == "application/problem+json"
    assert "multipart/form-data" in response.json()["detail"]


def test_wait_beyond_the_limit_is_422(service: Service) -> None:
    response = service.http.get("/v1/jobs/anything", params={"wait": 3600})
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "wait"

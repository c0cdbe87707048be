"""Collections end to end with random models: lifecycle, ingest, search, evaluation, errors.

Whether search finds the *right* image is tested with the embedded models in
test_semantics.py; here the contracts and the bookkeeping.
"""

from __future__ import annotations

import time
import uuid

import pytest

from clipq.store.collections import collection_key
from tests.e2e.conftest import Service
from tests.support import distinct_pngs, png_bytes, truncated_png


def create(service: Service, name: str | None = None, **body) -> dict:
    """A new collection (a fresh name unless one is given: a key's names are unique)."""
    name = name or f"shapes {uuid.uuid4().hex[:8]}"
    response = service.http.post("/v1/collections", json={"name": name, **body})
    assert response.status_code == 201, response.text
    assert response.headers["location"] == f"/v1/collections/{response.json()['id']}"
    return response.json()


def ingest(service: Service, collection_id: str, images, labels=None, metadata=None) -> dict:
    files = [("images", (name, data, "image/png")) for name, data in images]
    files += [("labels", (None, value)) for value in labels or []]
    files += [("metadata", (None, value)) for value in metadata or []]
    response = service.http.post(f"/v1/collections/{collection_id}/images", files=files)
    assert response.status_code == 202, response.text
    return service.wait_for(response.json()["id"])


def run(service: Service, collection_id: str, action: str, body: dict) -> dict:
    response = service.http.post(f"/v1/collections/{collection_id}/{action}", json=body)
    assert response.status_code == 202, response.text
    return service.wait_for(response.json()["id"])


@pytest.fixture(scope="module")
def filled(service: Service) -> dict:
    collection = create(service)
    images = [(f"{i}.png", data) for i, data in enumerate(distinct_pngs(6, (48, 48)))]
    labels = ["red,circle", "blue", "green", "red", "yellow", "purple"]
    job = ingest(service, collection["id"], images, labels, ['{"site": "a"}'] + ["{}"] * 5)
    assert job["status"] == "succeeded", job["error"]
    return collection | {"ingest": job["result"]}


def test_ingest_stores_embeddings_regions_and_thumbnails(service: Service, filled: dict) -> None:
    result = filled["ingest"]
    assert (result["added"], result["duplicates"], result["failed"]) == (6, 0, 0)
    collection = service.http.get(f"/v1/collections/{filled['id']}").json()
    assert collection["image_count"] == 6 and collection["version"] >= 1
    page = service.http.get(f"/v1/collections/{filled['id']}/images", params={"limit": 2}).json()
    assert page["total"] == 6 and len(page["images"]) == 2
    first = page["images"][0]
    assert first["labels"] == ["red", "circle"] and first["metadata"] == {"site": "a"}
    assert len(first["regions"]) == result["images"][0]["regions"] <= 4
    thumbnail = service.http.get(first["thumbnail_url"])
    assert thumbnail.status_code == 200 and thumbnail.headers["content-type"] == "image/jpeg"


def test_reingesting_the_same_bytes_is_deduplicated(service: Service, filled: dict) -> None:
    again = [(f"again{i}.png", data) for i, data in enumerate(distinct_pngs(2, (48, 48)))]
    job = ingest(service, filled["id"], [*again, again[0]])
    assert [i["status"] for i in job["result"]["images"]] == ["duplicate"] * 3
    assert job["result"]["images"][0]["image_id"] == filled["ingest"]["images"][0]["image_id"]
    assert service.http.get(f"/v1/collections/{filled['id']}").json()["image_count"] == 6


def test_the_same_bytes_twice_in_one_upload(service: Service) -> None:
    collection = create(service, "twice")
    data = png_bytes((3, 4, 5))
    job = ingest(service, collection["id"], [("first.png", data), ("second.png", data)])
    first, second = job["result"]["images"]
    assert (first["status"], second["status"]) == ("added", "duplicate")
    assert first["image_id"] == second["image_id"]


def test_broken_images_fail_alone(service: Service) -> None:
    collection = create(service, "mixed")
    job = ingest(
        service, collection["id"], [("ok.png", png_bytes((9, 9, 9))), ("cut.png", truncated_png())]
    )
    statuses = {i["filename"]: i["status"] for i in job["result"]["images"]}
    assert statuses == {"ok.png": "added", "cut.png": "failed"}
    assert "cut.png" in job["result"]["images"][1]["error"]["detail"]


def test_search_with_and_without_crops(service: Service, filled: dict) -> None:
    plain = run(
        service, filled["id"], "search", {"query": "a red circle", "top_k": 3, "min_score": -1}
    )
    hits = plain["result"]["hits"]
    assert len(hits) == 3 and plain["result"]["no_match"] is False
    assert [h["score"] for h in hits] == sorted((h["score"] for h in hits), reverse=True)
    assert all(h["crop_score"] is None and h["score"] == h["image_score"] for h in hits)
    reranked = run(
        service,
        filled["id"],
        "search",
        {"query": "a red circle", "top_k": 6, "rerank": "crops", "min_score": -1},
    )
    for hit in reranked["result"]["hits"]:
        assert hit["score"] == pytest.approx(max(hit["image_score"], hit["crop_score"]))
        x0, y0, x1, y1 = hit["crop_box"]
        assert 0 <= x0 < x1 <= hit["width"] and 0 <= y0 < y1 <= hit["height"]


def test_no_match_under_min_score(service: Service, filled: dict) -> None:
    job = run(service, filled["id"], "search", {"query": "a red circle", "min_score": 1.0})
    assert job["result"]["no_match"] is True and job["result"]["hits"] == []
    assert job["result"]["best_score"] < 1.0


def test_a_search_of_an_empty_collection_is_no_match(service: Service) -> None:
    collection = create(service)
    job = run(service, collection["id"], "search", {"query": "a red circle"})
    assert job["status"] == "succeeded", job["error"]
    result = job["result"]
    assert result["no_match"] is True and result["hits"] == []
    assert result["best_score"] is None and result["decision"] == "calibrated"


def test_the_collection_sets_its_own_threshold_and_says_so(service: Service, filled: dict) -> None:
    first = run(service, filled["id"], "search", {"query": "a red circle"})["result"]
    again = run(service, filled["id"], "search", {"query": "quarterly tax report"})["result"]
    assert first["decision"] == again["decision"] == "calibrated"
    assert first["min_score"] == again["min_score"]  # the collection's, not the query's
    assert first["no_match"] == (first["best_score"] < first["min_score"])


def similar(service: Service, collection_id: str, image_id: str, body: dict) -> dict:
    return run(service, collection_id, f"images/{image_id}/similar", body)


def test_find_similar_by_an_image_of_the_collection(service: Service, filled: dict) -> None:
    first = filled["ingest"]["images"][0]["image_id"]
    job = similar(service, filled["id"], first, {"top_k": 10})
    assert job["status"] == "succeeded", job["error"]
    result = job["result"]
    assert (result["image_id"], result["query"], result["decision"]) == (first, None, "none")
    assert result["min_score"] is None and result["no_match"] is False
    ids = [hit["image_id"] for hit in result["hits"]]
    assert len(ids) == 5 and first not in ids  # every other image, never itself
    assert [h["score"] for h in result["hits"]] == sorted(
        (h["score"] for h in result["hits"]), reverse=True
    )
    strict = similar(service, filled["id"], first, {"min_score": 1.0})["result"]
    assert strict["decision"] == "min_score" and strict["min_score"] == 1.0
    assert strict["no_match"] == (strict["best_score"] < 1.0)


def test_find_similar_by_an_uploaded_image(service: Service, filled: dict) -> None:
    response = service.http.post(
        f"/v1/collections/{filled['id']}/similar",
        files=[("image", ("mine.png", png_bytes((200, 30, 30)), "image/png"))],
        data={"top_k": "6", "rerank": "crops"},
    )
    assert response.status_code == 202, response.text
    job = service.wait_for(response.json()["id"])
    assert job["status"] == "succeeded", job["error"]
    result = job["result"]
    assert result["image"] == "mine.png" and result["rerank"] == "crops"
    assert len(result["hits"]) == 6 and result["decision"] == "none"
    for hit in result["hits"]:
        assert hit["score"] == pytest.approx(max(hit["image_score"], hit["crop_score"]))


def test_find_similar_refuses_what_it_cannot_use(service: Service, filled: dict) -> None:
    base = f"/v1/collections/{filled['id']}"
    unknown = service.http.post(f"{base}/images/{'0' * 24}/similar", json={})
    assert unknown.status_code == 404 and "0" * 24 in unknown.json()["detail"]
    no_image = service.http.post(f"{base}/similar", data={"top_k": "3"}, files={"x": ("", b"")})
    assert no_image.status_code == 422 and no_image.json()["errors"][0]["field"] == "image"
    bad_top_k = service.http.post(
        f"{base}/similar", files=[("image", ("a.png", png_bytes((1, 2, 3))))], data={"top_k": "0"}
    )
    assert bad_top_k.status_code == 422 and bad_top_k.json()["errors"][0]["field"] == "top_k"
    for response in (unknown, no_image, bad_top_k):
        assert response.headers["content-type"] == "application/problem+json"
    broken = service.http.post(
        f"{base}/similar", files=[("image", ("cut.png", truncated_png(), "image/png"))]
    )
    # its header reads fine, so the API accepts it; decoding it is the worker's, and fails
    job = service.wait_for(broken.json()["id"])
    assert job["status"] == "failed" and job["error"]["status"] == 422
    assert "cut.png" in job["error"]["detail"]


def test_long_poll_answers_a_search_in_one_round_trip(service: Service, filled: dict) -> None:
    response = service.http.post(f"/v1/collections/{filled['id']}/search", json={"query": "blue"})
    started = time.monotonic()
    job = service.http.get(response.headers["location"], params={"wait": 20}).json()
    assert job["status"] == "succeeded" and time.monotonic() - started < 15


def test_evaluate_every_label_both_modes(service: Service, filled: dict) -> None:
    job = run(service, filled["id"], "evaluate", {"ks": [1, 5]})
    result = job["result"]
    assert set(result["modes"]) == {"none", "crops"}
    assert [q["relevant_labels"] for q in result["queries"]] == [
        [label] for label in sorted({"red", "circle", "blue", "green", "yellow", "purple"})
    ]
    for mode in result["modes"].values():
        assert set(mode["recall_at"]) == {"1", "5"}
        assert 0 < mode["mrr"] <= 1
        assert mode["recall_at"]["1"] <= mode["recall_at"]["5"]
    red = next(q for q in result["queries"] if q["relevant_labels"] == ["red"])
    assert red["relevant_count"] == 2 and red["query"] == "a photo of a red."


def test_evaluate_given_queries(service: Service, filled: dict) -> None:
    body = {"queries": [{"query": "something red", "relevant_labels": ["red", "circle"]}]}
    result = run(service, filled["id"], "evaluate", body)["result"]
    assert result["ks"] == [1, 5, 10] and result["images"] == 6
    query = result["queries"][0]
    assert query["none"]["rank"] is not None and query["relevant_count"] == 2


def test_list_get_delete(service: Service) -> None:
    collection = create(service, "to delete")
    assert collection["id"] in [c["id"] for c in service.http.get("/v1/collections").json()]
    assert service.http.delete(f"/v1/collections/{collection['id']}").status_code == 204
    assert service.http.get(f"/v1/collections/{collection['id']}").status_code == 404
    assert not list(service.redis.scan_iter(match=f"{collection_key(collection['id'])}*"))


BAD = {
    "unknown collection": ("GET", "/v1/collections/nope", None, 404),
    "search unknown collection": ("POST", "/v1/collections/nope/search", {"query": "x"}, 404),
    "empty query": ("POST", "{c}/search", {"query": "  "}, 422),
    "top_k zero": ("POST", "{c}/search", {"query": "x", "top_k": 0}, 422),
    "top_k too large": ("POST", "{c}/search", {"query": "x", "top_k": 5000}, 422),
    "min_score above 1": ("POST", "{c}/search", {"query": "x", "min_score": 1.5}, 422),
    "min_score below -1": ("POST", "{c}/search", {"query": "x", "min_score": -2}, 422),
    "unknown rerank": ("POST", "{c}/search", {"query": "x", "rerank": "magic"}, 422),
    "unknown eval label": (
        "POST",
        "{c}/evaluate",
        {"queries": [{"query": "x", "relevant_labels": ["zebra"]}]},
        422,
    ),
    "bad ks": ("POST", "{c}/evaluate", {"ks": [0]}, 422),
    "empty name": ("POST", "/v1/collections", {"name": ""}, 422),
}


@pytest.mark.parametrize("case", BAD, ids=list(BAD))
def test_bad_requests(service: Service, filled: dict, case: str) -> None:
    method, path, body, status = BAD[case]
    path = path.replace("{c}", f"/v1/collections/{filled['id']}")
    response = service.http.request(method, path, json=body)
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"


@pytest.mark.parametrize("body", [b"{not json", b"\xff\xfe\x11"])
def test_malformed_json_is_a_400_problem(service: Service, filled: dict, body: bytes) -> None:
    response = service.http.post(
        f"/v1/collections/{filled['id']}/search",
        content=body,
        headers={"content-type": "application/json"},
    )
    assert response.status_code == 400
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["type"] == "/problems/malformed-body"


def test_broken_multipart_is_a_400_problem(service: Service) -> None:
    response = service.http.post(
        "/v1/classify",
        content=b"--X\r\nTrue--X--\r\n",
        headers={"content-type": "multipart/form-data; boundary=X"},
    )
    assert response.status_code == 400
    assert response.json()["type"] == "/problems/malformed-body"


def test_label_and_metadata_counts_must_match(service: Service, filled: dict) -> None:
    files = [
        ("images", ("a.png", png_bytes((1, 1, 1)))),
        ("labels", (None, "a")),
        ("labels", (None, "b")),
    ]
    response = service.http.post(f"/v1/collections/{filled['id']}/images", files=files)
    assert response.status_code == 422 and response.json()["errors"][0]["field"] == "labels"
    files = [("images", ("a.png", png_bytes((1, 1, 1)))), ("metadata", (None, "[1, 2]"))]
    response = service.http.post(f"/v1/collections/{filled['id']}/images", files=files)
    assert response.json()["errors"][0]["field"] == "metadata[0]"


def test_deleting_a_collection_while_searching_is_clean(service: Service) -> None:
    collection = create(service, "short-lived")
    ingest(
        service,
        collection["id"],
        [(f"{i}.png", d) for i, d in enumerate(distinct_pngs(4, (32, 32)))],
    )
    jobs = [
        service.http.post(
            f"/v1/collections/{collection['id']}/search", json={"query": "x", "min_score": -1}
        ).json()
        for _ in range(5)
    ]
    service.http.delete(f"/v1/collections/{collection['id']}")
    for job in jobs:
        final = service.wait_for(job["id"])
        assert final["status"] in ("succeeded", "failed")
        if final["status"] == "failed":
            assert final["error"]["status"] == 404
    assert not list(service.redis.scan_iter(match=f"{collection_key(collection['id'])}*"))


def problem_at(response, status: int, field: str) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert body["errors"][0]["field"] == field, body
    return body


def test_a_name_is_refused_twice_whatever_its_case(service: Service) -> None:
    name = f"Dup {uuid.uuid4().hex[:6]}"
    first = create(service, name)
    again = service.http.post("/v1/collections", json={"name": f"  {name.lower()} "})
    assert name in problem_at(again, 409, "name")["detail"]
    named = [c for c in service.http.get("/v1/collections").json() if c["name"] == name]
    assert [c["id"] for c in named] == [first["id"]]
    service.http.delete(f"/v1/collections/{first['id']}")
    assert create(service, name)["name"] == name  # free again once it is gone


def test_one_image_deleted_is_gone_everywhere(service: Service) -> None:
    collection = create(service)
    base = f"/v1/collections/{collection['id']}"
    pngs = distinct_pngs(4, (40, 40))
    job = ingest(service, collection["id"], [(f"{i}.png", p) for i, p in enumerate(pngs)])
    assert job["result"]["added"] == 4
    images = service.http.get(f"{base}/images").json()["images"]
    gone, kept = images[1], [images[0], *images[2:]]
    assert service.http.delete(f"{base}/images/{gone['id']}").status_code == 204

    page = service.http.get(f"{base}/images").json()
    assert page["total"] == 3 and [i["id"] for i in page["images"]] == [i["id"] for i in kept]
    assert service.http.get(f"{base}").json()["image_count"] == 3
    assert service.http.get(gone["thumbnail_url"]).status_code == 404
    found = run(service, collection["id"], "search", {"query": "x", "min_score": -1, "top_k": 4})
    assert {h["image_id"] for h in found["result"]["hits"]} == {i["id"] for i in kept}
    like = similar(service, collection["id"], kept[0]["id"], {"top_k": 1, "min_score": -1})
    assert like["result"]["hits"][0]["image_id"] != gone["id"]
    assert len(like["result"]["hits"]) == 1  # ranked past the deleted row, still top_k
    missing = service.http.post(f"{base}/images/{gone['id']}/similar", json={})
    assert missing.status_code == 404
    assert service.http.delete(f"{base}/images/{gone['id']}").status_code == 404
    # Its bytes may come back, as a new image.
    again = ingest(service, collection["id"], [("back.png", pngs[1])])["result"]
    assert (again["added"], again["duplicates"]) == (1, 0)
    assert service.http.get(f"{base}").json()["image_count"] == 4


def test_labels_are_edited_and_evaluation_follows(service: Service) -> None:
    collection = create(service)
    base = f"/v1/collections/{collection['id']}"
    pngs = [(f"{i}.png", p) for i, p in enumerate(distinct_pngs(2, (40, 40)))]
    ingest(service, collection["id"], pngs, ["red circle", "blue square"])
    first, second = service.http.get(f"{base}/images").json()["images"]
    edited = service.http.patch(
        f"{base}/images/{first['id']}", json={"labels": ["green triangle", "green triangle"]}
    )
    assert edited.status_code == 200, edited.text
    assert edited.json()["labels"] == ["green triangle"]
    listed = service.http.get(f"{base}/images").json()["images"]
    assert [i["labels"] for i in listed] == [["green triangle"], ["blue square"]]
    # "red circle" is no label of the collection any more; "green triangle" is.
    body = {"queries": [{"query": "x", "relevant_labels": ["red circle"]}]}
    problem = service.http.post(f"{base}/evaluate", json=body)
    assert problem.status_code == 422, problem.text
    body = {"queries": [{"query": "x", "relevant_labels": ["green triangle"]}]}
    assert run(service, collection["id"], "evaluate", body)["status"] == "succeeded"
    too_long = service.http.patch(f"{base}/images/{second['id']}", json={"labels": ["x" * 201]})
    assert too_long.status_code == 422
    assert "labels" in too_long.json()["errors"][0]["field"]
    unknown = service.http.patch(f"{base}/images/nope", json={"labels": []})
    assert unknown.status_code == 404
    cleared = service.http.patch(f"{base}/images/{second['id']}", json={"labels": []})
    assert cleared.json()["labels"] == []


def test_a_deleted_image_is_no_distractor_in_evaluation(service: Service) -> None:
    collection = create(service)
    base = f"/v1/collections/{collection['id']}"
    ingest(
        service,
        collection["id"],
        [(f"{i}.png", p) for i, p in enumerate(distinct_pngs(4, (40, 40)))],
    )
    # The order the query ranks them in; the second becomes the one to find.
    query = {"query": "a photo of a shape", "min_score": -1, "top_k": 4}
    order = [
        h["image_id"] for h in run(service, collection["id"], "search", query)["result"]["hits"]
    ]
    for image_id in order:
        labels = ["target"] if image_id == order[1] else ["other"]
        assert service.http.patch(f"{base}/images/{image_id}", json={"labels": labels}).is_success
    body = {"queries": [{"query": query["query"], "relevant_labels": ["target"]}], "ks": [1]}

    def evaluated() -> dict:
        return run(service, collection["id"], "evaluate", body)["result"]

    before = evaluated()
    assert (before["images"], before["queries"][0]["none"]["rank"]) == (4, 2)
    # The image ranked above it deleted: its row stays in the index, but is ranked past.
    assert service.http.delete(f"{base}/images/{order[0]}").status_code == 204
    after = evaluated()
    assert (after["images"], after["queries"][0]["none"]["rank"]) == (3, 1)
    assert after["modes"]["none"]["recall_at"]["1"] == 1.0

"""Several models in one deployment: a worker pool per model, jobs routed by their ``model``.

Two pools share one Redis and one API (CLIPQ_MODELS names both): a random CLIP, the
default, and a random SigLIP (sigmoid scores). Each job says which model ran it; a
collection stays bound to the model it was made for.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from tests.e2e.conftest import (
    Service,
    env_on,
    private_redis,
    running_service,
    start_worker,
    stop,
)
from tests.support import build_random_siglip, png_bytes

RED, BLUE = png_bytes((220, 30, 30)), png_bytes((30, 30, 220))


@pytest.fixture(scope="module")
def two_models(
    base_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Service, str, str]]:
    folder = tmp_path_factory.mktemp("routing")
    clip = base_env["CLIPQ_CLIP_MODEL"]
    siglip = f"hf:{build_random_siglip(folder / 'siglip')}"
    with private_redis(folder / "redis") as server:
        env = env_on(base_env, server, CLIPQ_MODELS=f"{clip},{siglip}", CLIPQ_BATCH_SIZE="8")
        with running_service(env, folder / "logs") as service:
            second = start_worker({**env, "CLIPQ_CLIP_MODEL": siglip}, folder / "siglip.log", "sig")
            try:
                deadline = time.monotonic() + 120
                while len(service.http.get("/v1/models").json()["models"]) < 2:
                    assert time.monotonic() < deadline, "the SigLIP worker did not come up"
                    assert second.poll() is None, "the SigLIP worker exited"
                    time.sleep(0.5)
                yield service, clip, siglip
            finally:
                stop(second)


def classify(service: Service, image: bytes, **form: str) -> dict:
    response = service.http.post(
        "/v1/classify",
        files=[("images", ("a.png", image, "image/png"))],
        data={"labels": ["red", "blue", "green"], "prompt_template": "{}", **form},
    )
    assert response.status_code == 202, response.text
    return response.json()


def test_models_lists_each_pool_with_its_shape(two_models: tuple[Service, str, str]) -> None:
    service, clip, siglip = two_models
    listing = service.http.get("/v1/models").json()
    assert listing["default_model"] == clip and listing["configured"] == [clip, siglip]
    by_id = {model["id"]: model for model in listing["models"]}
    assert (by_id[clip]["family"], by_id[clip]["scoring"]) == ("clip", "softmax")
    assert (by_id[siglip]["family"], by_id[siglip]["scoring"]) == ("siglip", "sigmoid")
    assert (by_id[siglip]["embedding_dim"], by_id[siglip]["input_size"]) == (32, 32)
    assert by_id[siglip]["context_length"] == 16 and by_id[clip]["context_length"] == 32


def test_jobs_run_on_the_model_they_name(two_models: tuple[Service, str, str]) -> None:
    service, clip, siglip = two_models
    asked = [None, siglip, clip, siglip, None, siglip]  # interleaved: batching keeps them apart
    jobs = [classify(service, image, **({"model": m} if m else {}))
            for m, image in zip(asked, [RED, BLUE] * 3, strict=True)]  # fmt: skip
    for model, job in zip(asked, jobs, strict=True):
        done = service.wait_for(job["id"])
        assert done["status"] == "succeeded", done
        expected = model or clip
        assert done["model"] == expected.removeprefix("hf:") and done["result"]["model"] == expected
        scores = [p["probability"] for p in done["result"]["images"][0]["predictions"]]
        if expected == siglip:  # each label on its own
            assert abs(sum(scores) - 1) > 1e-3
        else:
            assert sum(scores) == pytest.approx(1, abs=1e-5)
    # the bare id and the hf: spelling name the same model
    bare = classify(service, RED, model=siglip.removeprefix("hf:"))
    assert service.wait_for(bare["id"])["result"]["model"] == siglip


def test_a_model_not_served_is_refused_naming_the_field(
    two_models: tuple[Service, str, str],
) -> None:
    service, _, _ = two_models
    response = service.http.post(
        "/v1/classify",
        files=[("images", ("a.png", RED, "image/png"))],
        data={"labels": ["red"], "model": "hf:openai/clip-vit-large-patch14"},
    )
    assert response.status_code == 422, response.text
    problem = response.json()
    assert [e["field"] for e in problem["errors"]] == ["model"]
    assert "not served here" in problem["errors"][0]["message"]
    created = service.http.post("/v1/collections", json={"name": "x", "model": "nope"})
    assert created.status_code == 422 and created.json()["errors"][0]["field"] == "model"


def test_a_collection_stays_bound_to_its_model(two_models: tuple[Service, str, str]) -> None:
    service, _, siglip = two_models
    created = service.http.post("/v1/collections", json={"name": "sig", "model": siglip})
    assert created.status_code == 201, created.text
    collection = created.json()
    assert collection["model"] == siglip
    ingest = service.http.post(
        f"/v1/collections/{collection['id']}/images",
        files=[("images", (f"{n}.png", data, "image/png")) for n, data in enumerate([RED, BLUE])],
    )
    assert ingest.status_code == 202, ingest.text
    done = service.wait_for(ingest.json()["id"])
    assert done["status"] == "succeeded" and done["model"] == siglip.removeprefix("hf:"), done
    search = service.http.post(
        f"/v1/collections/{collection['id']}/search",
        json={"query": "red", "top_k": 2, "min_score": -1},
    )
    assert search.status_code == 202, search.text
    found = service.wait_for(search.json()["id"])
    assert found["status"] == "succeeded", found
    assert len(found["result"]["hits"]) == 2


def test_the_default_collection_model_is_the_deployments_first(
    two_models: tuple[Service, str, str],
) -> None:
    service, clip, _ = two_models
    created = service.http.post("/v1/collections", json={"name": "default"})
    assert created.status_code == 201 and created.json()["model"] == clip

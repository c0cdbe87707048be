"""Meaning, end to end: the embedded models through the real service understand their world.

The service here runs on the shipped defaults (no CLIPQ_CLIP_MODEL or
CLIPQ_DETECTOR_MODEL), exactly as `make run` does.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterator

import numpy as np
import pytest

from clipcore.lab.world import render_object, render_scene, zero_shot_labels
from clipcore.taxonomy import load_default_taxonomy
from tests.e2e.conftest import Service, env_on, private_redis, running_service


def png(image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def thing(colour: str, shape: str, seed: int = 0, scale: float = 0.55) -> bytes:
    return png(render_object(colour, shape, scale=scale, rotation=seed * 17.0, seed=seed).image)


@pytest.fixture(scope="module")
def embedded(base_env, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    folder = tmp_path_factory.mktemp("embedded")
    env = {
        k: v for k, v in base_env.items() if k not in ("CLIPQ_CLIP_MODEL", "CLIPQ_DETECTOR_MODEL")
    }
    with private_redis(folder / "redis") as server:
        env = env_on(env, server, CLIPQ_CROP_MIN_SCORE="0.5", CLIPQ_BATCH_SIZE="32")
        with running_service(env, folder / "logs") as service:
            yield service


def classify(service: Service, images: list[tuple[str, bytes]], labels: list[str]) -> dict:
    files = [("images", (name, data, "image/png")) for name, data in images]
    files += [("labels", (None, label)) for label in labels]
    response = service.http.post("/v1/classify", files=files)
    assert response.status_code == 202, response.text
    job = service.wait_for(response.json()["id"])
    assert job["status"] == "succeeded", job
    return job["result"]


@pytest.mark.parametrize(
    ("colour", "shape", "others"),
    [
        ("red", "circle", ["blue square", "green star"]),
        ("blue", "square", ["red circle", "yellow triangle"]),
        ("yellow", "triangle", ["purple cross", "green circle"]),
        ("green", "star", ["orange square", "red triangle"]),
    ],
)
def test_a_shape_is_classified_as_what_it_is(
    embedded: Service, colour: str, shape: str, others: list[str]
) -> None:
    result = classify(
        embedded, [("x.png", thing(colour, shape, seed=3))], [*others, f"{colour} {shape}"]
    )
    assert result["model"] == "embedded:clip-tiny"
    assert result["images"][0]["predictions"][0]["label"] == f"{colour} {shape}"


def test_all_thirty_colour_shape_pairs_in_one_job(embedded: Service) -> None:
    """Colour and shape together, 30-way: the model card's figure, through the service."""
    pairs = zero_shot_labels()
    images = [
        (f"{c}-{s}.png", thing(c, s, seed=i, scale=0.4 + 0.01 * i))
        for i, (c, s) in enumerate(pairs)
    ]
    result = classify(embedded, images, [f"{c} {s}" for c, s in pairs])
    top = [image["predictions"][0]["label"] for image in result["images"]]
    colour_right = sum(t.split()[0] == c for t, (c, _) in zip(top, pairs, strict=True))
    both_right = sum(t == f"{c} {s}" for t, (c, s) in zip(top, pairs, strict=True))
    assert colour_right == 30
    # these objects sit exactly at the image centre, the shipped model's weak spot: 25/30
    # measured here, against 98.7 % on the card's randomly placed objects
    assert both_right >= 22, top


SHAPES_TAXONOMY = {
    "version": "1.0.0",
    "name": "warm-and-cool",
    "scenes": [
        {
            "name": name,
            "description": f"{name.replace('_', ' ')} shapes",
            "use_cases": ["tests"],
            "prompts": [
                f"a photo of a {c} {s}." for c in colours for s in ("circle", "square", "star")
            ],
            "recommendations": {
                slot: matcher for slot in ("primary", "alternative", "fast", "accurate")
            },
        }
        for name, colours, matcher in [
            (
                "warm",
                ("red", "orange", "yellow"),
                {"name": "SIFT", "speed": "fast", "reason": "warm"},
            ),
            (
                "cool",
                ("blue", "green", "purple"),
                {"name": "DISK", "speed": "slow", "reason": "cool"},
            ),
        ]
    ],
}


def test_scene_logic_on_a_taxonomy_the_model_understands(embedded: Service) -> None:
    images = [
        ("r.png", thing("red", "circle")),
        ("o.png", thing("orange", "square", 1)),
        ("y.png", thing("yellow", "star", 2)),
        ("b.png", thing("blue", "circle", 4)),
    ]
    files = [("images", (n, d, "image/png")) for n, d in images]
    files.append(("taxonomy", (None, json.dumps(SHAPES_TAXONOMY))))
    job = embedded.wait_for(embedded.http.post("/v1/scenes", files=files).json()["id"])
    result = job["result"]
    tops = [image["prediction"]["top_scene"] for image in result["images"]]
    assert tops == ["warm", "warm", "warm", "cool"]
    assert [i["prediction"]["recommended_matcher"]["name"] for i in result["images"]] == [
        "SIFT", "SIFT", "SIFT", "DISK",
    ]  # fmt: skip
    summary = result["summary"]
    assert summary["scene_distribution"] == {"warm": 75.0, "cool": 25.0}
    assert summary["dominant_scenes"] == ["warm", "cool"]  # both hold more than 20 %
    assert summary["overall"]["matcher"]["name"] in ("SIFT", "DISK")


def test_default_taxonomy_answers_with_its_matchers(embedded: Service) -> None:
    body = embedded.http.post(
        "/api/classify", files={"image": ("a.png", thing("red", "circle"))}
    ).json()
    taxonomy = load_default_taxonomy()
    top = body["top_prediction"]
    assert (
        top["recommended_model"]["name"] == taxonomy.scene(top["type"]).recommendations.primary.name
    )


@pytest.fixture(scope="module")
def shapes_collection(embedded: Service) -> str:
    collection = embedded.http.post("/v1/collections", json={"name": "world"}).json()
    rng = np.random.default_rng(5)
    pairs = [
        ("red", "circle"),
        ("blue", "square"),
        ("green", "star"),
        ("yellow", "triangle"),
        ("purple", "cross"),
    ]
    files = []
    for index, (colour, shape) in enumerate(pairs):
        files.append(
            ("images", (f"{colour}-{shape}.png", thing(colour, shape, seed=index), "image/png"))
        )
        files.append(("labels", (None, f"{colour} {shape}")))
    for index in range(10):  # clutter of other colours and shapes
        scene = render_scene(
            rng, 128, 3, colours=["orange"] * 3, shapes=["circle", "square", "star"], captions=False
        )
        files.append(("images", (f"clutter-{index}.png", png(scene.image), "image/png")))
        files.append(("labels", (None, "clutter")))
    job = embedded.wait_for(
        embedded.http.post(f"/v1/collections/{collection['id']}/images", files=files).json()["id"],
        timeout=180,
    )
    assert job["result"]["added"] == 15
    return collection["id"]


def search(service: Service, collection_id: str, **body) -> dict:
    response = service.http.post(f"/v1/collections/{collection_id}/search", json=body)
    return service.wait_for(response.json()["id"])["result"]


@pytest.mark.parametrize("rerank", ["none", "crops"])
def test_search_puts_the_right_image_first(
    embedded: Service, shapes_collection: str, rerank: str
) -> None:
    for colour, shape in [("red", "circle"), ("green", "star"), ("purple", "cross")]:
        result = search(
            embedded,
            shapes_collection,
            query=f"a photo of a {colour} {shape}.",
            top_k=3,
            rerank=rerank,
        )
        assert not result["no_match"]
        assert result["hits"][0]["filename"] == f"{colour}-{shape}.png"


def like(service: Service, collection_id: str, name: str, data: bytes, **form) -> dict:
    response = service.http.post(
        f"/v1/collections/{collection_id}/similar",
        files=[("image", (name, data, "image/png"))],
        data={key: str(value) for key, value in form.items()},
    )
    assert response.status_code == 202, response.text
    return service.wait_for(response.json()["id"])["result"]


@pytest.mark.parametrize("rerank", ["none", "crops"])
def test_find_similar_puts_the_same_thing_first(
    embedded: Service, shapes_collection: str, rerank: str
) -> None:
    for colour, shape in [("red", "circle"), ("yellow", "triangle")]:
        other = thing(colour, shape, seed=99, scale=0.35)  # another drawing, another size
        result = like(embedded, shapes_collection, "mine.png", other, rerank=rerank, top_k=3)
        assert result["hits"][0]["filename"] == f"{colour}-{shape}.png"
    # the very bytes of an image of the collection: itself, embedded the way ingest did
    same = like(embedded, shapes_collection, "again.png", thing("blue", "square", seed=1))
    assert same["hits"][0]["filename"] == "blue-square.png"
    assert same["hits"][0]["image_score"] == pytest.approx(1.0, abs=2e-3)


def test_find_similar_by_id_leaves_the_image_out(embedded: Service, shapes_collection: str) -> None:
    page = embedded.http.get(f"/v1/collections/{shapes_collection}/images").json()
    star = next(image for image in page["images"] if image["filename"] == "green-star.png")
    response = embedded.http.post(
        f"/v1/collections/{shapes_collection}/images/{star['id']}/similar", json={"top_k": 14}
    )
    result = embedded.wait_for(response.json()["id"])["result"]
    names = [hit["filename"] for hit in result["hits"]]
    assert len(names) == 14 and "green-star.png" not in names


def test_out_of_domain_query_is_no_match(embedded: Service, shapes_collection: str) -> None:
    result = search(embedded, shapes_collection, query="a photo of a dog playing in the park.")
    assert result["no_match"] is True and result["hits"] == []


def test_evaluation_finds_every_label(embedded: Service, shapes_collection: str) -> None:
    response = embedded.http.post(
        f"/v1/collections/{shapes_collection}/evaluate", json={"ks": [1, 5]}
    )
    result = embedded.wait_for(response.json()["id"])["result"]
    shapes = [q for q in result["queries"] if q["relevant_labels"] != ["clutter"]]
    assert all(q["none"]["rank"] == 1 for q in shapes), shapes


# Off-topic queries, none of them among the training distractors or the null prompts.
OFF_TOPIC = [
    "quarterly tax report",
    "a bowl of ramen",
    "two zebras grazing",
    "a pair of scissors",
    "a turquoise circle",
    "an octagon",
    "lorem ipsum dolor",
]


@pytest.mark.parametrize("rerank", ["none", "crops"])
def test_off_topic_queries_are_no_match_without_any_threshold(
    embedded: Service, shapes_collection: str, rerank: str
) -> None:
    for query in OFF_TOPIC:
        result = search(embedded, shapes_collection, query=query, rerank=rerank)
        assert result["decision"] == "calibrated"
        assert result["no_match"] is True, (query, result["best_score"], result["min_score"])


def test_min_score_still_overrides_the_collection_threshold(
    embedded: Service, shapes_collection: str
) -> None:
    result = search(embedded, shapes_collection, query=OFF_TOPIC[0], min_score=-1)
    assert result["decision"] == "min_score" and result["min_score"] == -1
    assert result["no_match"] is False and result["hits"]


def photograph(name: str) -> bytes:
    from clipcore.lab.photos import photograph as photo

    return png(photo(name))


def test_photographs_are_out_of_domain_and_shapes_are_not(embedded: Service) -> None:
    images = [(f"{name}.png", photograph(name)) for name in ("coffee", "brick", "astronaut")]
    images += [("red.png", thing("red", "circle")), ("blue.png", thing("blue", "square", 1))]
    result = classify(embedded, images, ["dog", "red circle", "blue square"])
    verdicts = {i["filename"]: (i["domain"]["in_domain"], i["uncertain"]) for i in result["images"]}
    assert verdicts == {
        "coffee.png": (False, True),
        "brick.png": (False, True),
        "astronaut.png": (False, True),
        "red.png": (True, False),
        "blue.png": (True, False),
    }


def test_a_photograph_gets_an_uncertain_scene(embedded: Service) -> None:
    files = [("images", ("brick.png", photograph("brick"), "image/png"))]
    job = embedded.wait_for(embedded.http.post("/v1/scenes", files=files).json()["id"])
    prediction = job["result"]["images"][0]["prediction"]
    assert prediction["domain"]["in_domain"] is False
    assert prediction["uncertain"] is True

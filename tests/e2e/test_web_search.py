"""Search, evaluation and classify as a person reads them, in a real browser: search first on a
phone, hits under the threshold set apart, the rank off the pictures, the crop box said for
what it is, the score explained, one model name, evaluation errors by line, one label's 100 %.

What the page says is checked against what the API answered. Screenshots at 1280 and 390 px
go to ``artifacts/web/``.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, Page, expect

from tests.e2e.browser import PHONE, checked_page, launch_chromium
from tests.e2e.conftest import Service, env_on, private_redis, running_service
from tests.e2e.test_models import shipped_defaults
from tests.e2e.test_web import RED_CIRCLE, drop_files, shape_png, snap, submitted_job

COLOURS = ("red", "blue", "green", "yellow", "orange")
SHAPES = ("circle", "square", "triangle")


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with launch_chromium() as chromium:
        yield chromium


@pytest.fixture(scope="module")
def service(base_env, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    """The shipped models (as `make run` serves them), whose scores mean something on shapes."""
    folder = tmp_path_factory.mktemp("search")
    with private_redis(folder / "redis") as server:
        env = env_on(shipped_defaults(base_env), server)
        with running_service(env, folder / "logs") as service:
            yield service


@pytest.fixture
def page(browser: Browser, service: Service, request: pytest.FixtureRequest) -> Iterator[Page]:
    with checked_page(browser, service.base_url, request) as page:
        yield page


@pytest.fixture(scope="module")
def shapes(service: Service) -> dict:
    """A collection of 30 coloured shapes, labelled, in three frame shapes."""
    collection = service.http.post(
        "/v1/collections", json={"name": f"search shapes {uuid.uuid4().hex[:6]}"}
    ).json()
    sizes = [(320, 240), (240, 320), (300, 300)]
    files, labels = [], []
    for i in range(30):
        colour, shape = COLOURS[i % 5], SHAPES[(i // 5) % 3]
        files.append(
            (
                "images",
                (
                    f"{colour}_{shape}_{i:02d}.png",
                    shape_png(colour, shape, sizes[i % 3]),
                    "image/png",
                ),
            )
        )
        labels.append(("labels", (None, f"{colour} {shape}")))
    job = service.http.post(f"/v1/collections/{collection['id']}/images", files=files + labels)
    assert service.wait_for(job.json()["id"])["status"] == "succeeded"
    return collection


def choose(page: Page, collection: dict) -> None:
    page.get_by_role("tab", name="Collections & search").click()
    expect(page.locator("#collections-manage")).not_to_have_attribute("aria-busy", "true")
    page.locator("#collection-select").select_option(collection["id"])


def searched(page: Page, service: Service, query: str, crops: bool) -> dict:
    page.locator("#search-query").fill(query)
    page.locator("#search-rerank").set_checked(crops)
    path = f"/v1/collections/{page.locator('#collection-select').input_value()}/search"
    job_id = submitted_job(page, path, lambda: page.locator("#search-run").click())
    result = service.wait_for(job_id)["result"]
    expect(page.locator("#search-results .search-head")).to_be_visible()
    return result


def test_search_reads_for_what_it_is(page: Page, service: Service, shapes: dict) -> None:
    choose(page, shapes)
    page.locator("#search-topk").fill("12")
    result = searched(page, service, "a red circle", crops=True)
    assert not result["no_match"] and result["decision"] == "calibrated"
    threshold = result["min_score"]
    hits = result["hits"]
    over = [h for h in hits if h["score"] >= threshold]
    under = [h for h in hits if h["score"] < threshold]
    assert over and under, "the query should give hits on both sides of the threshold"

    # Matches first; those under the threshold in a section of their own, said to be so.
    matches = page.locator("#search-results > ol.hit-grid .hit")
    expect(matches).to_have_count(len(over))
    below = page.locator(".below-threshold .hit")
    expect(below).to_have_count(len(under))
    expect(page.locator(".below-threshold h3")).to_contain_text(f"{threshold:.3f}")
    expect(page.locator(".below-threshold h3")).to_contain_text("probably not “a red circle”")
    shown = [h.get_attribute("data-image-id") for h in matches.all() + below.all()]
    assert shown == [h["image_id"] for h in hits]
    expect(below.first.locator(".rank")).to_have_text(f"#{len(over) + 1}")

    # The rank is not drawn over the picture (where the matched crop's box may be).
    for hit in (matches.first, below.first):
        rank, frame = hit.evaluate(
            """(li) => [li.querySelector('.rank'), li.querySelector('.thumb-frame')]
                .map((e) => e.getBoundingClientRect().toJSON())"""
        )
        assert rank["height"] > 0 and rank["top"] >= frame["bottom"], (rank, frame)

    # The box is "the crop that decided" only where the crop's score is the score (max).
    assert result["fusion"] == "max"
    for element, hit in zip(matches.all() + below.all(), hits, strict=True):
        note = element.locator(".crop-note")
        if hit["crop_box"] is None:
            expect(note).to_have_count(0)
        elif hit["crop_score"] > hit["image_score"]:
            expect(note).to_have_text("Box: the crop that decided the score")
        else:
            expect(note).to_have_text("Box: its best crop; the whole image scored higher")
    decided = [h for h in hits if h["crop_box"] and h["crop_score"] > h["image_score"]]
    assert 0 < len(decided) < len(hits), "both kinds of box should be on the page"

    # What a score is, and what this threshold does.
    help_ = page.locator("#search-results .score-help")
    help_.locator("summary").click()
    expect(help_).to_contain_text("cosine similarity")
    expect(help_).to_contain_text("well above the best scores unrelated text reaches in it")
    snap(page, "search-threshold")


def test_search_comes_first_on_a_phone(page: Page, service: Service, shapes: dict) -> None:
    page.set_viewport_size(PHONE)
    choose(page, shapes)
    expect(page.locator("#collection-new")).not_to_have_attribute("open", "")
    search = page.locator("#search-form").bounding_box()
    ingest = page.locator("#ingest-form").bounding_box()
    manage = page.locator("#collections-manage").bounding_box()
    assert search and ingest and manage
    assert manage["y"] < search["y"] < ingest["y"]
    # Under the collection picker, not screens below it.
    assert search["y"] - (manage["y"] + manage["height"]) < 40
    assert manage["height"] < 320, manage


def test_one_model_name_everywhere(page: Page, service: Service, shapes: dict) -> None:
    model = service.http.get("/v1/models").json()["models"][0]
    assert model["id"] != model["model"]  # "embedded" and "embedded:clip-tiny"
    choose(page, shapes)
    expect(page.locator("#collection-info")).to_contain_text(model["id"])
    page.get_by_role("tab", name="Classify").click()
    drop_files(page, "#classify-drop", [RED_CIRCLE])
    page.locator("#classify-labels").fill("red circle, blue square")
    job_id = submitted_job(
        page, "/v1/classify", lambda: page.get_by_role("button", name="Classify 1 image").click()
    )
    assert service.wait_for(job_id)["result"]["model"] == model["model"]
    head = page.locator("#classify-results .results-head .hint")
    expect(head).to_have_text(model["id"])
    snap(page, "classify-model-name")
    assert model["model"] not in page.locator("main").inner_text()


def test_one_label_says_why_it_is_100_percent(page: Page, service: Service) -> None:
    page.get_by_role("tab", name="Classify").click()
    drop_files(page, "#classify-drop", [RED_CIRCLE])
    page.locator("#classify-labels").fill("red circle")
    job_id = submitted_job(
        page, "/v1/classify", lambda: page.get_by_role("button", name="Classify 1 image").click()
    )
    result = service.wait_for(job_id)["result"]
    assert result["images"][0]["predictions"][0]["probability"] > 0.9999
    expect(page.locator("#classify-results h2")).to_have_text("1 image · 1 label")
    note = page.locator(".sole-label")
    expect(note).to_contain_text("With one label every image scores 100%")
    expect(note).to_contain_text("“red circle, something else”")
    # With two labels the note is gone.
    page.locator("#classify-labels").fill("red circle, blue square")
    submitted_job(
        page, "/v1/classify", lambda: page.get_by_role("button", name="Classify 1 image").click()
    )
    expect(page.locator("#classify-results h2")).to_have_text("1 image · 2 labels")
    expect(page.locator(".sole-label")).to_have_count(0)


def test_evaluation_errors_name_the_line(page: Page, service: Service, shapes: dict) -> None:
    choose(page, shapes)
    # A blank line between: the second query is on line 3, and the page says line 3.
    page.locator("#evaluate-queries").fill("a red circle => red circle\n\na blue thing => nope")
    path = f"/v1/collections/{shapes['id']}/evaluate"
    with page.expect_response(lambda r: r.url.endswith(path)) as answer:
        page.get_by_role("button", name="Run evaluation").click()
    problem = answer.value.json()
    assert problem["errors"][0]["field"] == "queries[1].relevant_labels"
    error = page.locator("#evaluate-queries-error")
    expect(error).to_have_text(f"Line 3: {problem['errors'][0]['message']}.")
    expect(page.locator("#evaluate-queries")).to_have_attribute("aria-invalid", "true")
    expect(page.locator("#evaluate-status")).to_have_text("")
    snap(page, "evaluation-line-error")
    page.locator("#evaluate-ks").fill("none")
    page.get_by_role("button", name="Run evaluation").click()
    expect(page.locator("#evaluate-ks-error")).to_have_text("Give K values such as 1, 5, 10.")
    expect(page.locator("#evaluate-queries-error")).to_have_text("")  # cleared on the next try
    # Fixed, it runs, and the field errors go.
    page.locator("#evaluate-ks").fill("1, 5")
    page.locator("#evaluate-queries").fill("a red circle => red circle")
    page.get_by_role("button", name="Run evaluation").click()
    expect(page.locator("#evaluate-results table.metrics").first).to_be_visible()
    expect(page.locator("#evaluate-ks-error")).to_have_text("")
    expect(page.locator("#evaluate-queries")).not_to_have_attribute("aria-invalid", "true")

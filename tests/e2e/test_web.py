"""The web page in a real browser (Debian's chromium, driven by Playwright) against the service.

The service runs a random tiny CLIP, so its answers mean nothing: these tests check what a
person sees against what the API answered for the same job — the scene on each card, the
chart, the first search hit — and that errors appear next to what caused them.
Screenshots of every state, at desktop and phone widths, go to ``artifacts/web/``.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from PIL import Image, ImageDraw
from playwright.sync_api import Browser, Page, Route, expect

from tests.e2e.browser import ARTIFACTS, DESKTOP, PHONE, checked_page, launch_chromium
from tests.e2e.conftest import Service
from tests.support import distinct_pngs

TIMEOUT_MS = 60_000
expect.set_options(timeout=TIMEOUT_MS)


# --- images a person would drop ------------------------------------------------------------


def shape_png(colour: str, shape: str, size: tuple[int, int] = (320, 240)) -> bytes:
    """A coloured shape on a grey background, like the embedded model's world."""
    image = Image.new("RGB", size, (128, 128, 128))
    draw = ImageDraw.Draw(image)
    w, h = size
    box = (w * 0.3, h * 0.25, w * 0.7, h * 0.75)
    if shape == "circle":
        draw.ellipse(box, fill=colour)
    elif shape == "square":
        draw.rectangle(box, fill=colour)
    else:
        draw.polygon([(w * 0.5, h * 0.2), (w * 0.25, h * 0.8), (w * 0.75, h * 0.8)], fill=colour)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def file_payload(name: str, data: bytes, mime: str = "image/png") -> dict[str, Any]:
    return {"name": name, "mimeType": mime, "buffer": data}


RED_CIRCLE = file_payload("red_circle_01.png", shape_png("red", "circle"))
BLUE_SQUARE = file_payload("blue_square_01.png", shape_png("blue", "square", (240, 320)))
GREEN_TRIANGLE = file_payload("green_triangle_01.png", shape_png("green", "triangle"))
NOTES = file_payload("notes.txt", b"these are my notes, not an image\n", "text/plain")


# --- fixtures and helpers --------------------------------------------------------------------


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with launch_chromium() as chromium:
        yield chromium


@pytest.fixture
def page(browser: Browser, service: Service, request: pytest.FixtureRequest) -> Iterator[Page]:
    """The page at ``/``; a failing test leaves a screenshot of what the page showed."""
    with checked_page(browser, service.base_url, request) as page:
        yield page


def snap(page: Page, name: str) -> None:
    """Screenshots at desktop and phone widths; at phone width nothing may scroll sideways."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=ARTIFACTS / f"{name}-desktop.png", full_page=True)
    page.set_viewport_size(PHONE)
    try:
        page.wait_for_timeout(150)  # one layout pass after the resize
        overflow = page.evaluate("document.documentElement.scrollWidth")
        assert overflow <= PHONE["width"], f"{name}: the page is {overflow}px wide on a phone"
        page.screenshot(path=ARTIFACTS / f"{name}-phone.png", full_page=True)
    finally:
        page.set_viewport_size(DESKTOP)


def submitted_job(page: Page, path_end: str, action) -> str:
    """Run ``action`` and return the id of the job the page POSTs to a URL ending ``path_end``."""
    with page.expect_response(
        lambda r: r.request.method == "POST" and r.url.endswith(path_end)
    ) as response_info:
        action()
    response = response_info.value
    assert response.status == 202, response.text()
    return response.json()["id"]


def scene_label(name: str) -> str:
    return name.replace("_", " ")


def record_progress(page: Page, selector: str) -> None:
    """Keep every text the progress line shows in ``window.progressSeen``."""
    page.evaluate(
        """(selector) => {
            window.progressSeen = [];
            const el = document.querySelector(selector);
            new MutationObserver(() => window.progressSeen.push(el.textContent))
                .observe(el, {childList: true, characterData: true, subtree: true});
        }""",
        selector,
    )


def drop_files(page: Page, selector: str, files: list[dict[str, Any]]) -> None:
    """Drag files onto ``selector`` and drop them, as a person does from a file manager."""
    data_transfer = page.evaluate_handle(
        """(files) => {
            const transfer = new DataTransfer();
            for (const f of files) {
                transfer.items.add(new File([new Uint8Array(f.bytes)], f.name, {type: f.type}));
            }
            return transfer;
        }""",
        [{"name": f["name"], "type": f["mimeType"], "bytes": list(f["buffer"])} for f in files],
    )
    page.dispatch_event(selector, "dragenter", {"dataTransfer": data_transfer})
    expect(page.locator(selector)).to_have_class(re.compile(r"\bdragging\b"))
    page.dispatch_event(selector, "drop", {"dataTransfer": data_transfer})
    expect(page.locator(selector)).not_to_have_class(re.compile(r"\bdragging\b"))


def downloaded_text(page: Page, button_name: str) -> str:
    with page.expect_download() as download_info:
        page.get_by_role("button", name=button_name).click()
    return Path(download_info.value.path()).read_text()


def api_search(service: Service, collection_id: str, **body: Any) -> dict[str, Any]:
    response = service.http.post(f"/v1/collections/{collection_id}/search", json=body)
    assert response.status_code == 202, response.text
    job = service.wait_for(response.json()["id"])
    assert job["status"] == "succeeded", job
    return job["result"]


# --- Scenes -------------------------------------------------------------------------------


def test_scenes_batch_shows_cards_chart_and_recommendations(page: Page, service: Service) -> None:
    page.get_by_role("radio", name="Fast").check()
    record_progress(page, "#scenes-job .job-text")
    job_id = submitted_job(
        page, "/v1/scenes", lambda: page.set_input_files("#scenes-files", [RED_CIRCLE, BLUE_SQUARE])
    )
    cards = page.locator(".scene-card")
    expect(cards).to_have_count(2)
    result = service.wait_for(job_id)["result"]
    assert result["speed"] == "fast"

    # The progress bar followed the job to its end.
    assert "2 of 2 images" in page.evaluate("window.progressSeen")
    expect(page.locator("#scenes-job")).to_be_hidden()
    expect(page.locator("#scenes-status")).to_have_text("Done.")

    # Each card: its file, the API's top scene, confidence and matcher.
    for card, image in zip(cards.all(), result["images"], strict=True):
        prediction = image["prediction"]
        expect(card.locator(".file-title")).to_have_text(image["filename"])
        expect(card.locator(".scene-name")).to_have_text(scene_label(prediction["top_scene"]))
        expect(card.locator(".confidence")).to_have_text(f"{prediction['confidence'] * 100:.1f}%")
        matcher = prediction["recommended_matcher"]
        expect(card.locator(".matcher-name strong")).to_have_text(matcher["name"])
        expect(card.locator(".matcher-name .badge")).to_have_text(matcher["speed"])
        expect(card.locator(".reason")).to_have_text(matcher["reason"])
        expect(card.locator("img")).to_have_js_property("complete", True)
        assert card.locator("img").evaluate("img => img.naturalWidth") > 0

    # The dataset summary: chart, dominant scenes, recommendation cards, overall matcher.
    summary = result["summary"]
    bars = page.locator(".chart .bar-row")  # every scene; those no image fell into at 0 %
    expect(bars).to_have_count(len(result["images"][0]["prediction"]["scores"]))
    shown = {
        bar.get_attribute("data-scene"): bar.locator(".bar-value").inner_text()
        for bar in bars.all()
    }
    distribution = summary["scene_distribution"]
    assert shown == {s: f"{distribution.get(s, 0):.1f}%" for s in shown}
    assert set(distribution) <= set(shown)
    dominant = page.locator(".dominant .chip")
    expect(dominant).to_have_text([scene_label(s) for s in summary["dominant_scenes"]])
    recommendations = page.locator(".recommendation")
    expect(recommendations).to_have_count(len(summary["recommended_matchers"]))
    for card, rec in zip(recommendations.all(), summary["recommended_matchers"], strict=True):
        expect(card).to_have_attribute("data-scene", rec["scene"])
        expect(card.locator(".matcher-name strong")).to_have_text(rec["matcher"]["name"])
    expect(page.locator(".overall .matcher-name strong")).to_have_text(
        summary["overall"]["matcher"]["name"]
    )
    expect(page.locator(".overall-reason")).to_have_text(summary["overall"]["reason"])
    snap(page, "scenes-batch")

    # Downloads: the job's result as JSON, and one CSV row per image.
    assert json.loads(downloaded_text(page, "Download JSON")) == result
    rows = list(csv.DictReader(io.StringIO(downloaded_text(page, "Download CSV"))))
    assert [r["filename"] for r in rows] == [i["filename"] for i in result["images"]]
    assert [r["top_scene"] for r in rows] == [
        i["prediction"]["top_scene"] for i in result["images"]
    ]
    assert [r["matcher"] for r in rows] == [
        i["prediction"]["recommended_matcher"]["name"] for i in result["images"]
    ]
    assert {r["model"] for r in rows} == {result["model"]}


def test_single_image_by_keyboard_shows_all_scores_and_pipeline(
    page: Page, service: Service
) -> None:
    with page.expect_file_chooser() as chooser_info:
        page.locator("#scenes-drop").press("Enter")
    job_id = submitted_job(
        page, "/v1/scenes", lambda: chooser_info.value.set_files([GREEN_TRIANGLE])
    )
    card = page.locator(".scene-card")
    expect(card).to_have_count(1)
    prediction = service.wait_for(job_id)["result"]["images"][0]["prediction"]
    expect(page.locator(".summary")).to_have_count(0)  # one image: no dataset summary

    # A single result opens its scores: every scene, most probable first, as the API has them.
    scores = card.locator(".all-scores")
    expect(scores).to_have_attribute("open", "")
    expect(scores.locator(".score-name")).to_have_text(
        [scene_label(s["scene"]) for s in prediction["scores"]]
    )
    expect(scores.locator(".score-value")).to_have_text(
        [f"{s['probability'] * 100:.1f}%" for s in prediction["scores"]]
    )

    # The pipeline config to copy names the recommended matcher's hloc/COLMAP configuration.
    card.get_by_text("Pipeline config").click()
    pipeline = prediction["recommended_matcher"]["pipeline"]
    config = card.locator(".pipeline pre")
    expect(config).to_be_visible()
    if pipeline["hloc"]:
        expect(config).to_contain_text(pipeline["hloc"]["matcher"])
    if pipeline["colmap"]:
        expect(config).to_contain_text(f"colmap {pipeline['colmap']['matcher']}")
    expect(config).to_contain_text(pipeline["project"])
    snap(page, "scenes-single")


def test_a_waiting_job_can_be_cancelled(page: Page, service: Service) -> None:
    # Pause the worker so the job is still waiting when Cancel is pressed: on a quiet machine
    # the tiny test model would finish 400 small images before the click.
    for worker in service.workers:
        os.kill(worker.pid, signal.SIGSTOP)
    try:
        pictures = distinct_pngs(400, (97, 89))
        images = [file_payload(f"{i}.png", data) for i, data in enumerate(pictures)]
        page.set_input_files("#scenes-files", images)
        expect(page.locator("#scenes-selected .file-chip.more")).to_have_text("+388 more")
        # Queued behind the paused worker: the page says so (progress shows once it runs).
        expect(page.locator("#scenes-job .job-text")).to_have_text("Waiting for a worker…")
        expect(page.locator("#scenes-run")).to_be_disabled()
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=ARTIFACTS / "scenes-progress-desktop.png")
        page.get_by_role("button", name="Cancel").click()
        expect(page.locator("#scenes-status")).to_have_text("Cancelled.")
        expect(page.locator("#scenes-job")).to_be_hidden()
        expect(page.locator("#scenes-run")).to_be_enabled()
        expect(page.locator(".scene-card")).to_have_count(0)
    finally:
        for worker in service.workers:
            os.kill(worker.pid, signal.SIGCONT)


def test_a_file_that_is_not_an_image_is_named_next_to_the_drop_zone(page: Page) -> None:
    page.set_input_files("#scenes-files", [RED_CIRCLE, NOTES])
    status = page.locator("#scenes-status")
    expect(status).to_contain_text("notes.txt")
    expect(status).to_have_attribute("data-kind", "error")
    expect(page.locator(".file-chip.invalid")).to_have_count(1)
    expect(page.locator(".file-chip.invalid")).to_contain_text("notes.txt")
    expect(page.locator(".scene-card")).to_have_count(0)
    # Nothing froze: the page takes the next upload.
    expect(page.locator("#scenes-run")).to_be_enabled()
    expect(page.locator("#scenes-drop")).to_have_attribute("aria-disabled", "false")
    snap(page, "error-bad-file")


def test_an_upload_over_the_limit_says_so(page: Page) -> None:
    big = file_payload("huge.png", b"\x89PNG\r\n\x1a\n" + bytes(3 * 1024 * 1024))
    page.set_input_files("#scenes-files", [big])
    status = page.locator("#scenes-status")
    expect(status).to_have_attribute("data-kind", "error")
    expect(status).to_contain_text(re.compile("too large|over the limit", re.IGNORECASE))
    snap(page, "error-too-large")


def test_the_service_down_is_said_near_the_action(page: Page) -> None:
    page.route("**/v1/scenes", lambda route: route.abort("connectionrefused"))
    page.set_input_files("#scenes-files", [RED_CIRCLE])
    status = page.locator("#scenes-status")
    expect(status).to_contain_text("clipq is not reachable")
    expect(page.locator("#scenes-run")).to_be_enabled()
    snap(page, "error-unreachable")


def test_a_server_that_wants_an_api_key_gets_one(page: Page) -> None:
    # This service has no keys; the first answer is what a keyed clipq says without one.
    problem = {
        "type": "/problems/unauthorized",
        "title": "Unauthorized",
        "status": 401,
        "detail": "send an API key as 'Authorization: Bearer <key>'",
    }
    sent: list[str | None] = []

    def scenes(route: Route) -> None:
        sent.append(route.request.headers.get("authorization"))
        if len(sent) == 1:
            route.fulfill(
                status=401, content_type="application/problem+json", body=json.dumps(problem)
            )
        else:
            route.continue_()

    page.route("**/v1/scenes", scenes)
    polls: list[str | None] = []
    page.on(
        "request",
        lambda r: polls.append(r.headers.get("authorization")) if "/v1/jobs/" in r.url else None,
    )
    page.set_input_files("#scenes-files", [RED_CIRCLE])
    expect(page.locator("#scenes-status")).to_contain_text("needs an API key")
    expect(page.locator("#api-key-input")).to_be_focused()
    snap(page, "error-api-key")

    page.locator("#api-key-input").fill("secret-key")
    page.get_by_role("button", name="Use key").click()
    page.get_by_role("button", name="Analyse 1 image").click()
    expect(page.locator(".scene-card")).to_have_count(1)
    assert sent == [None, "Bearer secret-key"]
    assert polls and set(polls) == {"Bearer secret-key"}


def test_the_header_says_how_many_workers_are_ready(page: Page, service: Service) -> None:
    workers = service.http.get("/readyz").json()["workers"]
    expect(page.locator("#service-status")).to_have_text(
        f"Ready · {workers} worker{'' if workers == 1 else 's'}"
    )


def test_scene_definitions_list_the_taxonomy(page: Page, service: Service) -> None:
    taxonomy = service.http.get("/v1/scene-types").json()
    page.get_by_text("Scene types and their matchers").click()
    definitions = page.locator(".definition h3")
    expect(definitions).to_have_text([scene_label(s["name"]) for s in taxonomy["scenes"]])


# --- Classify -----------------------------------------------------------------------------


def test_classify_against_typed_labels(page: Page, service: Service) -> None:
    page.get_by_role("tab", name="Classify").click()
    expect(page.locator("#panel-classify")).to_be_visible()

    # Images dropped on the drop zone; no labels yet: the message is next to the labels box.
    drop_files(page, "#classify-drop", [RED_CIRCLE, BLUE_SQUARE])
    expect(page.locator("#classify-selected .file-chip")).to_have_count(2)
    page.get_by_role("button", name="Classify 2 images").click()
    expect(page.locator("#classify-labels-error")).to_have_text("Type at least one label.")
    expect(page.locator("#classify-labels")).to_be_focused()

    page.locator("#classify-labels").fill("red circle, blue square\ngreen triangle")
    page.locator("#classify-topk").fill("3")
    job_id = submitted_job(
        page, "/v1/classify", lambda: page.get_by_role("button", name="Classify 2 images").click()
    )
    cards = page.locator(".classify-card")
    expect(cards).to_have_count(2)
    result = service.wait_for(job_id)["result"]
    for card, image in zip(cards.all(), result["images"], strict=True):
        expect(card.locator(".file-title")).to_have_text(image["filename"])
        expect(card.locator(".top-label")).to_have_text(image["predictions"][0]["label"])
        expect(card.locator(".score-name")).to_have_text([p["label"] for p in image["predictions"]])
    assert {p["label"] for p in result["images"][0]["predictions"]} == {
        "red circle",
        "blue square",
        "green triangle",
    }
    snap(page, "classify")


# --- Collections and search --------------------------------------------------------------------


def create_collection_in_page(page: Page, name: str) -> str:
    page.get_by_role("tab", name="Collections & search").click()
    expect(page.locator("#collections-manage")).not_to_have_attribute("aria-busy", "true")
    new = page.locator("#collection-new")
    if new.get_attribute("open") is None:  # folded once the key has a collection
        new.locator("summary").click()
    page.get_by_label("Name", exact=True).fill(name)
    with page.expect_response(
        lambda r: r.request.method == "POST" and r.url.endswith("/v1/collections")
    ) as created:
        page.get_by_role("button", name="Create", exact=True).click()
    collection = created.value.json()
    expect(page.locator("#collection-select")).to_have_value(collection["id"])
    return collection["id"]


def test_collection_ingest_search_crops_and_no_match(page: Page, service: Service) -> None:
    collection_id = create_collection_in_page(page, "shapes in the browser")

    # Upload with labels from the file names, and watch the ingest job.
    page.set_input_files("#ingest-files", [RED_CIRCLE, BLUE_SQUARE, GREEN_TRIANGLE])
    page.get_by_label("Label each from its file name").check()
    record_progress(page, "#ingest-job .job-text")
    page.get_by_role("button", name="Upload 3 images").click()
    expect(page.locator("#ingest-status")).to_contain_text("3 added")
    seen = page.evaluate("window.progressSeen")
    assert any(text.startswith("Uploading") for text in seen), seen  # the bytes going up
    assert "3 of 3 images" in seen, seen  # then the ingest job
    tiles = page.locator("#collection-images .image-tile")
    expect(tiles).to_have_count(3)
    expect(page.locator("#collection-select option:checked")).to_have_text(
        "shapes in the browser (3 images)"
    )
    expect(tiles.locator(".chip")).to_have_text(["red circle", "blue square", "green triangle"])

    # Search: the page shows the API's ranking for the same query, first hit first.
    query = "a photo of a red circle."
    page.get_by_label("Describe what you are looking for").fill(query)
    page.get_by_label("No-match threshold").fill("-1")
    page.get_by_role("button", name="Search", exact=True).click()
    hits = page.locator("#search-results .hit")
    expected = api_search(service, collection_id, query=query, top_k=8, min_score=-1)
    expect(hits).to_have_count(len(expected["hits"]))
    expect(hits.locator(".file-title")).to_have_text([h["filename"] for h in expected["hits"]])
    expect(hits.first).to_have_attribute("data-filename", expected["hits"][0]["filename"])
    expect(hits.first.locator("img")).to_have_js_property("complete", True)
    assert hits.first.locator("img").evaluate("img => img.naturalWidth") > 0
    snap(page, "search")

    # Crop reranking: turning it on searches again; matched crops are drawn where the API says.
    with page.expect_response(lambda r: r.url.endswith("/search")):
        page.get_by_label("Crop reranking", exact=True).check()
    reranked = api_search(
        service, collection_id, query=query, top_k=8, min_score=-1, rerank="crops"
    )
    expect(page.locator("#search-results .hint").first).to_contain_text("with crop reranking")
    expect(hits.locator(".file-title")).to_have_text([h["filename"] for h in reranked["hits"]])
    boxed = [h for h in reranked["hits"] if h["crop_box"]]
    assert boxed, "with crop reranking the API names a matched crop"
    expect(page.locator("#search-results .box.match")).to_have_count(len(boxed))
    first_boxed = page.locator(f'.hit[data-image-id="{boxed[0]["image_id"]}"] .box.match')
    x0, y0, x1, y1 = boxed[0]["crop_box"]
    drawn = [float(first_boxed.get_attribute(a)) for a in ("x", "y", "width", "height")]
    assert drawn == pytest.approx([x0, y0, x1 - x0, y1 - y0], abs=1)  # at least 1 px drawn
    assert first_boxed.bounding_box()["width"] > 0
    snap(page, "search-crops")

    # Nothing clears a threshold of 0.99: "No match".
    page.get_by_label("No-match threshold").fill("0.99")
    page.get_by_role("button", name="Search", exact=True).click()
    expect(page.locator(".no-match")).to_contain_text("No match")
    assert api_search(service, collection_id, query=query, min_score=0.99)["no_match"] is True
    snap(page, "search-no-match")


def test_find_similar_from_a_tile_a_hit_and_a_picture(page: Page, service: Service) -> None:
    collection = service.http.post("/v1/collections", json={"name": "similar"}).json()
    shapes = (RED_CIRCLE, BLUE_SQUARE, GREEN_TRIANGLE)
    files = [("images", (f["name"], f["buffer"], f["mimeType"])) for f in shapes]
    ingest = service.http.post(f"/v1/collections/{collection['id']}/images", files=files)
    images = service.wait_for(ingest.json()["id"])["result"]["images"]
    ids = {image["filename"]: image["image_id"] for image in images}

    def expected(image_id: str) -> list[str]:
        path = f"/v1/collections/{collection['id']}/images/{image_id}/similar"
        job = service.wait_for(service.http.post(path, json={"top_k": 8}).json()["id"])
        return [hit["filename"] for hit in job["result"]["hits"]]

    page.get_by_role("tab", name="Collections & search").click()
    page.locator("#collection-select").select_option(collection["id"])
    tiles = page.locator("#collection-images .image-tile")
    expect(tiles).to_have_count(3)
    hits = page.locator("#search-results .hit")

    # "Similar" on an image of the collection: the others, in the API's order, never itself.
    tiles.nth(0).get_by_role("button", name="Find images similar to red_circle_01.png").click()
    expect(page.locator("#search-results .hint").first).to_contain_text(
        "images like red_circle_01.png"
    )
    expect(hits.locator(".file-title")).to_have_text(expected(ids["red_circle_01.png"]))
    snap(page, "similar")

    # From a hit: images like the first hit.
    first = hits.first.get_attribute("data-filename")
    hits.first.get_by_role("button", name=f"Find images similar to {first}").click()
    expect(page.locator("#search-results .hint").first).to_contain_text(f"images like {first}")
    expect(hits.locator(".file-title")).to_have_text(expected(ids[first]))

    # From a picture of one's own: uploaded, searched, the API's ranking shown.
    page.set_input_files("#search-image", [GREEN_TRIANGLE | {"name": "mine.png"}])
    job_id = submitted_job(
        page, "/similar", lambda: page.get_by_role("button", name="Find similar").click()
    )
    result = service.wait_for(job_id)["result"]
    expect(page.locator("#search-results .hint").first).to_contain_text("images like mine.png")
    expect(hits.locator(".file-title")).to_have_text([h["filename"] for h in result["hits"]])
    assert result["image"] == "mine.png" and len(result["hits"]) == 3


def test_evaluation_shows_both_modes_side_by_side(page: Page, service: Service) -> None:
    collection = service.http.post("/v1/collections", json={"name": "evaluated"}).json()
    files = [
        ("images", (f["name"], f["buffer"], f["mimeType"]))
        for f in (RED_CIRCLE, BLUE_SQUARE, GREEN_TRIANGLE)
    ]
    labels = [
        ("labels", (None, label)) for label in ("red circle", "blue square", "green triangle")
    ]
    ingest = service.http.post(f"/v1/collections/{collection['id']}/images", files=files + labels)
    assert service.wait_for(ingest.json()["id"])["status"] == "succeeded"

    page.get_by_role("tab", name="Collections & search").click()
    page.locator("#collection-select").select_option(collection["id"])
    expect(page.locator("#collection-images .image-tile")).to_have_count(3)
    job_id = submitted_job(
        page, "/evaluate", lambda: page.get_by_role("button", name="Run evaluation").click()
    )
    result = service.wait_for(job_id)["result"]
    table = page.locator("#evaluate-results table.metrics").first
    expect(table.locator("thead th")).to_have_text(["Metric", "Full image", "With crops", "Δ"])
    rows = table.locator("tbody tr")
    expect(rows.locator("th")).to_have_text(["Recall@1", "Recall@5", "Recall@10", "MRR"])
    for row, k in zip(rows.all()[:3], ("1", "5", "10"), strict=True):
        values = [f"{result['modes'][m]['recall_at'][k]:.3f}" for m in ("none", "crops")]
        expect(row.locator("td").nth(0)).to_have_text(values[0])
        expect(row.locator("td").nth(1)).to_have_text(values[1])
    mrr = rows.nth(3).locator("td")
    expect(mrr.nth(0)).to_have_text(f"{result['modes']['none']['mrr']:.3f}")
    expect(mrr.nth(1)).to_have_text(f"{result['modes']['crops']['mrr']:.3f}")
    page.get_by_text("Per query").click()
    snap(page, "evaluation")


def test_import_embeddings_from_the_page(page: Page, service: Service) -> None:
    """An .npy with its Parquet: imported, listed as embeddings without pictures, searchable
    by image; the same file again is refused with the API's reason."""
    from tests.e2e.test_imports import npy, pairs, parquet

    collection = service.http.post("/v1/collections", json={"name": "imported here"}).json()
    dim = service.http.get("/v1/models").json()["models"][0]["embedding_dim"]
    names = [f"frame_{i:02d}.jpg" for i in range(6)]
    embeddings = file_payload("img_emb_0.npy", npy(pairs(dim, 6)), "application/octet-stream")
    metadata = file_payload("metadata_0.parquet", parquet({"image_path": names}), "x/parquet")
    page.get_by_role("tab", name="Collections & search").click()
    page.locator("#collection-select").select_option(collection["id"])
    page.locator("#import-form summary").click()
    page.set_input_files("#import-embeddings", [embeddings])
    page.set_input_files("#import-metadata", [metadata])
    page.get_by_role("button", name="Import", exact=True).click()
    expect(page.locator("#import-status")).to_contain_text(
        "Imported 6 embeddings from img_emb_0.npy; the collection holds 6."
    )
    tiles = page.locator("#collection-images .image-tile")
    expect(tiles).to_have_count(6)
    expect(tiles.first.locator(".no-picture")).to_have_text("embedding only")
    expect(tiles.locator(".file-title")).to_have_text(names)
    tiles.nth(2).get_by_role("button", name="Find images similar to frame_02.jpg").click()
    expect(page.locator("#search-results .hit .file-title").first).to_have_text("frame_03.jpg")
    snap(page, "import")
    page.get_by_role("button", name="Import", exact=True).click()
    expect(page.locator("#import-status")).to_contain_text("is imported already")

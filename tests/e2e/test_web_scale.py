"""The page for real use, in a real browser: a thousand scene results at a glance (a table to
sort, filter and group, measured), every picture whole, the viewer by keyboard, a file removed
from a selection and bad files skipped.

What a person sees is checked against what the API answered for the same job. Screenshots at
1280 and 390 px go to ``artifacts/web/``.
"""

from __future__ import annotations

import io
import os
import signal
import time
from collections.abc import Iterator
from typing import Any

import pytest
from PIL import Image, ImageDraw
from playwright.sync_api import Browser, Page, expect

from tests.e2e.browser import checked_page, launch_chromium
from tests.e2e.conftest import Service, env_on, private_redis, running_service
from tests.e2e.test_faults import parent_of
from tests.e2e.test_web import (
    BLUE_SQUARE,
    GREEN_TRIANGLE,
    NOTES,
    RED_CIRCLE,
    file_payload,
    record_progress,
    scene_label,
    snap,
    submitted_job,
)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with launch_chromium() as chromium:
        yield chromium


@pytest.fixture
def page(browser: Browser, service: Service, request: pytest.FixtureRequest) -> Iterator[Page]:
    with checked_page(browser, service.base_url, request) as page:
        yield page


def mixed_dataset(count: int) -> list[dict[str, Any]]:
    """``count`` small distinct PNGs, wide, portrait and square in turn."""
    sizes = [(48, 32), (24, 48), (36, 36)]
    files = []
    for i in range(count):
        image = Image.new("RGB", sizes[i % 3], (i % 251, (i * 7) % 251, (i * 13) % 251))
        draw = ImageDraw.Draw(image)
        x, y = (i * 5) % 20, (i * 3) % 20
        draw.rectangle((x, y, x + 10, y + 10), fill=((i * 31) % 256, 255 - i % 256, 90))
        buffer = io.BytesIO()
        image.save(buffer, format="PNG")
        files.append(file_payload(f"img_{i:04d}.png", buffer.getvalue()))
    return files


def table_rows(page: Page) -> list[dict[str, str]]:
    """What each row of the scene table says, in the order shown."""
    return page.evaluate(
        """() => [...document.querySelectorAll('#scenes-table tbody tr:not(.group-head)')]
            .map((tr) => ({
                file: tr.querySelector('.file-cell').textContent,
                scene: tr.querySelector('.scene-cell').textContent,
                confidence: tr.querySelector('td.num').textContent,
                flags: tr.querySelector('.flags')?.textContent ?? '',
            }))"""
    )


def expected_row(image: dict[str, Any]) -> dict[str, str]:
    p = image["prediction"]
    flags = ""
    if p["domain"] and p["domain"]["in_domain"] is False:
        flags += "out of domain"
    if p["uncertain"]:
        flags += "uncertain"
    return {
        "file": image["filename"],
        "scene": scene_label(p["top_scene"]),
        "confidence": f"{p['confidence'] * 100:.1f}%",
        "flags": flags,
    }


@pytest.fixture(scope="module")
def roomy(base_env, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    """A service that takes 1,000 images in one job (CLIPQ_MAX_FILES_PER_JOB; 500 by default)."""
    folder = tmp_path_factory.mktemp("roomy")
    with private_redis(folder / "redis") as server:
        env = env_on(base_env, server, CLIPQ_MAX_FILES_PER_JOB="1000")
        with running_service(env, folder / "logs") as service:
            yield service


def test_a_thousand_scene_results_at_a_glance(browser, roomy: Service, request) -> None:
    with checked_page(browser, roomy.base_url, request) as page:
        thousand_results(page, roomy)


def thousand_results(page: Page, service: Service) -> None:
    files = mixed_dataset(1000)
    page.get_by_role("radio", name="Fast").check()
    job_id = submitted_job(page, "/v1/scenes", lambda: page.set_input_files("#scenes-files", files))
    results = page.locator("#scenes-results")
    expect(results).to_have_attribute("data-render-ms", timeout=420_000)
    result = service.wait_for(job_id, timeout=30)["result"]
    images = result["images"]
    render_ms = float(results.get_attribute("data-render-ms") or "nan")
    nodes = page.evaluate("document.querySelectorAll('#scenes-results *').length")
    height = page.evaluate("document.documentElement.scrollHeight")
    print(
        f"\n1,000 scene results: rendered {render_ms:.0f} ms after the result arrived; "
        f"{nodes} elements; page {height} px tall"
    )
    assert render_ms < 3000, f"rendering took {render_ms:.0f} ms"
    assert height < 5000, f"the page is {height} px tall"
    assert nodes < 20 * 1000, f"{nodes} elements for 1,000 images"

    # A table, every row what the API said of its image, in the order chosen.
    expect(page.locator("#scenes-view")).to_have_value("table")
    expect(page.locator(".scene-card")).to_have_count(0)
    assert table_rows(page) == [expected_row(i) for i in images]
    expect(page.locator("#scenes-shown")).to_have_text("Showing all 1000 images.")
    loaded = page.evaluate(
        "[...document.querySelectorAll('#scenes-table img')]"
        ".filter(i => i.complete && i.naturalWidth).length"
    )
    print(f"thumbnails loaded (lazy, in view): {loaded} of 1000")
    assert loaded < 1000
    snap(page, "scenes-1000")

    # Scrolling the table: frames and long tasks measured in the page, the first pass (each
    # thumbnail decoded as it comes into view) and a second.
    for scroll_pass in ("first", "second"):
        scroll = page.evaluate(
            """async () => {
                const box = document.querySelector('#scenes-results .scroll-box');
                box.scrollTop = 0;
                await new Promise((r) => requestAnimationFrame(r));
                let longest = 0;
                const observer = new PerformanceObserver((list) => {
                    for (const e of list.getEntries()) longest = Math.max(longest, e.duration);
                });
                observer.observe({type: 'longtask'});
                const gaps = [];
                let last = performance.now();
                const started = last;
                while (box.scrollTop + box.clientHeight < box.scrollHeight - 1) {
                    box.scrollTop += 400;
                    await new Promise((r) => requestAnimationFrame(r));
                    const now = performance.now();
                    gaps.push(now - last);
                    last = now;
                }
                observer.disconnect();
                gaps.sort((a, b) => a - b);
                return {
                    frames: gaps.length,
                    total: performance.now() - started,
                    p50: gaps[Math.floor(gaps.length * 0.5)],
                    p95: gaps[Math.floor(gaps.length * 0.95)],
                    worst: gaps[gaps.length - 1],
                    longest,
                };
            }"""
        )
        print(
            f"scrolled the 1,000 rows ({scroll_pass} pass, 400 px a frame) in {scroll['frames']} "
            f"frames, {scroll['total']:.0f} ms: frame p50 {scroll['p50']:.1f} ms, p95 "
            f"{scroll['p95']:.1f} ms, worst {scroll['worst']:.1f} ms, longest task "
            f"{scroll['longest']:.0f} ms"
        )
        assert scroll["worst"] < 500, scroll

    # Filter by a scene, by the uncertain flag; the numbers are the API's.
    by_scene: dict[str, list[dict[str, Any]]] = {}
    for image in images:
        by_scene.setdefault(image["prediction"]["top_scene"], []).append(image)
    scene, members = max(by_scene.items(), key=lambda item: len(item[1]))
    started = time.monotonic()
    page.locator("#scenes-filter").select_option(f"scene:{scene}")
    expect(page.locator("#scenes-shown")).to_have_text(f"Showing {len(members)} of 1000 images.")
    print(f"filter to {scene} ({len(members)}): {(time.monotonic() - started) * 1000:.0f} ms")
    assert table_rows(page) == [expected_row(i) for i in members]
    uncertain = [i for i in images if i["prediction"]["uncertain"]]
    page.locator("#scenes-filter").select_option("uncertain")
    expect(page.locator("#scenes-shown")).to_have_text(f"Showing {len(uncertain)} of 1000 images.")
    assert table_rows(page) == [expected_row(i) for i in uncertain]
    page.locator("#scenes-filter").select_option("failed")
    expect(page.locator("#scenes-shown")).to_have_text("Showing 0 of 1000 images.")
    page.locator("#scenes-filter").select_option("all")

    # Sorted by confidence, lowest first; grouped by scene.
    page.locator("#scenes-sort").select_option("confidence-asc")
    ordered = sorted(images, key=lambda i: i["prediction"]["confidence"])
    shown = [r["file"] for r in table_rows(page)]
    confidences = {i["filename"]: i["prediction"]["confidence"] for i in images}
    assert [confidences[f] for f in shown] == [i["prediction"]["confidence"] for i in ordered]
    page.locator("#scenes-group").check()
    heads = page.locator("#scenes-table tr.group-head")
    expected_heads = [f"{scene_label(s)} · {len(by_scene[s])}" for s in sorted(by_scene)]
    expect(heads).to_have_text(expected_heads)
    snap(page, "scenes-1000-grouped")

    # The full card on demand: the viewer shows the card of the row clicked.
    first = table_rows(page)[0]["file"]
    page.locator("#scenes-table .file-cell button").first.click()
    viewer = page.locator("#viewer")
    expect(viewer).to_be_visible()
    expect(viewer.locator("#viewer-title")).to_have_text(first)
    expect(viewer.locator("#viewer-position")).to_have_text("1 of 1000")
    image = next(i for i in images if i["filename"] == first)
    expect(viewer.locator(".scene-name")).to_have_text(
        scene_label(image["prediction"]["top_scene"])
    )
    page.keyboard.press("Escape")
    expect(viewer).to_be_hidden()


def test_every_picture_whole_and_the_viewer_by_keyboard(page: Page, service: Service) -> None:
    tall = file_payload("tall.png", _png((60, 240)))
    files = [RED_CIRCLE, BLUE_SQUARE, tall, GREEN_TRIANGLE]
    job_id = submitted_job(page, "/v1/scenes", lambda: page.set_input_files("#scenes-files", files))
    expect(page.locator(".scene-card")).to_have_count(4)
    images = service.wait_for(job_id)["result"]["images"]

    # Portrait, square and wide pictures fit their frames whole (contained, not cropped).
    for card in page.locator(".scene-card").all():
        fit = card.evaluate(
            """(card) => {
                const frame = card.querySelector('.thumb-frame').getBoundingClientRect();
                const img = card.querySelector('.thumb-frame img');
                const box = img.getBoundingClientRect();
                return {fit: getComputedStyle(img).objectFit,
                        inside: box.top >= frame.top - 0.5 && box.bottom <= frame.bottom + 0.5
                                && box.left >= frame.left - 0.5 && box.right <= frame.right + 0.5};
            }"""
        )
        assert fit == {"fit": "contain", "inside": True}, fit
    snap(page, "scenes-whole-pictures")

    # The viewer: opened from a picture, → and ← step, Escape closes, focus comes back.
    opener = page.locator(".scene-card .thumb-button").nth(1)
    opener.click()
    viewer = page.locator("#viewer")
    expect(viewer.locator("#viewer-title")).to_have_text(images[1]["filename"])
    expect(viewer.locator("#viewer-position")).to_have_text("2 of 4")
    big = viewer.locator(".viewer-img")
    expect(big).to_have_js_property("complete", True)
    assert big.evaluate("i => [i.naturalWidth, i.naturalHeight]") == [240, 320]  # full size
    snap(page, "viewer-scene")
    page.keyboard.press("ArrowRight")
    expect(viewer.locator("#viewer-title")).to_have_text(images[2]["filename"])
    page.keyboard.press("ArrowRight")
    page.keyboard.press("ArrowRight")  # the end: stays on the last
    expect(viewer.locator("#viewer-title")).to_have_text(images[3]["filename"])
    expect(viewer.locator("#viewer-next")).to_be_disabled()
    page.keyboard.press("ArrowLeft")
    expect(viewer.locator("#viewer-title")).to_have_text(images[2]["filename"])
    p = images[2]["prediction"]
    expect(viewer.locator(".scene-name")).to_have_text(scene_label(p["top_scene"]))
    expect(viewer.locator(".confidence")).to_have_text(f"{p['confidence'] * 100:.1f}%")
    page.keyboard.press("Escape")
    expect(viewer).to_be_hidden()
    expect(opener).to_be_focused()


def test_a_file_removed_and_a_bad_one_skipped(page: Page, service: Service) -> None:
    page.set_input_files("#scenes-files", [RED_CIRCLE, BLUE_SQUARE, GREEN_TRIANGLE, NOTES])
    # The batch is refused for the text file, named on its chip.
    chip = page.locator("#scenes-selected .file-chip.invalid")
    expect(chip).to_have_count(1)
    expect(chip).to_contain_text("notes.txt")
    expect(page.locator(".scene-card")).to_have_count(0)
    # Remove one file by its ×; then skip the bad one and go on.
    page.get_by_role("button", name=f"Remove {BLUE_SQUARE['name']}").click()
    expect(page.locator("#scenes-selected .file-chip")).to_have_count(3)
    expect(page.locator("#scenes-run")).to_have_text("Analyse 3 images")
    snap(page, "scenes-bad-file")
    job_id = submitted_job(
        page,
        "/v1/scenes",
        lambda: page.get_by_role("button", name="Skip this file and go on").click(),
    )
    expect(page.locator(".scene-card")).to_have_count(2)
    images = service.wait_for(job_id)["result"]["images"]
    assert [i["filename"] for i in images] == [RED_CIRCLE["name"], GREEN_TRIANGLE["name"]]
    expect(page.locator(".scene-card .file-title")).to_have_text([i["filename"] for i in images])
    expect(page.locator("#scenes-run")).to_have_text("Analyse 2 images")


def _png(size: tuple[int, int]) -> bytes:
    image = Image.new("RGB", size, (40, 160, 90))
    ImageDraw.Draw(image).ellipse((5, 5, size[0] - 5, size[1] - 5), fill=(220, 200, 40))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


# --- every state a person can meet ------------------------------------------------------------


def test_a_worker_lost_mid_job_is_said_and_the_bar_stays_honest(
    browser, base_env, tmp_path, request
) -> None:
    """A worker killed mid-job (as test_faults does): the page says so from the job's own
    fields (``attempts``), and the bar restarts with the new attempt, saying why."""
    with private_redis(tmp_path / "redis") as server:
        env = env_on(base_env, server, CLIPQ_BATCH_SIZE="1", CLIPQ_JOB_LEASE_SECONDS="3")
        with (
            running_service(env, tmp_path / "logs", workers=2) as service,
            checked_page(browser, service.base_url, request) as page,
        ):
            record_progress(page, "#scenes-job .job-text")
            files = mixed_dataset(480)  # attempt 2 outlasts both screenshots
            job_id = submitted_job(
                page, "/v1/scenes", lambda: page.set_input_files("#scenes-files", files)
            )
            key = f"clipq:job:{job_id}"
            deadline = time.monotonic() + 120
            while int(service.redis.hget(key, "progress_done") or 0) < 20:
                assert time.monotonic() < deadline, "the job never started"
                time.sleep(0.05)
            child = int(service.redis.hget(key, "lease").decode().split(":")[1])
            os.kill(parent_of(child), signal.SIGKILL)
            os.kill(child, signal.SIGKILL)
            text = page.locator("#scenes-job .job-text")
            expect(text).to_contain_text("Worker lost — retrying (attempt 2)", timeout=60_000)
            snap(page, "worker-lost")
            expect(page.locator("#scenes-table tbody tr")).to_have_count(480, timeout=300_000)
            final = service.wait_for(job_id)
            assert final["attempts"] == 2 and final["status"] == "succeeded"
            seen = page.evaluate("window.progressSeen")
            # Before the loss: plain counts; after it, every count says which attempt it is.
            lost = next(i for i, t in enumerate(seen) if t.startswith("Worker lost"))
            assert any(" of 480 images" in t for t in seen[:lost])
            assert all(t.startswith("Worker lost") for t in seen[lost:] if "of 480" in t), seen


# --- collections: the viewer, find similar, one image deleted, labels edited -------------------


def test_a_collection_image_in_the_viewer(page: Page, service: Service) -> None:
    name = "viewed shapes"
    collection = service.http.post("/v1/collections", json={"name": name}).json()
    base = f"/v1/collections/{collection['id']}"
    shapes = (RED_CIRCLE, BLUE_SQUARE, GREEN_TRIANGLE)
    files = [("images", (f["name"], f["buffer"], f["mimeType"])) for f in shapes]
    files += [("labels", (None, label)) for label in ("red circle", "blue square", "")]
    ingest = service.http.post(f"{base}/images", files=files)
    assert service.wait_for(ingest.json()["id"])["status"] == "succeeded"
    service.http.post("/v1/collections", json={"name": "another one"})

    # The choice survives a reload (the newest is not the one chosen).
    page.get_by_role("tab", name="Collections & search").click()
    page.locator("#collection-select").select_option(collection["id"])
    page.reload()
    page.get_by_role("tab", name="Collections & search").click()
    expect(page.locator("#collection-select")).to_have_value(collection["id"])
    tiles = page.locator("#collection-images .image-tile")
    expect(tiles).to_have_count(3)

    # A name it already has is refused at the name field ("New collection" is folded now).
    expect(page.locator("#collection-new")).not_to_have_attribute("open", "")
    page.get_by_text("New collection", exact=True).click()
    page.get_by_label("Name", exact=True).fill(name.upper())
    page.get_by_role("button", name="Create", exact=True).click()
    expect(page.locator("#collection-name-error")).to_contain_text(f"named '{name}'")
    expect(page.locator("#collection-name")).to_have_attribute("aria-invalid", "true")

    # The viewer: the thumbnail whole with its regions, the image's facts; → steps.
    listed = service.http.get(f"{base}/images").json()["images"]
    tiles.nth(0).locator(".thumb-frame").click()
    viewer = page.locator("#viewer")
    expect(viewer.locator("#viewer-title")).to_have_text(listed[0]["filename"])
    expect(viewer.locator(".viewer-fit .box.region")).to_have_count(len(listed[0]["regions"]))
    expect(viewer.locator(".viewer-facts")).to_contain_text("red circle")
    page.keyboard.press("ArrowRight")
    expect(viewer.locator("#viewer-title")).to_have_text(listed[1]["filename"])
    snap(page, "viewer-collection")

    # Labels edited there are the API's from then on.
    viewer.locator("#viewer-labels").fill("navy square, square")
    viewer.get_by_role("button", name="Save labels").click()
    expect(viewer.locator("#viewer-status")).to_have_text("Labels saved: navy square, square.")
    stored = service.http.get(f"{base}/images").json()["images"]
    assert stored[1]["labels"] == ["navy square", "square"]
    viewer.locator("#viewer-labels").fill("x" * 201)
    viewer.get_by_role("button", name="Save labels").click()
    expect(viewer.locator("#viewer-labels-error")).not_to_be_empty()

    # Find similar from the viewer: the hits are the API's image → image search.
    with page.expect_response(lambda r: r.url.endswith("/similar")):
        viewer.get_by_role("button", name="Find similar").click()
    expect(viewer).to_be_hidden()
    hits = page.locator("#search-results .hit")
    expected = service.http.post(
        f"{base}/images/{listed[1]['id']}/similar", json={"top_k": 8, "min_score": None}
    )
    result = service.wait_for(expected.json()["id"])["result"]
    expect(hits.locator(".file-title")).to_have_text([h["filename"] for h in result["hits"]])
    expect(page.locator("#search-results .hint").first).to_contain_text(
        f"images like {listed[1]['filename']}"
    )

    # Delete one image from the viewer: gone from the page and from the API.
    page.once("dialog", lambda dialog: dialog.accept())
    tiles.nth(2).locator(".thumb-frame").click()
    expect(viewer.locator("#viewer-title")).to_have_text(listed[2]["filename"])
    viewer.get_by_role("button", name="Delete image").click()
    expect(viewer).to_be_hidden()
    expect(tiles).to_have_count(2)
    expect(page.locator("#collection-images-status")).to_contain_text("2 images")
    after = service.http.get(f"{base}/images").json()
    assert after["total"] == 2
    assert [i["filename"] for i in after["images"]] == [i["filename"] for i in listed[:2]]

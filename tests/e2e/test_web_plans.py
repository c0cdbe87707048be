"""The Plan tab in a real browser (Debian's chromium, driven by Playwright) against the service.

A dataset goes through the page and what a person sees is checked against the API's own
answer for the same job: the pair count and matcher, a drop/review badge on each thumbnail
as ``hygiene.images[*].action`` says, the shortlist's matrix (one canvas) and table, the
bundle's ``pairs.txt``; errors appear at the control the service names. A 500-image plan
checks that the page stays quick and short. Screenshots at 1280 and 390 px go to
``/tmp/clipq-plan-shots/``.
"""

from __future__ import annotations

import io
import json
import random
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from PIL import Image, ImageDraw, ImageEnhance, ImageFilter
from playwright.sync_api import Browser, FileChooser, Page, expect

from tests.e2e.browser import DESKTOP, PHONE, checked_page, launch_chromium
from tests.e2e.conftest import Service
from tests.e2e.test_web import file_payload, record_progress, submitted_job

SHOTS = Path("/tmp/clipq-plan-shots")
TIMEOUT_MS = 60_000
expect.set_options(timeout=TIMEOUT_MS)


# --- a dataset a person would drop -------------------------------------------------------------


def scene(seed: int, size: tuple[int, int] = (640, 480)) -> Image.Image:
    """A textured picture: random rectangles and ellipses on a gradient, sharp edges."""
    rng = random.Random(seed)
    w, h = size
    image = Image.new("RGB", size)
    draw = ImageDraw.Draw(image)
    top = tuple(rng.randrange(40, 200) for _ in range(3))
    for y in range(h):
        shade = y / h
        draw.line([(0, y), (w, y)], fill=tuple(int(c * (1 - 0.5 * shade)) for c in top))
    for _ in range(40):
        x0, y0 = rng.randrange(w), rng.randrange(h)
        box = (x0, y0, x0 + rng.randrange(10, w // 3), y0 + rng.randrange(10, h // 3))
        colour = tuple(rng.randrange(256) for _ in range(3))
        (draw.rectangle if rng.random() < 0.5 else draw.ellipse)(box, fill=colour)
    return image


def jpeg(image: Image.Image, quality: int = 90) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=quality)
    return buffer.getvalue()


def dataset() -> list[dict[str, Any]]:
    """Twelve distinct JPEGs: sharp ones (wide, portrait, square), blurred ones, an
    overexposed one, a small one and a near-duplicate of the first."""
    pictures = [
        scene(1),
        scene(2),
        scene(3, (480, 640)),  # portrait: its thumbnail must show it whole
        scene(4, (560, 560)),
        scene(5),
        scene(6),
        scene(7).filter(ImageFilter.GaussianBlur(12)),  # hopelessly blurred
        scene(8).filter(ImageFilter.GaussianBlur(1.6)),  # somewhat blurred
        ImageEnhance.Brightness(scene(9)).enhance(4.0),  # overexposed
        scene(10, (320, 240)),  # low resolution
        scene(11),
        ImageEnhance.Brightness(scene(1)).enhance(1.02),  # a near-duplicate of the first
    ]
    return [
        file_payload(f"frame_{i:03d}.jpg", jpeg(p), "image/jpeg") for i, p in enumerate(pictures)
    ]


def small_dataset(count: int) -> list[dict[str, Any]]:
    """``count`` small distinct PNGs (a coloured block on a varying background)."""
    files = []
    for i in range(count):
        image = Image.new("RGB", (48, 36), (i % 251, (i * 7) % 251, (i * 13) % 251))
        draw = ImageDraw.Draw(image)
        x, y = (i * 5) % 36, (i * 3) % 24
        draw.rectangle((x, y, x + 12, y + 12), fill=((i * 31) % 256, 255 - i % 256, 90))
        buffer = io.BytesIO()
        image.save(buffer, format="PNG")
        files.append(file_payload(f"img_{i:04d}.png", buffer.getvalue()))
    return files


# --- fixtures and helpers -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with launch_chromium() as chromium:
        yield chromium


@pytest.fixture
def page(browser: Browser, service: Service, request: pytest.FixtureRequest) -> Iterator[Page]:
    with checked_page(browser, service.base_url, request) as page:
        yield page


def shoot(page: Page, name: str) -> None:
    """Full-page screenshots at 1280 and 390 px; at 390 px nothing may scroll sideways."""
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.wait_for_timeout(150)
    page.screenshot(path=SHOTS / f"{name}-1280.png", full_page=True)
    page.set_viewport_size(PHONE)
    try:
        page.wait_for_timeout(250)  # a layout pass, and the matrix redrawn at its new size
        overflow = page.evaluate("document.documentElement.scrollWidth")
        assert overflow <= PHONE["width"], f"{name}: the page is {overflow}px wide on a phone"
        page.screenshot(path=SHOTS / f"{name}-390.png", full_page=True)
    finally:
        page.set_viewport_size(DESKTOP)


def open_plan_tab(page: Page) -> None:
    page.get_by_role("tab", name="Plan").click()
    expect(page.locator("#panel-plan")).to_be_visible()


def plan_in_page(page: Page, files: list[dict[str, Any]], **options: str) -> str:
    """Choose ``files``, set the options, press Plan; the id of the job the page POSTed."""
    open_plan_tab(page)
    page.set_input_files("#plan-files", files)
    if "speed" in options:
        page.locator("#panel-plan").get_by_role("radio", name=options["speed"]).check()
    if "strategy" in options:
        page.locator("#plan-strategy").select_option(options["strategy"])
    if "pairs_per_image" in options:
        page.locator("#plan-pairs-per-image").fill(options["pairs_per_image"])
    if "window" in options:
        page.locator("#plan-window").fill(options["window"])
    return submitted_job(page, "/v1/plans", lambda: page.locator("#plan-run").click())


def pairs_line(shortlist: dict[str, Any]) -> str:
    n, total = len(shortlist["pairs"]), shortlist["exhaustive_pairs"]
    return f"{n} pair{'' if n == 1 else 's'} of {total:,} exhaustive ({n / total * 100:.1f}%)"


def api_problem(service: Service, files: list[dict[str, Any]], **fields: str) -> dict[str, Any]:
    parts = [("images", (f["name"], f["buffer"], f["mimeType"])) for f in files]
    parts += [(key, (None, value)) for key, value in fields.items()]
    response = service.http.post("/v1/plans", files=parts)
    assert response.status_code == 422, response.text
    return response.json()


# --- a plan through the page ----------------------------------------------------------------------


def test_a_plan_shows_matcher_hygiene_matrix_pairs_and_bundle(page: Page, service: Service) -> None:
    files = dataset()
    open_plan_tab(page)
    record_progress(page, "#plan-job .job-text")
    job_id = plan_in_page(
        page, files, speed="Fast", strategy="retrieval+sequential", pairs_per_image="3", window="2"
    )
    expect(page.locator(".plan-overview")).to_be_visible()
    job = service.wait_for(job_id)
    assert job["status"] == "succeeded", job
    result = job["result"]
    shortlist, hygiene = result["shortlist"], result["hygiene"]
    assert (shortlist["strategy"], shortlist["pairs_per_image"], shortlist["window"]) == (
        "retrieval+sequential",
        3,
        2,
    )
    assert result["speed"] == "fast"

    # The progress bar followed the job; the status says what came out.
    assert "12 of 12 images embedded" in page.evaluate("window.progressSeen")
    expect(page.locator("#plan-job")).to_be_hidden()
    expect(page.locator("#plan-status")).to_have_attribute("data-kind", "ok")
    expect(page.locator("#plan-status")).to_contain_text(pairs_line(shortlist))

    # The overall matcher and why; the pair count against exhaustive; keep / review / drop.
    overall = result["summary"]["overall"]
    expect(page.locator(".plan-overview .overall .matcher-name strong")).to_have_text(
        overall["matcher"]["name"]
    )
    expect(page.locator(".plan-overview .overall-reason")).to_have_text(overall["reason"])
    expect(page.locator(".plan-pairs")).to_have_text(pairs_line(shortlist))
    counts = {
        a: sum(i["action"] == a for i in hygiene["images"]) for a in ("keep", "review", "drop")
    }
    assert counts["drop"] and counts["review"] and counts["keep"], counts  # the dataset has all
    for key, value in [
        ("images", 12),
        ("pairs", len(shortlist["pairs"])),
        *counts.items(),
        ("duplicate-groups", len(hygiene["duplicate_groups"])),
    ]:
        expect(page.locator(f'.plan-counts [data-stat="{key}"] dd')).to_have_text(str(value))

    # Hygiene on the thumbnails: each tile in the dataset's order, its badge and flags as the
    # API has them, the reasons in its title; thumbnails are small boxes showing the whole image.
    tiles = page.locator(".hygiene-tile")
    expect(tiles).to_have_count(12)
    for tile, image in zip(tiles.all(), hygiene["images"], strict=True):
        expect(tile).to_have_attribute("data-filename", image["filename"])
        expect(tile).to_have_attribute("data-action", image["action"])
        badge = tile.locator(".action-badge")
        if image["action"] == "keep":
            expect(badge).to_have_count(0)
        else:
            expect(badge).to_have_text(image["action"])
        flags = ", ".join(f.replace("_", " ") for f in image["flags"]) or "no flags"
        expect(tile.locator(".hygiene-flags")).to_have_text(flags)
        for reason in image["reasons"]:
            assert reason in (tile.get_attribute("title") or "")
    portrait = tiles.nth(2).locator("img")
    expect(portrait).to_have_js_property("complete", True)
    fit = portrait.evaluate(
        "img => [getComputedStyle(img).objectFit, img.naturalWidth, img.naturalHeight,"
        " img.getBoundingClientRect().width, img.getBoundingClientRect().height]"
    )
    assert fit[0] == "contain" and (fit[1], fit[2]) == (480, 640), fit
    assert fit[3] <= 200 and fit[4] <= 100, f"a thumbnail box is small: {fit}"
    assert tiles.first.locator("img").get_attribute("loading") == "lazy"
    dropped = next(i for i in hygiene["images"] if i["action"] == "drop")
    tile = page.locator(f'.hygiene-tile[data-filename="{dropped["filename"]}"]')
    tile.locator(".why summary").click()
    expect(tile.locator(".reasons li")).to_have_text(dropped["reasons"])

    # Filtered by action: only those tiles remain visible, and the page says so.
    panel = page.locator("#panel-plan")
    for action in ("drop", "review", "keep"):
        panel.get_by_role("radio", name=f"{action.capitalize()} {counts[action]}").check()
        expect(page.locator(".hygiene-tile:visible")).to_have_count(counts[action])
        expect(page.locator("#plan-filter-status")).to_contain_text(f"{counts[action]} of 12")
    panel.get_by_role("radio", name="All 12").check()
    expect(page.locator(".hygiene-tile:visible")).to_have_count(12)

    # The shortlist as a matrix: one canvas, n×n in the dataset's order, with its numbers
    # for assistive technology; it is drawn (not empty) and symmetric.
    canvas = page.locator("#plan-results canvas")
    expect(canvas).to_have_count(1)
    similarities = [p["similarity"] for p in shortlist["pairs"]]
    expect(canvas).to_have_attribute("data-images", "12")
    expect(canvas).to_have_attribute("data-pairs", str(len(shortlist["pairs"])))
    expect(canvas).to_have_attribute("data-min", f"{min(similarities):.4f}")
    expect(canvas).to_have_attribute("data-max", f"{max(similarities):.4f}")
    expect(canvas).to_have_attribute("role", "img")
    summary = canvas.get_attribute("aria-label") or ""
    assert pairs_line(shortlist) in summary and "12 images" in summary, summary
    expect(page.locator(".matrix-summary")).to_have_text(summary)
    expect(page.locator(".matrix-legend")).to_contain_text(f"{min(similarities):.3f}")
    drawn = canvas.evaluate(
        """c => {
            const {width: w, height: h} = c;
            const data = c.getContext('2d').getImageData(0, 0, w, h).data;
            const at = (x, y) => data.slice(4 * (y * w + x), 4 * (y * w + x) + 3).join();
            const background = at(w - 1, 0);
            let painted = 0, asymmetric = 0;
            for (let y = 0; y < h; y += 3) for (let x = 0; x < w; x += 3) {
                if (at(x, y) !== background) painted += 1;
                if (at(x, y) !== at(y, x)) asymmetric += 1;
            }
            return {painted, asymmetric, w};
        }"""
    )
    assert drawn["painted"] > 0 and drawn["asymmetric"] == 0, drawn
    box = canvas.bounding_box()
    assert box and box["width"] == pytest.approx(box["height"], abs=1)

    # Pointing at the matrix names the pair under the pointer.
    canvas.hover(position={"x": box["width"] * 0.9, "y": box["height"] * 0.1 + 5})
    expect(page.locator(".matrix-readout")).to_contain_text(" × ")

    # The table of top pairs: the API's pairs, most similar first.
    rows = page.locator(".pairs-table tbody tr")
    shown = shortlist["pairs"][:50]
    expect(rows).to_have_count(len(shown))
    expect(rows.locator("td:nth-child(2)")).to_have_text([p["image0"] for p in shown])
    expect(rows.locator("td:nth-child(3)")).to_have_text([p["image1"] for p in shown])
    expect(rows.locator("td:nth-child(4)")).to_have_text([f"{p['similarity']:.3f}" for p in shown])
    expect(rows.locator("td:nth-child(5)")).to_have_text([" + ".join(p["sources"]) for p in shown])

    # Unpaired images, as the API lists them.
    if shortlist["unpaired"]:
        expect(page.locator("#plan-unpaired li")).to_have_text(shortlist["unpaired"])
    expect(page.locator(".unpaired h3")).to_have_text(
        f"Unpaired images ({len(shortlist['unpaired'])})"
    )
    shoot(page, "plan-12")

    # The bundle: a zip whose pairs.txt is the shortlist; the JSON is the job's result.
    with page.expect_download() as download_info:
        page.get_by_role("button", name="Download bundle (.zip)").click()
    download = download_info.value
    assert download.suggested_filename == f"plan-{job_id}.zip"
    with zipfile.ZipFile(download.path()) as archive:
        lines = archive.read("clipq-plan/pairs.txt").decode().splitlines()
    assert {tuple(line.split(" ")) for line in lines} == {
        (p["image0"], p["image1"]) for p in shortlist["pairs"]
    }
    expect(page.locator("#plan-status")).to_have_text("Bundle downloaded.")
    with page.expect_download() as download_info:
        page.locator("#plan-results").get_by_role("button", name="Download JSON").click()
    assert json.loads(Path(download_info.value.path()).read_text()) == result


def test_the_bundle_is_fetched_with_the_api_key(page: Page, service: Service) -> None:
    """A keyed clipq: the bundle link sends the key (a plain <a href> could not)."""
    files = dataset()[:3]
    plan_in_page(page, files, strategy="exhaustive")
    expect(page.locator(".plan-overview")).to_be_visible()
    page.evaluate("sessionStorage.setItem('clipq.apiKey', 'secret-key')")
    sent: list[str | None] = []
    page.on(
        "request",
        lambda r: sent.append(r.headers.get("authorization")) if "/bundle" in r.url else None,
    )
    with page.expect_download():
        page.get_by_role("button", name="Download bundle (.zip)").click()
    assert sent == ["Bearer secret-key"]


# --- errors at the field --------------------------------------------------------------------------


def test_one_image_is_refused_at_the_drop_zone(page: Page, service: Service) -> None:
    files = dataset()[:1]
    problem = api_problem(service, files)
    [error] = problem["errors"]
    assert error["field"] == "images"
    open_plan_tab(page)
    page.set_input_files("#plan-files", files)
    with page.expect_response(lambda r: r.url.endswith("/v1/plans")) as response_info:
        page.get_by_role("button", name="Plan 1 image").click()
    assert response_info.value.status == 422
    expect(page.locator("#plan-images-error")).to_have_text(error["message"])
    expect(page.locator("#plan-drop")).to_have_attribute("aria-invalid", "true")
    expect(page.locator("#plan-drop")).to_be_focused()
    expect(page.locator("#plan-status")).to_have_attribute("data-kind", "error")
    expect(page.locator("#plan-status")).to_have_text(problem["detail"])
    expect(page.locator("#plan-results")).to_be_empty()
    expect(page.locator("#plan-run")).to_be_enabled()  # nothing froze
    shoot(page, "plan-error-one-image")

    # Choosing again clears the message.
    page.set_input_files("#plan-files", dataset()[:2])
    expect(page.locator("#plan-images-error")).to_be_hidden()
    expect(page.locator("#plan-drop")).not_to_have_attribute("aria-invalid", "true")


def test_options_out_of_range_are_named_at_their_inputs(page: Page, service: Service) -> None:
    files = dataset()[:2]
    problem = api_problem(service, files, pairs_per_image="0", window="500")
    messages = {e["field"]: e["message"] for e in problem["errors"]}
    assert set(messages) == {"pairs_per_image", "window"}, messages
    open_plan_tab(page)
    page.set_input_files("#plan-files", files)
    page.locator("#plan-pairs-per-image").fill("0")
    page.locator("#plan-window").fill("500")
    page.get_by_role("button", name="Plan 2 images").click()
    expect(page.locator("#plan-pairs-per-image-error")).to_have_text(messages["pairs_per_image"])
    expect(page.locator("#plan-window-error")).to_have_text(messages["window"])
    expect(page.locator("#plan-pairs-per-image")).to_have_attribute("aria-invalid", "true")
    expect(page.locator("#plan-images-error")).to_be_hidden()


def test_a_bad_taxonomy_is_named_at_its_box(page: Page, service: Service) -> None:
    files = dataset()[:2]
    problem = api_problem(service, files, taxonomy="{not json")
    assert all(e["field"].startswith("taxonomy") for e in problem["errors"]), problem
    open_plan_tab(page)
    page.set_input_files("#plan-files", files)
    page.get_by_text("Custom taxonomy").click()
    page.locator("#plan-taxonomy").fill("{not json")
    page.get_by_role("button", name="Plan 2 images").click()
    expect(page.locator("#plan-taxonomy-error")).to_have_text(
        " ".join(e["message"] for e in problem["errors"])
    )
    expect(page.locator("#plan-taxonomy")).to_have_attribute("aria-invalid", "true")
    expect(page.locator("#plan-taxonomy")).to_be_focused()


def test_files_with_the_same_name_are_marked_on_their_chip(page: Page, service: Service) -> None:
    first, second = dataset()[:2]
    files = [first, second | {"name": first["name"]}]
    [error] = api_problem(service, files)["errors"]
    assert error["field"] == "images[1]"
    open_plan_tab(page)
    page.set_input_files("#plan-files", files)
    page.get_by_role("button", name="Plan 2 images").click()
    chip = page.locator("#plan-selected .file-chip.invalid")
    expect(chip).to_have_count(1)
    expect(chip.locator(".file-error")).to_have_text(error["message"])


# --- keyboard ------------------------------------------------------------------------------------


def test_the_plan_tab_is_reachable_by_keyboard(page: Page) -> None:
    # Listening from the start: Playwright intercepts file choosers once a listener exists,
    # and a keypress sent right after `expect_file_chooser` can beat that interception.
    choosers: list[FileChooser] = []
    page.on("filechooser", lambda chooser: choosers.append(chooser))
    tabs = page.get_by_role("tab")
    expect(tabs).to_have_text(["Scenes", "Plan", "Classify", "Collections & search"])
    page.locator("#tab-scenes").focus()
    page.keyboard.press("ArrowRight")
    plan = page.locator("#tab-plan")
    expect(plan).to_be_focused()
    expect(plan).to_have_attribute("aria-selected", "true")
    expect(page.locator("#panel-plan")).to_be_visible()
    expect(page.locator("#panel-scenes")).to_be_hidden()
    assert page.evaluate("location.hash") == "#plan"
    # Roving tabindex: only the selected tab is in the Tab order; Tab enters the panel.
    assert [t.get_attribute("tabindex") for t in tabs.all()] == ["-1", "0", "-1", "-1"]
    page.keyboard.press("Tab")
    expect(page.locator("#plan-drop")).to_be_focused()
    page.keyboard.press("Enter")
    for _ in range(100):
        if choosers:
            break
        page.wait_for_timeout(50)
    assert choosers, "Enter on the drop zone opens the file chooser"
    choosers[0].set_files(dataset()[:2])
    expect(page.get_by_role("button", name="Plan 2 images")).to_be_enabled()
    # The arrows still go round every tab, the Plan tab included.
    plan.focus()
    page.keyboard.press("ArrowLeft")
    expect(page.locator("#tab-scenes")).to_be_focused()
    page.keyboard.press("ArrowLeft")
    expect(page.locator("#tab-collections")).to_be_focused()
    page.keyboard.press("Home")
    page.keyboard.press("ArrowRight")
    expect(plan).to_be_focused()
    expect(page.locator("#panel-plan")).to_be_visible()


def test_the_address_hash_opens_the_plan_tab(page: Page) -> None:
    page.goto("/#plan")  # the same page: the hash changes
    expect(page.locator("#tab-plan")).to_have_attribute("aria-selected", "true")
    expect(page.locator("#panel-plan")).to_be_visible()
    page.reload()  # a fresh load at #plan
    expect(page.locator("#tab-plan")).to_have_attribute("aria-selected", "true")
    expect(page.locator("#panel-plan")).to_be_visible()
    expect(page.locator("#plan-run")).to_be_disabled()
    shoot(page, "plan-empty")


# --- scale ---------------------------------------------------------------------------------------


def test_a_plan_of_500_images_renders_fast_and_stays_usable(page: Page, service: Service) -> None:
    files = small_dataset(500)
    job_id = plan_in_page(page, files, strategy="retrieval", pairs_per_image="20")
    results = page.locator("#plan-results")
    expect(results).to_have_attribute("data-render-ms", timeout=240_000)
    result = service.wait_for(job_id, timeout=30)["result"]
    pairs = result["shortlist"]["pairs"]
    render_ms = float(results.get_attribute("data-render-ms") or "nan")
    nodes = page.evaluate("document.querySelectorAll('#plan-results *').length")
    height = page.evaluate("document.documentElement.scrollHeight")
    print(
        f"\n500-image plan: {len(pairs)} pairs; rendered {render_ms:.0f} ms after the result"
        f" arrived; {nodes} elements in the results; page {height} px tall"
    )
    assert render_ms < 3000, f"rendering took {render_ms:.0f} ms"

    # One canvas for the 250,000 cells; the tiles and rows scroll in bounded boxes.
    expect(page.locator("#plan-results canvas")).to_have_count(1)
    expect(page.locator("#plan-matrix")).to_have_attribute("data-images", "500")
    expect(page.locator("#plan-matrix")).to_have_attribute("data-pairs", str(len(pairs)))
    assert nodes < 20 * 500, f"{nodes} elements for 500 images"
    assert height < 5000, f"the page is {height} px tall"
    expect(page.locator(".hygiene-tile")).to_have_count(500)
    loaded = page.evaluate(
        "[...document.querySelectorAll('.hygiene-tile img')].filter(i => i.complete &&"
        " i.naturalWidth).length"
    )
    print(f"thumbnails loaded (lazy, in view): {loaded} of 500")
    assert loaded < 500, "thumbnails out of view are not loaded"
    expect(page.locator(".pairs-table tbody tr")).to_have_count(min(50, len(pairs)))
    shoot(page, "plan-500")

    # "Show all" adds every pair in chunks: no long freeze, and the page stays short.
    page.evaluate(
        """() => {
            window.longest = 0;
            new PerformanceObserver((list) => {
                for (const e of list.getEntries())
                    window.longest = Math.max(window.longest, e.duration);
            }).observe({type: 'longtask'});
        }"""
    )
    started = time.monotonic()
    page.get_by_role("button", name=f"Show all {len(pairs):,} pairs").click()
    expect(page.locator("#plan-pairs-status")).to_have_text(f"Showing all {len(pairs):,} pairs.")
    took = time.monotonic() - started
    longest = page.evaluate("window.longest")
    print(f"show all {len(pairs)} pairs: {took * 1000:.0f} ms, longest task {longest:.0f} ms")
    expect(page.locator(".pairs-table tbody tr")).to_have_count(len(pairs))
    assert longest < 1000, f"the page froze for {longest:.0f} ms"
    assert page.evaluate("document.documentElement.scrollHeight") < 5000

    # The filter answers at once at this size (measured in the page: change to painted).
    filter_ms = page.evaluate(
        """async () => {
            const started = performance.now();
            document.querySelector('.plan-filter input[value="drop"]').click();
            await new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r)));
            return performance.now() - started;
        }"""
    )
    drops = sum(i["action"] == "drop" for i in result["hygiene"]["images"])
    expect(page.locator(".hygiene-tile:visible")).to_have_count(drops)
    print(f"filter to drop ({drops} of 500): {filter_ms:.0f} ms")
    assert filter_ms < 1000

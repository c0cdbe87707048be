"""Multi-view captures: exact footprints and overlaps, crops that show the canvas, labels."""

from __future__ import annotations

import ast
import inspect
import io
import math

import numpy as np
import pytest
from PIL import Image

from clipcore.lab import multiview as mv
from clipcore.lab.multiview import Camera

SMALL_CANVAS = (1200, 900)
TINY_VIEW = (160, 120)


@pytest.fixture(scope="module")
def site() -> mv.Site:
    return mv.make_site(5, 0, SMALL_CANVAS)


@pytest.fixture(scope="module")
def hygiene() -> mv.HygieneSet:
    return mv.hygiene_dataset(2, 50, canvas_size=SMALL_CANVAS)


def test_imports_nothing_of_the_trained_renderers_drawing():
    tree = ast.parse(inspect.getsource(mv))
    modules = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            modules.add(node.module)
            if node.module == "clipcore.lab.world":
                assert {a.name for a in node.names} <= {"COLOURS", "SHAPES"}
            if node.module == "PIL":
                assert "ImageDraw" not in {a.name for a in node.names}
        elif isinstance(node, ast.Import):
            modules.update(a.name for a in node.names)
    assert not any("world_" in (m or "") for m in modules)
    assert "PIL.ImageDraw" not in modules


def test_polygon_clipping_of_two_squares():
    a = np.array([[0, 0], [2, 0], [2, 2], [0, 2]], float)
    b = a + 1.0
    inter = mv.clip_polygon(a, b)
    assert mv.polygon_area(inter) == pytest.approx(1.0)
    assert {tuple(p) for p in np.round(inter, 9).tolist()} == {(1, 1), (2, 1), (2, 2), (1, 2)}
    assert mv.polygon_area(mv.clip_polygon(a[::-1], b)) == pytest.approx(1.0)  # either winding
    assert mv.overlap(a, b) == pytest.approx(0.25)
    inner = np.array([[0.5, 0.5], [1, 0.5], [1, 1], [0.5, 1]])
    assert mv.overlap(a, inner) == pytest.approx(1.0)  # of the smaller footprint
    assert mv.overlap(a, a + 5) == 0.0 and len(mv.clip_polygon(a, a + 5)) == 0
    assert mv.overlap(a, a + np.array([2, 0])) == pytest.approx(0.0)  # touching edges


def test_overlap_of_cameras():
    cam = Camera(500, 400, 300, angle=23.0)
    assert mv.overlap(cam.corners(), cam.corners()) == pytest.approx(1.0)
    t = math.radians(cam.angle)
    # half a width along the camera's own x axis (corners() turns (1, 0) into (cos, sin))
    half = cam.moved(150 * math.cos(t), 150 * math.sin(t))
    assert mv.overlap(cam.corners(), half.corners()) == pytest.approx(0.5)
    assert mv.overlap(cam.corners(), cam.moved(1000, 0).corners()) == 0.0
    assert mv.polygon_area(cam.corners()) == pytest.approx(300 * 225)


def test_overlap_agrees_with_counting_points():
    rng = np.random.default_rng(0)
    ys, xs = np.mgrid[0:400, 0:400] + 0.5
    for _ in range(10):
        a, b = (
            Camera(*rng.uniform(130, 270, 2).tolist(), *rng.uniform([80, -60], [200, 60]).tolist())
            for _ in range(2)
        )
        masks = [_inside(c.corners(), xs, ys) for c in (a, b)]
        counted = (masks[0] & masks[1]).sum() / min(m.sum() for m in masks)
        assert mv.overlap(a.corners(), b.corners()) == pytest.approx(counted, abs=0.02)


def _inside(poly: np.ndarray, xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
    ok = np.ones(xs.shape, bool)
    for (ax, ay), (bx, by) in zip(poly, np.roll(poly, -1, 0), strict=True):
        ok &= (bx - ax) * (ys - ay) - (by - ay) * (xs - ax) >= 0
    return ok


def test_a_view_is_the_canvas_under_its_footprint(site):
    view = mv.render_view(site, Camera(300 + 320, 200 + 240, 640))  # 1:1, axis-aligned
    crop = site.canvas.crop((300, 200, 940, 680))
    assert np.array_equal(np.asarray(view), np.asarray(crop))
    wide = mv.render_view(site, Camera(100 + 320, 150 + 240, 640), (320, 240))  # 2x smaller
    crop = site.canvas.crop((100, 150, 740, 630)).reduce(2)
    assert np.abs(np.asarray(wide, int) - np.asarray(crop, int)).max() <= 1
    # turned a quarter: the view is the crop turned (the canvas's top edge on the right)
    turned = mv.render_view(site, Camera(600, 450, 400, angle=90.0, aspect=1.0), (400, 400))
    square = site.canvas.crop((400, 250, 800, 650))
    diff = np.asarray(turned, int) - np.asarray(square.transpose(Image.Transpose.ROTATE_90), int)
    assert np.abs(diff).mean() < 2


def test_sites_differ_and_hold_a_few_objects_a_view():
    sites = [mv.make_site(1, s) for s in range(2)]
    assert sites[0].canvas.size == mv.CANVAS_SIZE
    assert sites[0].style != sites[1].style
    held = []
    for s, site in enumerate(sites):
        assert {o.colour for o in site.objects} <= set(site.style.colours)
        for camera in mv.trajectory(np.random.default_rng(s), site, 60, ordered=False):
            held.append(len(site.objects_in(camera.corners())))
            c = camera.corners()
            assert (c >= 0).all() and (c <= np.array(site.canvas.size)).all()
            assert mv.ZOOM[0] * 0.999 <= camera.width / site.base_width <= mv.ZOOM[1] * 1.001
    assert 1.5 < np.mean(held) < 6 and np.percentile(held, 90) <= 8
    assert np.mean([h >= 1 for h in held]) > 0.85  # a few zoomed-in views show bare ground


def test_datasets_are_deterministic_and_names_reveal_nothing():
    def small(seed: int) -> mv.MultiviewDataset:
        return mv.multiview_dataset(seed, 14, 2, canvas_size=SMALL_CANVAS, view_size=TINY_VIEW)

    a, b, c = small(3), small(3), small(4)
    assert [v.jpeg for v in a.views] == [v.jpeg for v in b.views]
    assert a.names == b.names == [f"img_{i:04d}.jpg" for i in range(14)]
    assert [v.jpeg for v in a.views] != [v.jpeg for v in c.views]
    assert list(a.sites) != sorted(a.sites)  # shuffled: the order says nothing of the site
    assert Image.open(io.BytesIO(a.views[0].jpeg)).size == TINY_VIEW
    o = a.overlaps()
    assert np.allclose(o, o.T) and np.allclose(np.diag(o), 1)
    assert (o[a.sites[:, None] != a.sites[None, :]] == 0).all()
    assert all(o[i, j] >= mv.OVERLAP_MIN for i, j in a.overlapping_pairs())


def test_ordered_captures_take_small_steps():
    d = mv.multiview_dataset(3, 24, 2, True, canvas_size=SMALL_CANVAS, view_size=TINY_VIEW)
    assert d.names == [f"frame_{i:05d}.jpg" for i in range(24)]
    sites, captures = d.sites, [v.capture for v in d.views]
    assert list(sites) == sorted(sites)
    o = d.overlaps()
    for i in range(23):
        if sites[i] == sites[i + 1]:
            assert captures[i + 1] == captures[i] + 1
            assert o[i, i + 1] > 0.8


def test_hygiene_labels_hold(hygiene):
    images = hygiene.images
    assert len(images) == 50 and len({im.name for im in images}) == 50
    assert all(len(im.labels) <= 1 and im.labels <= set(mv.FLAGS) for im in images)
    for flag in mv.FLAGS:
        assert hygiene.labelled(flag), flag
    for im in images:
        decoded = Image.open(io.BytesIO(im.data))
        assert decoded.size == im.size
        high, low = mv.clipped_shares(decoded)
        assert (high, low) == (im.clipped_highlights, im.clipped_shadows)
        scale = im.size[0] / 640
        if "overexposed" in im.labels:
            assert high > mv.EXPOSED_CLIPPED_MIN
        elif "underexposed" in im.labels:
            assert low > mv.EXPOSED_CLIPPED_MIN
        else:
            assert max(high, low) < mv.CLEAN_CLIPPED_MAX
        if "blurry" in im.labels:
            assert im.blur >= mv.BLURRY_SIGMA[0] * scale
        else:
            assert im.blur <= mv.SHARP_MAX_SIGMA * scale
        assert (min(im.size) < 480) == ("low_resolution" in im.labels)


def test_near_duplicates_and_baseline(hygiene):
    groups: dict[int, list[mv.HygieneImage]] = {}
    for im in hygiene.images:
        assert (im.duplicate_group is not None) == ("near_duplicate" in im.labels)
        if im.duplicate_group is not None:
            groups.setdefault(im.duplicate_group, []).append(im)
    assert groups and all(2 <= len(g) <= 4 for g in groups.values())
    for group in groups.values():
        first = group[0].camera
        for im in group[1:]:
            assert im.site == group[0].site
            shift = math.hypot(im.camera.x - first.x, im.camera.y - first.y)
            assert shift <= 0.021 * first.width and abs(im.camera.angle - first.angle) <= 2
    by_name = {im.name: im for im in hygiene.images}
    assert len(hygiene.baseline_pairs) >= 10
    for a, b in hygiene.baseline_pairs:
        ca, cb = by_name[a].camera, by_name[b].camera
        assert not by_name[a].labels and not by_name[b].labels
        assert mv.overlap(ca.corners(), cb.corners()) >= mv.OVERLAP_MIN
        assert math.hypot(ca.x - cb.x, ca.y - cb.y) >= 0.05 * ca.width  # baseline
    # outside a burst, no two poses of a site are within duplicate reach
    distinct = hygiene.distinct_pairs()
    assert len(distinct) >= len(hygiene.baseline_pairs)
    for a, b in distinct:
        assert not mv._too_close(by_name[a].camera, by_name[b].camera)


def test_exif_reads_back(hygiene):
    tagged = [im for im in hygiene.images if im.exif is not None]
    assert 8 <= len(tagged) <= 30
    for im in hygiene.images:
        exif = Image.open(io.BytesIO(im.data)).getexif()
        if im.exif is None:
            assert 0x010F not in exif
            continue
        sub = exif.get_ifd(0x8769)
        assert exif[0x010F] == im.exif.make and exif[0x0110] == im.exif.model
        assert float(sub[0x920A]) == pytest.approx(im.exif.focal_length_mm)
        assert sub.get(0xA405) == im.exif.focal_length_35mm

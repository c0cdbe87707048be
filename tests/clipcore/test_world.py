"""The generated world: determinism, geometry, captions and the independent renderer."""

from __future__ import annotations

import math
import time

import numpy as np
import pytest

from clipcore.lab import world, world_alt, world_third
from clipcore.lab.world import COLOURS, SHAPES, Claim, ClaimItem, claim_holds

RENDERERS = [world, world_alt, world_third]
IDS = ["main", "alt", "third"]


def test_palette_and_shapes():
    assert COLOURS["red"] == (220, 40, 40)
    assert COLOURS["purple"] == (140, 60, 190)
    assert set(COLOURS) == {"red", "green", "blue", "yellow", "orange", "purple"}
    assert SHAPES == ("circle", "square", "triangle", "star", "cross")
    assert len(world.zero_shot_prompts()) == 30
    assert world.zero_shot_prompts()[0] == "a photo of a red circle."


@pytest.mark.parametrize("mod", RENDERERS, ids=IDS)
def test_deterministic_from_seed(mod):
    a = mod.generate_scenes(7, 5, size=64)
    b = mod.generate_scenes(7, 3, size=64)  # scene i does not depend on count
    c = mod.generate_scenes(8, 3, size=64)
    for x, y in zip(a[:3], b, strict=True):
        assert np.array_equal(np.asarray(x.image), np.asarray(y.image))
        assert x.captions == y.captions
    assert any(
        not np.array_equal(np.asarray(x.image), np.asarray(y.image))
        for x, y in zip(a[:3], c, strict=True)
    )


@pytest.mark.parametrize("mod", RENDERERS, ids=IDS)
def test_scenes_are_consistent(mod):
    for scene in mod.generate_scenes(3, 40, size=128):
        assert scene.image.mode == "RGB" and scene.image.size == (128, 128)
        assert 1 <= len(scene.objects) <= 6
        assert scene.captions and len(scene.captions) == len(scene.claims)
        for o in scene.objects:
            assert o.colour in COLOURS and o.shape in SHAPES
            assert o.mask.shape == (128, 128) and o.mask.dtype == bool and o.mask.any()
            x0, y0, x1, y1 = o.box
            assert 0 <= x0 < x1 <= 128 and 0 <= y0 < y1 <= 128
            ys, xs = np.nonzero(o.mask)
            # the visible mask lies inside the box (up to a pixel of antialiasing)
            assert xs.min() >= x0 - 1 and xs.max() + 1 <= x1 + 1
            assert ys.min() >= y0 - 1 and ys.max() + 1 <= y1 + 1
            assert world.MIN_SCALE - 1e-9 <= o.size_fraction <= world.MAX_SCALE + 1e-9
        for claim in scene.claims:  # every caption describes its own scene
            assert claim_holds(claim, scene.objects)
        words = " ".join(scene.captions)
        for o in scene.objects:
            assert o.colour in words


def test_object_counts_and_sizes_cover_the_spec():
    scenes = world.generate_scenes(11, 300, size=64)
    counts = {len(s.objects) for s in scenes}
    assert counts == {1, 2, 3, 4, 5, 6}
    sizes = [o.size_fraction for s in scenes for o in s.objects]
    assert min(sizes) < 0.1 and max(sizes) > 0.5
    assert {o.shape for s in scenes for o in s.objects} == set(SHAPES)


@pytest.mark.parametrize("mod", RENDERERS, ids=IDS)
@pytest.mark.parametrize("colour", list(COLOURS))
def test_render_object_colour(mod, colour):
    scene = mod.render_object(colour, "square", size=96, scale=0.6)
    px = np.asarray(scene.image, dtype=np.float32)[48, 48]
    assert np.abs(px - np.array(COLOURS[colour])).max() < 40
    assert scene.captions[0] == f"a photo of {world.article(colour)} {colour} square"


@pytest.mark.parametrize("mod", RENDERERS, ids=IDS)
def test_render_object_geometry(mod):
    size, scale = 128, 0.5
    r = scale * size / 2
    circle = mod.render_object("red", "circle", size=size, scale=scale).objects[0]
    assert circle.mask.sum() == pytest.approx(math.pi * r * r, rel=0.05)
    square = mod.render_object("blue", "square", size=size, scale=scale).objects[0]
    assert square.mask.sum() == pytest.approx(2 * r * r, rel=0.05)
    tri = mod.render_object("green", "triangle", size=size, scale=scale).objects[0]
    assert tri.mask.sum() == pytest.approx(3 * math.sqrt(3) / 4 * r * r, rel=0.06)
    star = mod.render_object("yellow", "star", size=size, scale=scale).objects[0]
    cross = mod.render_object("orange", "cross", size=size, scale=scale).objects[0]
    # stars and crosses are thinner than the square around them
    assert 0.2 * 4 * r * r < star.mask.sum() < 0.45 * 4 * r * r
    assert 0.3 * 4 * r * r < cross.mask.sum() < 0.65 * 4 * r * r
    x0, _, x1, _ = circle.box
    assert x0 == pytest.approx(size / 2 - r, abs=1.5) and x1 == pytest.approx(size / 2 + r, abs=1.5)
    # position and rotation: a small object on the left, a rotated square
    left = mod.render_object("red", "circle", size=size, scale=0.2, center=(0.2, 0.5))
    assert left.objects[0].position == ("left", "center")
    assert "a red circle on the left" in left.captions
    rotated = mod.render_object("blue", "square", size=size, scale=scale, rotation=45).objects[0]
    assert rotated.mask.sum() == pytest.approx(2 * r * r, rel=0.05)
    assert (rotated.box[2] - rotated.box[0]) > (square.box[2] - square.box[0]) * 1.2


@pytest.mark.parametrize("other", [world_alt, world_third], ids=IDS[1:])
def test_renderers_differ_in_pixels_but_agree_in_content(other):
    a = np.asarray(world.render_object("purple", "star", scale=0.6).image, dtype=np.float32)
    b = np.asarray(other.render_object("purple", "star", scale=0.6).image, dtype=np.float32)
    assert not np.array_equal(a, b)
    ma = world.render_object("purple", "star", scale=0.6).objects[0].mask
    mb = other.render_object("purple", "star", scale=0.6).objects[0].mask
    assert np.logical_and(ma, mb).sum() / np.logical_or(ma, mb).sum() > 0.8


# How each renderer is asked for the robustness study's cases (clipcore.lab.robustness).
HARD_EDGES = {world: {"supersample": 1, "blur": 0.0}, world_alt: {"antialias": False}}
HARD_EDGES[world_third] = {"antialias": False}


@pytest.mark.parametrize("mod", RENDERERS, ids=IDS)
def test_plain_rgb_background_tint_and_hard_edges(mod):
    rng = np.random.default_rng(4)
    bg = (110.0, 131.0, 97.0)  # a grey with a cast
    scene = mod.render_scene(rng, size=64, n_objects=1, background=bg, scale_range=(0.2, 0.4))
    corner = np.asarray(scene.image, dtype=np.float32)[0, 0]
    assert np.abs(corner - np.array(bg)).max() <= 12  # (the renderer's own grain aside)
    plain = mod.render_object("red", "circle", size=64, background=128)
    tinted = mod.render_object("red", "circle", size=64, background=128, tint=(15, -12, 4))
    a, b = np.asarray(plain.image, np.int16), np.asarray(tinted.image, np.int16)
    assert (b[0, 0] - a[0, 0]).tolist() == [15, -12, 4]  # the background moves
    assert (b[32, 32] == a[32, 32]).all()  # the object does not
    hard = mod.render_scene(
        np.random.default_rng(5), size=52, n_objects=1, background=90, **HARD_EDGES[mod]
    )
    levels = np.unique(np.asarray(hard.image).reshape(-1, 3), axis=0)
    # two colours: hard edges (world adds sensor noise to some images, not to this one)
    assert len(levels) == 2
    assert hard.objects[0].mask.any()


def _obj(colour, shape, size=0.3, center=(0.5, 0.5)):
    return world.WorldObject(colour, shape, (0, 0, 1, 1), np.zeros((1, 1), bool), size, center)


def test_claim_semantics():
    red_circle = Claim((ClaimItem(1, "red", "circle"),))
    scene = [_obj("red", "circle"), _obj("blue", "star")]
    assert claim_holds(red_circle, [_obj("red", "circle")])
    assert not claim_holds(red_circle, scene)  # "a photo of a red circle" is the whole photo
    assert claim_holds(Claim(red_circle.items, exhaustive=False), scene)  # "with a red circle"
    two = Claim((ClaimItem(2, "red", "circle"), ClaimItem(1, "blue", "star")))
    assert claim_holds(two, [_obj("red", "circle"), _obj("blue", "star"), _obj("red", "circle")])
    assert not claim_holds(two, scene)
    small_left = Claim((ClaimItem(1, "blue", "star", "small", "left"),))
    assert claim_holds(small_left, [_obj("blue", "star", 0.1, (0.2, 0.8))])
    assert not claim_holds(small_left, [_obj("blue", "star", 0.5, (0.2, 0.8))])
    assert not claim_holds(small_left, [_obj("blue", "star", 0.1, (0.8, 0.8))])


def test_captions_read_like_english():
    caps = world.generate_scenes(5, 60, size=64)
    text = [c for s in caps for c in s.captions]
    assert "a photo of a red circle" in text or any(c.startswith("a photo of a") for c in text)
    assert any(" and " in c for c in text)
    assert any(c.startswith(("two ", "three ", "four ", "five ", "six ")) for c in text)
    assert any("small" in c for c in text) and any(
        "on the left" in c or "on the right" in c for c in text
    )
    assert not any("  " in c or c != c.strip() for c in text)
    assert all("an orange" in c or "a orange" not in c for c in text)


def test_fast_enough_for_training():
    rng = np.random.default_rng(0)
    t = time.perf_counter()
    for _ in range(200):
        world.render_scene(rng, size=64)
    assert time.perf_counter() - t < 3.0  # about 0.6 ms each on one core

"""The third renderer: its own code, the world's specification, masks that match its pixels."""

from __future__ import annotations

import ast
import inspect
import math

import numpy as np
import pytest

from clipcore.lab import world, world_third
from clipcore.lab.world import COLOURS, MAX_SCALE, MIN_SCALE, SHAPES, claim_holds


def test_imports_nothing_of_the_other_renderers_drawing():
    tree = ast.parse(inspect.getsource(world_third))
    allowed = {"COLOURS", "SHAPES", "MIN_SCALE", "MAX_SCALE", "Scene", "WorldObject"}
    allowed.add("make_captions")
    modules = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            modules.add(node.module)
            if node.module == "clipcore.lab.world":
                assert {a.name for a in node.names} <= allowed
            if node.module == "PIL":
                assert {a.name for a in node.names} == {"Image"}  # no ImageDraw, ImageFilter
        elif isinstance(node, ast.Import):
            modules.update(a.name for a in node.names)
    assert "clipcore.lab.world_alt" not in modules and "PIL.ImageDraw" not in modules
    assert not any("world_alt" in (m or "") for m in modules)
    assert modules <= {"__future__", "math", "numpy", "PIL", "clipcore.lab.world"}


def test_deterministic_from_seed():
    a = world_third.generate_scenes(7, 5, size=64)
    b = world_third.generate_scenes(7, 3, size=64)  # scene i does not depend on count
    c = world_third.generate_scenes(8, 3, size=64)
    for x, y in zip(a[:3], b, strict=True):
        assert np.array_equal(np.asarray(x.image), np.asarray(y.image))
        assert x.captions == y.captions
        for o, p in zip(x.objects, y.objects, strict=True):
            assert np.array_equal(o.mask, p.mask) and o.box == p.box
    assert any(
        not np.array_equal(np.asarray(x.image), np.asarray(y.image))
        for x, y in zip(a[:3], c, strict=True)
    )
    # a scene's pixels are its own: not those of the other renderers from the same seed
    rng = np.random.default_rng(3)
    mine = np.asarray(world_third.render_scene(rng, n_objects=1).image)
    theirs = np.asarray(world.render_scene(np.random.default_rng(3), n_objects=1).image)
    assert not np.array_equal(mine, theirs)


def test_scenes_cover_the_spec_and_captions_hold():
    scenes = world_third.generate_scenes(11, 150, size=96)
    assert {len(s.objects) for s in scenes} == {1, 2, 3, 4, 5, 6}
    sizes = [o.size_fraction for s in scenes for o in s.objects]
    assert MIN_SCALE - 1e-9 <= min(sizes) < 0.1 and 0.5 < max(sizes) <= MAX_SCALE + 1e-9
    assert {o.shape for s in scenes for o in s.objects} == set(SHAPES)
    assert {o.colour for s in scenes for o in s.objects} == set(COLOURS)
    for scene in scenes:
        assert scene.image.mode == "RGB" and scene.image.size == (96, 96)
        assert scene.captions and len(scene.captions) == len(scene.claims)
        for claim in scene.claims:
            assert claim_holds(claim, scene.objects)
        words = " ".join(scene.captions)
        masks = np.stack([o.mask for o in scene.objects])
        assert masks.sum(0).max() <= 1  # visible masks are disjoint
        for o in scene.objects:
            assert o.colour in words
            assert o.mask.shape == (96, 96) and o.mask.dtype == bool and o.mask.any()
            x0, y0, x1, y1 = o.box
            assert 0 <= x0 < x1 <= 96 and 0 <= y0 < y1 <= 96
            ys, xs = np.nonzero(o.mask)
            assert xs.min() >= x0 - 1 and xs.max() + 1 <= x1 + 1
            assert ys.min() >= y0 - 1 and ys.max() + 1 <= y1 + 1
            # the drawn extent honours the size: circumscribed diameter = size_fraction
            cx, cy = o.center[0] * 96, o.center[1] * 96
            reach = np.hypot(xs + 0.5 - cx, ys + 0.5 - cy).max() * 2 / 96
            assert reach <= o.size_fraction + 2.5 / 96
            assert o.rotation is not None and 0 <= o.center[0] <= 1


def test_scale_range_is_honoured():
    for lo, hi in ((0.2, 0.7), (0.07, 0.2)):
        scenes = world_third.generate_scenes(5, 80, n_objects=1, scale_range=(lo, hi))
        sizes = [s.objects[0].size_fraction for s in scenes]
        assert lo <= min(sizes) and max(sizes) <= hi
        assert max(sizes) - min(sizes) > 0.5 * (hi - lo)


def _nearest(pixels: np.ndarray, palette: np.ndarray) -> np.ndarray:
    return np.linalg.norm(pixels[:, None, :] - palette[None, :, :], axis=2).argmin(1)


def test_masks_match_the_drawn_colour_pixels():
    """On an exact background, each pixel's nearest drawn colour is the object whose mask
    holds it (or the background outside every mask), up to a few edge pixels."""
    bg = np.array([128.0, 128.0, 128.0])
    for i in range(30):
        scene = world_third.render_scene(
            np.random.default_rng([i, 9]), size=96, background=tuple(bg), effects=False
        )
        px = np.asarray(scene.image, dtype=np.float64).reshape(-1, 3)
        owner = np.zeros(96 * 96, int)  # 0: background
        colours = [bg]
        for k, o in enumerate(scene.objects, start=1):
            m = o.mask.reshape(-1)
            owner[m] = k
            values, counts = np.unique(px[m], axis=0, return_counts=True)
            drawn = values[counts.argmax()]  # flat colour: the interior's exact level
            colours.append(drawn)
            names = list(COLOURS)
            base = np.array([COLOURS[c] for c in names], np.float64)
            assert names[_nearest(drawn[None], base)[0]] == o.colour
        nearest = _nearest(px, np.array(colours))
        # where two objects touch, their colours may be alike: count background vs object
        wrong = ~((nearest == owner) | ((nearest > 0) & (owner > 0)))
        wrong = wrong.reshape(96, 96)
        inside = (owner > 0).reshape(96, 96)
        band = _edge_band(inside)
        for o in scene.objects:  # where objects meet, edge pixels mix their colours
            band |= _edge_band(o.mask)
        assert not (wrong & ~band).any(), i  # away from the edges, masks and pixels agree
        assert wrong.sum() <= 0.3 * (band & inside).sum() + 1, i  # and mostly at the edges
        for k, o in enumerate(scene.objects, start=1):
            core = o.mask & ~_edge_band(o.mask)
            assert (nearest.reshape(96, 96)[core] == k).all(), i


def _edge_band(mask: np.ndarray) -> np.ndarray:
    """Pixels within one pixel (8-neighbourhood) of the mask's boundary."""
    p = np.pad(mask, 1, mode="edge")
    grow = np.zeros_like(mask)
    shrink = np.ones_like(mask)
    for dy in range(3):
        for dx in range(3):
            grow |= p[dy : dy + mask.shape[0], dx : dx + mask.shape[1]]
            shrink &= p[dy : dy + mask.shape[0], dx : dx + mask.shape[1]]
    return grow & ~shrink


@pytest.mark.parametrize("colour", list(COLOURS))
def test_colour_jitter_keeps_each_colour_its_name(colour):
    rng = np.random.default_rng(1)
    names = list(COLOURS)
    base = np.array([COLOURS[c] for c in names], np.float64)
    draws = np.array([world_third.jitter_colour(rng, colour) for _ in range(400)], np.float64)
    assert (np.array(names)[_nearest(draws, base)] == colour).all()
    assert draws.std(0).max() > 2  # it does jitter
    hue = [world_third._to_oklab(d) for d in draws]
    h0 = world_third._to_oklab(np.array(COLOURS[colour], np.float64))
    dh = [
        math.degrees(
            abs(math.remainder(math.atan2(h[2], h[1]) - math.atan2(h0[2], h0[1]), 2 * math.pi))
        )
        for h in hue
    ]
    assert max(dh) <= world_third.HUE_JITTER + 1.5  # gamut clipping may move it a little


@pytest.mark.parametrize("colour", list(COLOURS))
def test_render_object_colour(colour):
    scene = world_third.render_object(colour, "square", size=96, scale=0.6)
    px = np.asarray(scene.image, dtype=np.float32)[48, 48]
    assert np.abs(px - np.array(COLOURS[colour])).max() < 40
    assert scene.captions[0] == f"a photo of {world.article(colour)} {colour} square"


def test_render_object_geometry_and_proportions():
    size, scale = 128, 0.5
    r = scale * size / 2
    area = {
        s: world_third.render_object("red", s, size=size, scale=scale, seed=3).objects[0].mask.sum()
        for s in SHAPES
    }
    assert area["circle"] == pytest.approx(math.pi * r * r, rel=0.03)
    assert area["square"] == pytest.approx(2 * r * r, rel=0.03)
    assert area["triangle"] == pytest.approx(3 * math.sqrt(3) / 4 * r * r, rel=0.04)
    # star: 5 q sin(36 deg) r^2 with inner radius q in 0.39-0.49
    star = 5 * math.sin(math.radians(36)) * r * r
    assert 0.37 * star < area["star"] < 0.51 * star

    # cross: (8w - 4w^2) / (1 + w^2) r^2 with arm half-width w in 0.27-0.35
    def cross(w):
        return (8 * w - 4 * w * w) / (1 + w * w) * r * r

    assert cross(0.26) < area["cross"] < cross(0.36)
    circle = world_third.render_object("red", "circle", size=size, scale=scale).objects[0]
    x0, _, x1, _ = circle.box
    assert x0 == pytest.approx(size / 2 - r, abs=0.01) and x1 == pytest.approx(size / 2 + r)
    left = world_third.render_object("red", "circle", size=size, scale=0.2, center=(0.2, 0.5))
    assert left.objects[0].position == ("left", "center")
    assert "a red circle on the left" in left.captions
    square = world_third.render_object("blue", "square", size=size, scale=scale).objects[0]
    rotated = world_third.render_object("blue", "square", size=size, scale=scale, rotation=45)
    assert rotated.objects[0].mask.sum() == pytest.approx(2 * r * r, rel=0.03)
    assert (rotated.objects[0].box[2] - rotated.objects[0].box[0]) > 1.3 * (
        square.box[2] - square.box[0]
    )
    # proportions vary with the seed, within the bounds
    stars = {
        world_third.render_object("red", "star", size=size, scale=scale, seed=s)
        .objects[0]
        .mask.sum()
        for s in range(6)
    }
    assert len(stars) > 1


def _hull_area(points: np.ndarray) -> float:
    pts = sorted(set(map(tuple, points.tolist())))

    def half(seq):
        out: list = []
        for p in seq:
            while len(out) >= 2:
                (ax, ay), (bx, by) = out[-2], out[-1]
                if (bx - ax) * (p[1] - ay) - (by - ay) * (p[0] - ax) > 0:
                    break
                out.pop()
            out.append(p)
        return out

    hull = half(pts)[:-1] + half(pts[::-1])[:-1]
    x, y = np.array(hull).T
    return 0.5 * abs(float(np.dot(x, np.roll(y, -1)) - np.dot(np.roll(x, -1), y)))


def _shape_of(mask: np.ndarray, diameter_px: float) -> str:
    """Name a shape from its fill of the circumscribed disc and its solidity."""
    ys, xs = np.nonzero(mask)
    corners = np.concatenate([np.stack([xs + dx, ys + dy], 1) for dx in (0, 1) for dy in (0, 1)])
    area = float(mask.sum())
    fill = area / (math.pi * (diameter_px / 2) ** 2)
    solidity = area / _hull_area(corners)
    if fill > 0.85:
        return "circle"
    if solidity > 0.85:
        return "square" if fill > 0.52 else "triangle"
    return "cross" if fill > 0.52 else "star"


def test_each_shape_is_distinguishable():
    scenes = world_third.generate_scenes(21, 100, size=128, n_objects=1, scale_range=(0.3, 0.7))
    for scene in scenes:
        o = scene.objects[0]
        assert _shape_of(o.mask, o.size_fraction * 128) == o.shape


def test_backgrounds_tint_and_hard_edges():
    for kind in world_third.BACKGROUNDS:
        scene = world_third.render_scene(np.random.default_rng(1), n_objects=1, background=kind)
        assert scene.image.size == (128, 128)
    with pytest.raises(ValueError):
        world_third.render_scene(np.random.default_rng(1), background="stripes")
    plain = world_third.render_object("red", "circle", size=64, background=128)
    tinted = world_third.render_object("red", "circle", size=64, background=128, tint=(15, -12, 4))
    a, b = np.asarray(plain.image, np.int16), np.asarray(tinted.image, np.int16)
    assert (b[0, 0] - a[0, 0]).tolist() == [15, -12, 4]  # the background moves
    assert (b[32, 32] == a[32, 32]).all()  # the object does not
    hard = world_third.render_object("green", "star", size=48, antialias=False, rotation=17)
    assert len(np.unique(np.asarray(hard.image).reshape(-1, 3), axis=0)) == 2
    soft = world_third.render_object("green", "star", size=48, rotation=17)
    assert len(np.unique(np.asarray(soft.image).reshape(-1, 3), axis=0)) > 5
    near = world_third.render_scene(
        np.random.default_rng(2), size=56, n_objects=1, antialias=False, background=90
    )
    assert len(np.unique(np.asarray(near.image).reshape(-1, 3), axis=0)) == 2


def test_native_cast_can_be_left_out():
    """Same scenes, grey backgrounds: the objects and their masks do not move."""
    casts = 0
    for i in range(12):
        kw = dict(size=64, effects=False, background=world_third.BACKGROUNDS[i % 4])
        a = world_third.render_scene(np.random.default_rng([i, 5]), **kw)
        b = world_third.render_scene(np.random.default_rng([i, 5]), native_cast=False, **kw)
        assert a.captions == b.captions
        for o, p in zip(a.objects, b.objects, strict=True):
            assert np.array_equal(o.mask, p.mask) and o.colour == p.colour
        near = np.any([o.mask for o in b.objects], axis=0)
        for _ in range(3):  # (thin star tips cover less than half of a pixel or two)
            near = near | _edge_band(near)
        bg = ~near  # away from the objects
        px = np.asarray(b.image, np.int16)[bg]
        assert np.abs(px - px[:, :1]).max() <= 1  # grey: R = G = B (up to rounding)
        casts += not np.array_equal(np.asarray(a.image), np.asarray(b.image))
    assert casts >= 3


def test_unknown_names_are_refused():
    with pytest.raises(ValueError):
        world_third.render_object("pink", "circle")
    with pytest.raises(ValueError):
        world_third.render_object("red", "hexagon")

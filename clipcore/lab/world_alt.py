"""An independent second renderer of the generated world, for evaluation and tests only.

Same specification as ``clipcore.lab.world`` (colours, shapes, sizes 7-70 % of the side, grey
backgrounds, 1-6 objects), different code: shapes are analytic signed-distance fields
evaluated in numpy (exact circle and box distances, polygon distances for the triangle and
the star, a union of two boxes for the cross), antialiased by a one-pixel linear ramp
instead of supersampling; colours are jittered in HSV instead of RGB; backgrounds are made
with numpy (radial or linear gradients, box-filtered value noise, a separable binomial
blur) instead of PIL; shape proportions and object placement follow their own rules.
No model is ever trained on these pixels, so accuracy on them shows whether a model learnt
colours and shapes rather than ``clipcore.lab.world``'s pixels.

It returns the same ``Scene`` / ``WorldObject`` types (and the same caption language) as
``clipcore.lab.world``.
"""

from __future__ import annotations

import colorsys
import math

import numpy as np
from PIL import Image

from clipcore.lab.world import (
    COLOURS,
    MAX_SCALE,
    MIN_SCALE,
    SHAPES,
    Scene,
    WorldObject,
    make_captions,
)

__all__ = [
    "BACKGROUNDS",
    "COLOURS",
    "SHAPES",
    "generate_scenes",
    "render_object",
    "render_scene",
]


# ----------------------------------------------------------------------------- distances


def _sd_polygon(px: np.ndarray, py: np.ndarray, verts: np.ndarray) -> np.ndarray:
    """Signed distance (negative inside) from points to a simple polygon."""
    d = np.full(px.shape, np.inf)
    inside = np.zeros(px.shape, bool)
    n = len(verts)
    for i in range(n):
        ax, ay = verts[i]
        bx, by = verts[(i + 1) % n]
        ex, ey = bx - ax, by - ay
        wx, wy = px - ax, py - ay
        t = np.clip((wx * ex + wy * ey) / (ex * ex + ey * ey), 0.0, 1.0)
        dx, dy = wx - ex * t, wy - ey * t
        d = np.minimum(d, dx * dx + dy * dy)
        # crossing-number test
        cond = (ay > py) != (by > py)
        xint = ax + (py - ay) * ex / np.where(ey == 0, 1e-12, ey)
        inside ^= cond & (px < xint)
    return np.where(inside, -1.0, 1.0) * np.sqrt(d)


def _sd_box(px: np.ndarray, py: np.ndarray, hx: float, hy: float) -> np.ndarray:
    qx, qy = np.abs(px) - hx, np.abs(py) - hy
    outside = np.hypot(np.maximum(qx, 0), np.maximum(qy, 0))
    return outside + np.minimum(np.maximum(qx, qy), 0)


def _signed_distance(
    shape: str, px: np.ndarray, py: np.ndarray, r: float, rng: np.random.Generator
) -> np.ndarray:
    """Distance in pixels to a shape of circumradius ``r`` at the origin of (px, py)."""
    if shape == "circle":
        return np.hypot(px, py) - r
    if shape == "square":
        h = r / math.sqrt(2)
        return _sd_box(px, py, h, h)
    if shape == "cross":
        w = float(rng.uniform(0.28, 0.34))  # half-width relative to the half-length
        a = r / math.sqrt(1 + w * w)
        return np.minimum(_sd_box(px, py, a, w * a), _sd_box(px, py, w * a, a))
    if shape == "triangle":
        k = np.arange(3)
        ang = math.pi / 2 + k * 2 * math.pi / 3  # apex at the top (y grows downwards)
        verts = np.stack([r * np.cos(ang), -r * np.sin(ang)], 1)
        return _sd_polygon(px, py, verts)
    if shape == "star":
        inner = float(rng.uniform(0.4, 0.48))
        k = np.arange(10)
        ang = math.pi / 2 + k * math.pi / 5
        rad = np.where(k % 2 == 0, r, r * inner)
        verts = np.stack([rad * np.cos(ang), -rad * np.sin(ang)], 1)
        return _sd_polygon(px, py, verts)
    raise ValueError(f"unknown shape {shape!r}")


def _coverage(
    shape: str,
    size: int,
    cx: float,
    cy: float,
    r: float,
    rotation: float,
    rng: np.random.Generator,
    antialias: bool = True,
) -> np.ndarray:
    """Coverage 0..1 over the whole image: a one-pixel ramp across the edge (else 0 or 1)."""
    x0, x1 = max(int(cx - r) - 2, 0), min(int(cx + r) + 3, size)
    y0, y1 = max(int(cy - r) - 2, 0), min(int(cy + r) + 3, size)
    ys, xs = np.mgrid[y0:y1, x0:x1].astype(np.float64)
    dx, dy = xs + 0.5 - cx, ys + 0.5 - cy
    t = math.radians(-rotation)
    px = dx * math.cos(t) - dy * math.sin(t)
    py = dx * math.sin(t) + dy * math.cos(t)
    d = _signed_distance(shape, px, py, r, rng)
    cov = np.zeros((size, size), np.float32)
    cov[y0:y1, x0:x1] = np.clip(0.5 - d, 0.0, 1.0) if antialias else d < 0
    return cov


# ----------------------------------------------------------------------------- appearance


def _colour(rng: np.random.Generator, name: str) -> np.ndarray:
    r, g, b = (v / 255.0 for v in COLOURS[name])
    h, s, v = colorsys.rgb_to_hsv(r, g, b)
    h = (h + rng.uniform(-0.012, 0.012)) % 1.0
    s = min(1.0, s * rng.uniform(0.9, 1.05))
    v = min(1.0, v * rng.uniform(0.9, 1.05))
    return np.array(colorsys.hsv_to_rgb(h, s, v), np.float32) * 255.0


def _binomial_blur(a: np.ndarray, passes: int) -> np.ndarray:
    for _ in range(passes):
        p = np.pad(a, ((1, 1), (1, 1)) + ((0, 0),) * (a.ndim - 2), mode="edge")
        a = (p[:-2] + 2 * p[1:-1] + p[2:]) / 4
        a = (a[:, :-2] + 2 * a[:, 1:-1] + a[:, 2:]) / 4
    return a


BACKGROUNDS: tuple[str, ...] = ("plain", "linear", "radial", "noise")


def _background(rng: np.random.Generator, size: int, kind: str | None = None) -> np.ndarray:
    kind = rng.integers(4) if kind is None else BACKGROUNDS.index(kind)
    yy, xx = (np.mgrid[0:size, 0:size] + 0.5) / size
    if kind == 0:  # plain
        g = np.full((size, size), rng.uniform(25, 230))
    elif kind == 1:  # linear gradient between two greys
        a, b = rng.uniform(25, 230, 2)
        u, v = rng.normal(size=2)
        t = (xx - 0.5) * u + (yy - 0.5) * v
        t = (t - t.min()) / max(t.max() - t.min(), 1e-9)
        g = a + (b - a) * t
    elif kind == 2:  # radial gradient
        a, b = rng.uniform(25, 230, 2)
        ox, oy = rng.uniform(0, 1, 2)
        t = np.hypot(xx - ox, yy - oy) / math.sqrt(2)
        g = a + (b - a) * t
    else:  # value noise: blurred white noise on a coarse grid, upsampled by repetition
        cell = int(rng.integers(4, 17))
        n = -(-size // cell) + 1
        coarse = rng.normal(0, rng.uniform(8, 30), (n, n))
        up = np.kron(coarse, np.ones((cell, cell)))[:size, :size]
        g = rng.uniform(50, 205) + _binomial_blur(up, cell)
        g = g + rng.normal(0, rng.uniform(1, 10), (size, size))
    return np.repeat(np.clip(g, 0, 255)[:, :, None], 3, 2).astype(np.float32)


def _plain_or(
    rng: np.random.Generator, size: int, background, tint: np.ndarray | None
) -> np.ndarray:
    """The background asked for (a kind, a grey level, an RGB tuple; None: random), tinted."""
    if background is None or isinstance(background, str):
        img = _background(rng, size, background)
    else:
        rgb = (background,) * 3 if np.isscalar(background) else background
        img = np.empty((size, size, 3), np.float32)
        img[:] = np.asarray(rgb, np.float32)
    if tint is not None:
        img = np.clip(img + np.asarray(tint, np.float32), 0, 255)
    return img


# ----------------------------------------------------------------------------- scenes


def render_scene(
    rng: np.random.Generator,
    size: int = 128,
    n_objects: int | None = None,
    *,
    scale_range: tuple[float, float] | None = None,
    colours: list[str] | None = None,
    shapes: list[str] | None = None,
    background: str | float | tuple | None = None,
    tint: np.ndarray | None = None,
    antialias: bool = True,
    captions: bool = True,
) -> Scene:
    """A random scene drawn by this renderer; arguments as in ``clipcore.lab.world``.

    ``background``: one of ``BACKGROUNDS``, a grey level or an RGB tuple (else random);
    ``tint``: an RGB offset on the background only; ``antialias=False``: hard edges and no
    final blur.
    """
    n = n_objects if n_objects is not None else int(rng.integers(1, 7))
    if scale_range is None:
        scale_range = (MIN_SCALE, MAX_SCALE if n == 1 else max(0.25, 0.75 / math.sqrt(n)))
    lo, hi = scale_range
    img = _plain_or(rng, size, background, tint)
    discs: list[tuple[float, float, float]] = []
    objs: list[dict] = []
    for k in range(n):
        colour = colours[k] if colours is not None else list(COLOURS)[rng.integers(6)]
        shape = shapes[k] if shapes is not None else SHAPES[rng.integers(5)]
        for tries in range(60):
            s = rng.uniform(lo, hi) if tries < 30 else rng.uniform(lo, (lo + hi) / 2)
            r = s * size / 2
            cx, cy = rng.uniform(r + 1, size - r - 1, 2) if size - 2 * r > 2 else (size / 2,) * 2
            # circles around the shapes may overlap by at most 15 % of the smaller diameter
            if all(
                math.hypot(cx - ox, cy - oy) >= orr + r - 0.3 * min(orr, r) for ox, oy, orr in discs
            ):
                break
        else:
            continue
        discs.append((cx, cy, r))
        rot = rng.uniform(0, 360)
        cov = _coverage(shape, size, cx, cy, r, rot, rng, antialias)
        rgb = _colour(rng, colour)
        for o in objs:
            o["visible"] *= 1 - cov
        objs.append(
            dict(
                colour=colour,
                shape=shape,
                cov=cov,
                visible=cov.copy(),
                scale=s,
                center=(cx / size, cy / size),
                rot=rot,
            )
        )
        img = img * (1 - cov[:, :, None]) + rgb * cov[:, :, None]
    if rng.random() < 0.3 and antialias:
        img = _binomial_blur(img, 1)
    image = Image.fromarray(np.clip(np.rint(img), 0, 255).astype(np.uint8), "RGB")
    objects = []
    for o in objs:
        ys, xs = np.nonzero(o["cov"] > 0.02)
        box = (float(xs.min()), float(ys.min()), float(xs.max() + 1), float(ys.max() + 1))
        objects.append(
            WorldObject(
                o["colour"], o["shape"], box, o["visible"] > 0.5, o["scale"], o["center"], o["rot"]
            )
        )
    caps, claims = make_captions(objects, rng) if captions else ([], [])
    return Scene(image, objects, caps, claims)


def render_object(
    colour: str,
    shape: str,
    *,
    size: int = 128,
    scale: float = 0.5,
    center: tuple[float, float] = (0.5, 0.5),
    rotation: float = 0.0,
    background: str | float | tuple = 200,
    seed: int = 0,
    tint: np.ndarray | None = None,
    antialias: bool = True,
) -> Scene:
    """One fully specified object (as ``world.render_object``; default plain grey 200)."""
    rng = np.random.default_rng(seed)
    img = _plain_or(rng, size, background, tint)
    cx, cy, r = center[0] * size, center[1] * size, scale * size / 2
    cov = _coverage(shape, size, cx, cy, r, rotation, rng, antialias)
    img = img * (1 - cov[:, :, None]) + _colour(rng, colour) * cov[:, :, None]
    image = Image.fromarray(np.clip(np.rint(img), 0, 255).astype(np.uint8), "RGB")
    ys, xs = np.nonzero(cov > 0.02)
    box = (float(xs.min()), float(ys.min()), float(xs.max() + 1), float(ys.max() + 1))
    obj = WorldObject(colour, shape, box, cov > 0.5, scale, tuple(center), rotation)
    caps, claims = make_captions([obj], rng)
    return Scene(image, [obj], caps, claims)


def generate_scenes(seed: int, count: int, **kw) -> list[Scene]:
    """``count`` scenes; scene ``i`` is ``render_scene(default_rng([seed, i, 1]), **kw)``."""
    return [render_scene(np.random.default_rng([seed, i, 1]), **kw) for i in range(count)]

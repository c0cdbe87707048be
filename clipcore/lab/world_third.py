"""A third independent renderer of the generated world, for evaluation and tests only.

Same specification as ``clipcore.lab.world`` (its colours and shapes, sizes 7-70 % of the
side as circumscribed diameter, 1-6 objects, the same captions), different code from both
``clipcore.lab.world`` (PIL ``ImageDraw`` on a supersampled canvas) and
``clipcore.lab.world_alt`` (signed-distance fields with a one-pixel ramp):

- **Rasterisation**: every shape is a union of convex pieces (the star is its inner pentagon
  and five spike triangles, the cross two rectangles) and a pixel's coverage is the share of
  its jittered, stratified sample points (``samples`` x ``samples`` per pixel, one random
  point in each stratum) that pass all the edge-function tests of some piece; the circle is
  an implicit disc test at the same points. ``antialias=False`` takes the pixel centre alone
  (hard edges, as a program drawing at the model's input size would).
- **Compositing** in linear light (sRGB decoded, blended, re-encoded), so edge pixels mix
  differently from the other two renderers, which blend sRGB levels.
- **Backgrounds** of its own: off-grey plain, vignette (elliptical radial falloff with a
  power law), two-stop gradients (flat beyond the stops, smoothstep between), and smooth
  value noise (quintic-interpolated lattice, two octaves); any of them may carry a mild
  native colour cast (up to 8 levels a channel, on about half of them; ``native_cast=False``
  draws the same scenes without), and ``tint=`` adds an RGB offset to the background alone. Grain is
  uniform, not Gaussian; the occasional softening is a blended 3 x 3 box filter.
- **Colour jitter** in OKLab lightness / chroma / hue (hue within 5 degrees: the nearest two
  colours of the palette, red and orange, are 32 degrees apart), so every colour keeps
  reading as its name.
- **Proportions**: star inner radius 0.39-0.49 of the outer (triangular distribution, mode
  0.44); cross arm half-width 0.27-0.35 of the half-length (mode 0.31).
- **Placement**: rejection sampling on a coarse occupancy grid (12 x 12 cells): an object
  marks the cells whose centres lie in the core of its circumscribed disc, and a candidate
  is refused when more than 15 % of the cells its disc touches are marked, or when it would
  hide more than a third of an earlier object. Sizes are drawn log-beta between the bounds.

Scenes are deterministic from the generator given; ``generate_scenes(seed, count)`` gives
scene ``i`` its own generator seeded ``(seed, i, 3)``. It returns the same ``Scene`` /
``WorldObject`` types and caption language as ``clipcore.lab.world``, from which it takes
only those types, ``make_captions`` and the constants.
"""

from __future__ import annotations

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
    "jitter_colour",
    "render_object",
    "render_scene",
]

BACKGROUNDS: tuple[str, ...] = ("plain", "vignette", "stops", "value")
_BACKGROUND_P = (0.3, 0.2, 0.25, 0.25)
GRID = 12  # occupancy grid cells per side
HUE_JITTER = 5.0  # degrees

# ----------------------------------------------------------------------------- colour


def _decode(levels: np.ndarray) -> np.ndarray:
    """sRGB levels 0..255 to linear light 0..1."""
    c = np.clip(np.asarray(levels, np.float64) / 255.0, 0.0, 1.0)
    return np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)


def _encode(linear: np.ndarray) -> np.ndarray:
    """Linear light 0..1 to sRGB levels 0..255."""
    c = np.clip(linear, 0.0, 1.0)
    return 255.0 * np.where(c <= 0.0031308, 12.92 * c, 1.055 * np.power(c, 1 / 2.4) - 0.055)


_LMS = np.array(
    [
        [0.4122214708, 0.5363325363, 0.0514459929],
        [0.2119034982, 0.6806995451, 0.1073969566],
        [0.0883024619, 0.2817188376, 0.6299787005],
    ]
)
_LAB = np.array(
    [
        [0.2104542553, 0.7936177850, -0.0040720468],
        [1.9779984951, -2.4285922050, 0.4505937099],
        [0.0259040371, 0.7827717662, -0.8086757660],
    ]
)


def _to_oklab(rgb: np.ndarray) -> np.ndarray:
    return _LAB @ np.cbrt(_LMS @ _decode(rgb))


def _from_oklab(lab: np.ndarray) -> np.ndarray:
    lms = np.linalg.solve(_LAB, lab) ** 3
    return _encode(np.linalg.solve(_LMS, lms))


def jitter_colour(rng: np.random.Generator, colour: str) -> np.ndarray:
    """The named colour with its OKLab lightness, chroma and hue jittered (RGB levels)."""
    lightness, a, b = _to_oklab(np.array(COLOURS[colour], np.float64))
    chroma, hue = math.hypot(a, b), math.atan2(b, a)
    lightness *= rng.uniform(0.93, 1.05)
    chroma *= rng.uniform(0.85, 1.05)
    hue += math.radians(rng.uniform(-HUE_JITTER, HUE_JITTER))
    lab = np.array([lightness, chroma * math.cos(hue), chroma * math.sin(hue)])
    return np.clip(_from_oklab(lab), 0, 255).astype(np.float32)


# ----------------------------------------------------------------------------- geometry


def _regular(count: int, radius: float, start_deg: float) -> np.ndarray:
    t = np.radians(start_deg + np.arange(count) * 360.0 / count)
    return radius * np.stack([np.cos(t), np.sin(t)], 1)


def shape_pieces(shape: str, rng: np.random.Generator | None = None) -> list[np.ndarray] | None:
    """Convex pieces (each K x 2, unit circumradius, unrotated) whose union is the shape.

    ``None`` for the circle, which is drawn as an implicit disc. Proportions are drawn from
    ``rng`` (their modes without one).
    """
    if shape == "circle":
        return None
    if shape == "square":
        return [_regular(4, 1.0, 45.0)]
    if shape == "triangle":
        return [_regular(3, 1.0, -90.0)]
    if shape == "star":
        inner = rng.triangular(0.39, 0.44, 0.49) if rng is not None else 0.44
        outer = _regular(5, 1.0, -90.0)
        hub = _regular(5, inner, -90.0 + 36.0)  # hub[k] lies between outer[k] and outer[k+1]
        spikes = [np.stack([hub[k - 1], outer[k], hub[k]]) for k in range(5)]
        return [hub, *spikes]
    if shape == "cross":
        w = rng.triangular(0.27, 0.31, 0.35) if rng is not None else 0.31
        k = 1.0 / math.hypot(1.0, w)  # the arm ends' corners lie on the unit circle
        long = np.array([(-1, -w), (1, -w), (1, w), (-1, w)]) * k
        return [long, long[:, ::-1].copy()]
    raise ValueError(f"unknown shape {shape!r}")


def _place(pieces: list[np.ndarray], r: float, cx: float, cy: float, deg: float) -> list:
    t = math.radians(deg)
    c, s = math.cos(t), math.sin(t)
    turn = np.array([[c, s], [-s, c]])
    return [p @ turn * r + np.array([cx, cy]) for p in pieces]


def _sample_points(
    x0: int, y0: int, x1: int, y1: int, samples: int, rng: np.random.Generator | None
) -> tuple[np.ndarray, np.ndarray]:
    """Sample coordinates, (H, W, S): one jittered point per stratum, or pixel centres."""
    ys, xs = np.mgrid[y0:y1, x0:x1].astype(np.float64)
    if rng is None:
        return xs[..., None] + 0.5, ys[..., None] + 0.5
    n = samples
    sy, sx = np.divmod(np.arange(n * n), n)
    jx = rng.random((y1 - y0, x1 - x0, n * n))
    jy = rng.random((y1 - y0, x1 - x0, n * n))
    return xs[..., None] + (sx + jx) / n, ys[..., None] + (sy + jy) / n


def _inside_convex(px: np.ndarray, py: np.ndarray, verts: np.ndarray) -> np.ndarray:
    """Edge-function test: on the inner side of every edge (either winding)."""
    x, y = verts[:, 0], verts[:, 1]
    orient = 1.0 if float(np.dot(x, np.roll(y, -1)) - np.dot(np.roll(x, -1), y)) >= 0 else -1.0
    ok = np.ones(px.shape, bool)
    for i in range(len(verts)):
        ax, ay = verts[i]
        bx, by = verts[(i + 1) % len(verts)]
        ok &= orient * ((bx - ax) * (py - ay) - (by - ay) * (px - ax)) >= 0
    return ok


def _raster(
    size: int,
    placed: list[np.ndarray] | None,
    disc: tuple[float, float, float],
    samples: int,
    rng: np.random.Generator | None,
) -> np.ndarray:
    """Coverage 0..1 over the whole image (``rng`` None: centre sampling, no antialiasing)."""
    cx, cy, r = disc
    if placed is None:
        lo, hi = np.array([cx - r, cy - r]), np.array([cx + r, cy + r])
    else:
        allv = np.concatenate(placed)
        lo, hi = allv.min(0), allv.max(0)
    x0, y0 = max(math.floor(lo[0]), 0), max(math.floor(lo[1]), 0)
    x1, y1 = min(math.ceil(hi[0]) + 1, size), min(math.ceil(hi[1]) + 1, size)
    cov = np.zeros((size, size), np.float32)
    if x1 <= x0 or y1 <= y0:
        return cov
    px, py = _sample_points(x0, y0, x1, y1, samples, rng)
    if placed is None:
        hit = (px - cx) ** 2 + (py - cy) ** 2 <= r * r
    else:
        hit = np.zeros(px.shape, bool)
        for piece in placed:
            hit |= _inside_convex(px, py, piece)
    cov[y0:y1, x0:x1] = hit.mean(-1)
    return cov


def _box(placed: list[np.ndarray] | None, disc: tuple[float, float, float], size: int) -> tuple:
    cx, cy, r = disc
    if placed is None:
        b = (cx - r, cy - r, cx + r, cy + r)
    else:
        allv = np.concatenate(placed)
        b = (*allv.min(0).tolist(), *allv.max(0).tolist())
    return (
        float(max(b[0], 0.0)),
        float(max(b[1], 0.0)),
        float(min(b[2], size)),
        float(min(b[3], size)),
    )


# ----------------------------------------------------------------------------- backgrounds


def _native_cast(rng: np.random.Generator, on: bool = True) -> np.ndarray:
    """A mild per-channel cast on half the backgrounds (at most 8 levels); the same draws
    when ``on`` is False, so that a scene differs only by its cast."""
    if rng.random() < 0.5:
        shift = rng.uniform(-8, 8, 3)
        return shift if on else np.zeros(3)
    return np.zeros(3)


def _smoothstep(t: np.ndarray) -> np.ndarray:
    t = np.clip(t, 0.0, 1.0)
    return t * t * (3 - 2 * t)


def _value_noise(rng: np.random.Generator, size: int, cells: int) -> np.ndarray:
    """Smooth noise in -1..1: a random lattice, quintic-interpolated between its knots."""
    lattice = rng.uniform(-1, 1, (cells + 1, cells + 1))
    u = (np.arange(size) + 0.5) / size * cells
    i = np.minimum(u.astype(int), cells - 1)
    f = u - i
    f = f * f * f * (f * (f * 6 - 15) + 10)
    iy, ix = i[:, None], i[None, :]
    fy, fx = f[:, None], f[None, :]
    top = lattice[iy, ix] * (1 - fx) + lattice[iy, ix + 1] * fx
    bottom = lattice[iy + 1, ix] * (1 - fx) + lattice[iy + 1, ix + 1] * fx
    return top * (1 - fy) + bottom * fy


def make_background(
    rng: np.random.Generator, size: int, kind: str | None = None, cast: bool = True
) -> np.ndarray:
    """A background of one of ``BACKGROUNDS`` (random when ``kind`` is None), H x W x 3;
    ``cast=False`` leaves out the native casts (grey levels only)."""
    kind = kind or str(rng.choice(BACKGROUNDS, p=_BACKGROUND_P))
    yy, xx = (np.mgrid[0:size, 0:size] + 0.5) / size
    if kind == "plain":
        g = np.full((size, size), rng.uniform(22, 232))
        rgb = g[:, :, None] + _native_cast(rng, cast)
    elif kind == "vignette":
        centre = rng.uniform(45, 215)
        edge = np.clip(centre + rng.uniform(-70, 70), 15, 240)
        ox, oy = rng.uniform(0.35, 0.65, 2)
        aspect = rng.uniform(0.7, 1.4)
        d = np.hypot((xx - ox) * aspect, (yy - oy) / aspect) / 0.75
        g = centre + (edge - centre) * np.clip(d, 0, 1) ** rng.uniform(1.5, 3.0)
        rgb = g[:, :, None] + _native_cast(rng, cast)
    elif kind == "stops":
        a = rng.uniform(22, 232) + _native_cast(rng, cast)
        b = rng.uniform(22, 232) + _native_cast(rng, cast)
        angle = rng.uniform(0, 2 * math.pi)
        t = (xx - 0.5) * math.cos(angle) + (yy - 0.5) * math.sin(angle) + 0.5
        s0, s1 = np.sort(rng.uniform(-0.1, 1.1, 2))
        s1 = max(s1, s0 + 0.15)
        w = _smoothstep((t - s0) / (s1 - s0))[:, :, None]
        rgb = a * (1 - w) + b * w
    elif kind == "value":
        cells = int(rng.integers(3, 11))
        amp = rng.uniform(8, 35)
        n = _value_noise(rng, size, cells) + 0.5 * _value_noise(rng, size, 2 * cells)
        g = rng.uniform(45, 210) + amp * n
        rgb = g[:, :, None] + _native_cast(rng, cast)
    else:
        raise ValueError(f"unknown background {kind!r}")
    return np.clip(np.broadcast_to(rgb, (size, size, 3)), 0, 255).astype(np.float32)


def _background(
    rng: np.random.Generator, size: int, background, tint: np.ndarray | None, cast: bool = True
) -> np.ndarray:
    if background is None or isinstance(background, str):
        bg = make_background(rng, size, background, cast)
    else:
        rgb = (background,) * 3 if np.isscalar(background) else background
        bg = np.empty((size, size, 3), np.float32)
        bg[:] = np.asarray(rgb, np.float32)
    if tint is not None:
        bg = np.clip(bg + np.asarray(tint, np.float32), 0, 255)
    return bg


def _finish(rng: np.random.Generator, img: np.ndarray, effects: bool) -> np.ndarray:
    """Occasional softening (blended 3 x 3 box) and uniform grain; then 8-bit levels."""
    soften, grain = rng.random(), rng.random()
    if effects and soften < 0.2:
        p = np.pad(img, ((1, 1), (1, 1), (0, 0)), mode="edge")
        box = sum(
            p[dy : dy + img.shape[0], dx : dx + img.shape[1]] for dy in range(3) for dx in range(3)
        )
        img = 0.6 * img + 0.4 * box / 9.0
    if effects and grain < 0.3:
        a = rng.uniform(2, 9)
        img = img + rng.uniform(-a, a, img.shape)
    return np.clip(np.rint(img), 0, 255).astype(np.uint8)


# ----------------------------------------------------------------------------- scenes


def _n_objects(rng: np.random.Generator) -> int:
    return int(rng.choice(np.arange(1, 7), p=[0.25, 0.2, 0.17, 0.14, 0.12, 0.12]))


def _default_scale_range(n: int) -> tuple[float, float]:
    return MIN_SCALE, MAX_SCALE * (1.0, 0.8, 0.62, 0.52, 0.45, 0.4)[n - 1]


def _grid_cells(cx: float, cy: float, r: float, size: int) -> np.ndarray:
    """Boolean GRID x GRID: the cells a disc touches (at least the one holding its centre)."""
    cell = size / GRID
    c = (np.arange(GRID) + 0.5) * cell
    # distance from the disc centre to each cell's rectangle
    dx = np.maximum(np.abs(c[None, :] - cx) - cell / 2, 0)
    dy = np.maximum(np.abs(c[:, None] - cy) - cell / 2, 0)
    cells = dx * dx + dy * dy < r * r
    cells[min(int(cy / cell), GRID - 1), min(int(cx / cell), GRID - 1)] = True
    return cells


def _grid_core(cx: float, cy: float, r: float, size: int) -> np.ndarray:
    cell = size / GRID
    c = (np.arange(GRID) + 0.5) * cell
    core = (c[None, :] - cx) ** 2 + (c[:, None] - cy) ** 2 < (0.8 * r) ** 2
    core[min(int(cy / cell), GRID - 1), min(int(cx / cell), GRID - 1)] = True
    return core


def _composite(img_lin: np.ndarray, cov: np.ndarray, rgb: np.ndarray) -> np.ndarray:
    a = cov[:, :, None]
    return img_lin * (1 - a) + _decode(rgb)[None, None, :] * a


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
    samples: int = 4,
    effects: bool = True,
    native_cast: bool = True,
    captions: bool = True,
) -> Scene:
    """A random scene drawn by this renderer; arguments as in ``clipcore.lab.world``.

    ``background``: one of ``BACKGROUNDS``, a grey level or an RGB tuple (else random);
    ``tint``: an RGB offset on the background only. ``antialias=False`` samples each pixel
    at its centre and skips the softening and grain (``effects=False`` skips them alone);
    else ``samples`` x ``samples`` jittered points per pixel. ``native_cast=False``: the
    same scene with grey backgrounds (the mild casts this renderer puts on about half of
    them left out).
    """
    n = n_objects if n_objects is not None else _n_objects(rng)
    lo, hi = scale_range if scale_range is not None else _default_scale_range(n)
    img = _decode(_background(rng, size, background, tint, native_cast))
    occupied = np.zeros((GRID, GRID), bool)
    objs: list[dict] = []
    for k in range(n):
        colour = colours[k] if colours is not None else list(COLOURS)[int(rng.integers(6))]
        shape = shapes[k] if shapes is not None else SHAPES[int(rng.integers(5))]
        pieces = shape_pieces(shape, rng)
        rgb = jitter_colour(rng, colour)
        jitter = np.random.default_rng(rng.integers(2**63)) if antialias else None
        for attempt in range(50):
            top = hi if attempt < 25 else lo + (hi - lo) * 0.4
            s = float(lo * (top / lo) ** rng.beta(1.3, 1.3)) if top > lo else float(lo)
            r = s * size / 2
            span = max(size - 2 * r - 1, 0.0)
            cx, cy = r + 0.5 + rng.uniform(0, span, 2)
            cells = _grid_cells(cx, cy, r, size)
            if (occupied & cells).sum() > 0.15 * cells.sum():
                continue
            rot = float(rng.uniform(0, 360))
            placed = None if pieces is None else _place(pieces, r, cx, cy, rot)
            cov = _raster(size, placed, (cx, cy, r), samples, jitter)
            if any(((o["visible"] * (1 - cov)) > 0.5).sum() < (2 / 3) * o["area"] for o in objs):
                continue
            break
        else:
            continue  # no room: fewer objects
        occupied |= _grid_core(cx, cy, r, size)
        for o in objs:
            o["visible"] = o["visible"] * (1 - cov)
        objs.append(
            dict(
                colour=colour,
                shape=shape,
                visible=cov.copy(),
                area=float((cov > 0.5).sum()),
                box=_box(placed, (cx, cy, r), size),
                scale=s,
                center=(float(cx / size), float(cy / size)),
                rot=rot,
            )
        )
        img = _composite(img, cov, rgb)
    pixels = _finish(rng, _encode(img), effects and antialias)
    objects = [
        WorldObject(
            o["colour"], o["shape"], o["box"], o["visible"] > 0.5, o["scale"], o["center"], o["rot"]
        )
        for o in objs
    ]
    caps, claims = make_captions(objects, rng) if captions else ([], [])
    return Scene(Image.fromarray(pixels, "RGB"), objects, caps, claims)


def render_object(
    colour: str,
    shape: str,
    *,
    size: int = 128,
    scale: float = 0.5,
    center: tuple[float, float] = (0.5, 0.5),
    rotation: float = 0.0,
    background: str | float | tuple = 200,
    tint: np.ndarray | None = None,
    antialias: bool = True,
    samples: int = 4,
    seed: int = 0,
) -> Scene:
    """One fully specified object (as ``world.render_object``); no softening or grain."""
    if colour not in COLOURS:
        raise ValueError(f"unknown colour {colour!r}")
    rng = np.random.default_rng(seed)
    pieces = shape_pieces(shape, rng)
    img = _decode(_background(rng, size, background, tint))
    cx, cy, r = center[0] * size, center[1] * size, scale * size / 2
    placed = None if pieces is None else _place(pieces, r, cx, cy, rotation)
    jitter = np.random.default_rng(rng.integers(2**63)) if antialias else None
    cov = _raster(size, placed, (cx, cy, r), samples, jitter)
    img = _composite(img, cov, jitter_colour(rng, colour))
    pixels = np.clip(np.rint(_encode(img)), 0, 255).astype(np.uint8)
    obj = WorldObject(
        colour, shape, _box(placed, (cx, cy, r), size), cov > 0.5, scale, tuple(center), rotation
    )
    caps, claims = make_captions([obj], rng)
    return Scene(Image.fromarray(pixels, "RGB"), [obj], caps, claims)


def generate_scenes(seed: int, count: int, **kw) -> list[Scene]:
    """``count`` scenes; scene ``i`` is ``render_scene(default_rng([seed, i, 3]), **kw)``."""
    return [render_scene(np.random.default_rng([seed, i, 3]), **kw) for i in range(count)]

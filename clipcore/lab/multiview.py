"""Multi-view captures of the generated world, with exactly known overlaps (held-out renderer).

For measuring reconstruction plans (:mod:`clipcore.plans`): which image pairs overlap, and
which images a hygiene check should flag, are known exactly here, so a pair shortlist's
recall and a flag's precision can be counted rather than guessed.

- A **site** is a large canvas (``CANVAS_SIZE``) holding a few dozen objects of the world's
  colours and shapes on a textured background of its own kind (tiles, planks, mottled or
  speckled ground) and palette (a grey level with a muted cast and a broad illumination
  falloff). Each site draws from its own mix of 2-4 colours and 2-4 shapes, so sites differ
  but may share colours. Objects are sized so that a view holds roughly 1-8 of them, at
  sizes within the world's (their diameter is 8-36 % of a view's width).
- A **camera** is a footprint on the canvas: a rectangle of aspect 3:4 with its centre,
  width (zoom: 0.6-1.4 of the site's base width, i.e. ±40 %) and rotation (±30°, up to ±70°
  at a quarter of the sites). Cameras move along a trajectory: towards random waypoints
  (a walk) or along a serpentine sweep (a survey). Unordered captures take steps of 15-45 %
  of the footprint; ordered ones (video-like) 3-8 %, with small turns and zooms.
- A **view** is the exact crop of the canvas under its footprint, resampled to 640 x 480 by
  PIL's ``Image.transform`` (QUAD, bicubic; supersampled then box-reduced when the
  footprint is larger than the output, so that textures do not alias), then optionally
  blurred (Gaussian), re-exposed (gain and gamma on the levels), given sensor noise
  (Gaussian, per channel) and JPEG-encoded.
- The **overlap** of two views of a site is area(intersection) / min(area) of their
  footprints, exactly: Sutherland-Hodgman clipping of one convex quadrilateral by the other
  and the shoelace formula. Views of different sites overlap 0.

The drawing is this module's own: shapes are outlines rasterised by an even-odd crossing
test at pixel centres, with a regular 4 x 4 supersampling of the pixels on their boundary;
colours are jittered in HSV; each object carries a faint linear shading. It takes only the
palette and the shape names from :mod:`clipcore.lab.world`, whose renderer trained the
embedded CLIP, so results on these images are held out.

:func:`multiview_dataset` gives a dataset of views with their truth; :func:`hygiene_dataset`
gives images with known hygiene labels (blurry, over- / under-exposed, near-duplicate
groups, low resolution) and EXIF tags. Everything is deterministic from the seed.
"""

from __future__ import annotations

import colorsys
import io
import math
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import numpy as np
from PIL import Image, ImageFilter, TiffImagePlugin

from clipcore.lab.world import COLOURS, SHAPES

__all__ = [
    "BACKGROUNDS",
    "CANVAS_SIZE",
    "FLAGS",
    "OVERLAP_MIN",
    "VIEW_SIZE",
    "Camera",
    "Effects",
    "ExifTruth",
    "HygieneImage",
    "HygieneSet",
    "MultiviewDataset",
    "Site",
    "View",
    "clip_polygon",
    "clipped_shares",
    "encode_jpeg",
    "hygiene_dataset",
    "make_site",
    "multiview_dataset",
    "overlap",
    "overlap_matrix",
    "polygon_area",
    "render_view",
]

VIEW_SIZE = (640, 480)  # width, height of a view (4:3)
CANVAS_SIZE = (3000, 2250)
BASE_FOOTPRINTS = 3.0  # a footprint at zoom 1 is this many times narrower than the canvas
ZOOM = (0.6, 1.4)  # footprint width as a share of the base: ±40 %
OVERLAP_MIN = 0.3  # pairs at least this overlapping "truly overlap" (worth matching)
BACKGROUNDS: tuple[str, ...] = ("tiles", "planks", "mottled", "speckle")
# Muted casts (RGB offsets) so that a background never reads as one of the world's colours.
TINTS: tuple[tuple[float, float, float], ...] = (
    (0.0, 0.0, 0.0),
    (12.0, 5.0, -9.0),  # warm
    (-8.0, 0.0, 12.0),  # cool
    (-5.0, 8.0, -5.0),  # moss
    (14.0, 9.0, -3.0),  # sand
)
# Object diameters, as a share of the base footprint's width.
DIAMETER = (0.08, 0.36)
# Hygiene labels (the values of clipcore.plans.schemas.HygieneFlag they stand for).
FLAGS: tuple[str, ...] = (
    "blurry",
    "overexposed",
    "underexposed",
    "near_duplicate",
    "low_resolution",
)
SHARP_MAX_SIGMA = 0.6  # blur of sharp images, px at 640 px wide
BLURRY_SIGMA = (2.5, 6.0)  # blur of "blurry" ones: a gap of 4x in sigma from sharp
CLIP_HIGH, CLIP_LOW = 250, 5  # grey levels counted as clipped highlights / crushed shadows
CLEAN_CLIPPED_MAX = 0.10  # clean images clip less than this share of pixels ...
EXPOSED_CLIPPED_MIN = 0.30  # ... and badly exposed ones more than this


# ----------------------------------------------------------------------------- polygons


def _signed_area(poly: np.ndarray) -> float:
    x, y = poly[:, 0], poly[:, 1]
    return 0.5 * float(np.dot(x, np.roll(y, -1)) - np.dot(np.roll(x, -1), y))


def polygon_area(poly: np.ndarray) -> float:
    """Shoelace area of a simple polygon (K x 2; 0 for fewer than three vertices)."""
    return abs(_signed_area(poly)) if len(poly) >= 3 else 0.0


def clip_polygon(subject: np.ndarray, clip: np.ndarray) -> np.ndarray:
    """The part of ``subject`` inside the convex polygon ``clip`` (Sutherland-Hodgman).

    Either winding; returns the vertices (K x 2), none when they do not meet.
    """
    if _signed_area(clip) < 0:
        clip = clip[::-1]
    out = [(float(x), float(y)) for x, y in subject]
    for i in range(len(clip)):
        if not out:
            break
        ax, ay = float(clip[i][0]), float(clip[i][1])
        bx, by = float(clip[(i + 1) % len(clip)][0]), float(clip[(i + 1) % len(clip)][1])
        points, out = out, []
        sides = [(bx - ax) * (y - ay) - (by - ay) * (x - ax) for x, y in points]
        for j in range(len(points)):
            p, q = points[j - 1], points[j]
            sp, sq = sides[j - 1], sides[j]
            if (sp >= 0) != (sq >= 0):  # the edge p -> q crosses the clip line
                t = sp / (sp - sq)
                out.append((p[0] + t * (q[0] - p[0]), p[1] + t * (q[1] - p[1])))
            if sq >= 0:
                out.append(q)
    return np.array(out, np.float64).reshape(-1, 2)


def overlap(a: np.ndarray, b: np.ndarray) -> float:
    """area(a ∩ b) / min(area a, area b) of two convex polygons."""
    (ax0, ay0), (ax1, ay1) = a.min(0), a.max(0)
    (bx0, by0), (bx1, by1) = b.min(0), b.max(0)
    if ax1 <= bx0 or bx1 <= ax0 or ay1 <= by0 or by1 <= ay0:
        return 0.0
    smaller = min(polygon_area(a), polygon_area(b))
    return polygon_area(clip_polygon(a, b)) / smaller if smaller > 0 else 0.0


def overlap_matrix(
    footprints: Sequence[np.ndarray], sites: Sequence[int] | np.ndarray
) -> np.ndarray:
    """n x n overlaps (1 on the diagonal); 0 between views of different sites."""
    n = len(footprints)
    out = np.eye(n)
    for i in range(n):
        for j in range(i + 1, n):
            if sites[i] == sites[j]:
                out[i, j] = out[j, i] = overlap(footprints[i], footprints[j])
    return out


def _inside_convex(poly: np.ndarray, x: float, y: float) -> bool:
    if _signed_area(poly) < 0:
        poly = poly[::-1]
    nxt = np.roll(poly, -1, axis=0)
    cross = (nxt[:, 0] - poly[:, 0]) * (y - poly[:, 1]) - (nxt[:, 1] - poly[:, 1]) * (
        x - poly[:, 0]
    )
    return bool((cross >= 0).all())


# ----------------------------------------------------------------------------- sites


@dataclass(frozen=True)
class SiteStyle:
    background: str
    level: float  # mean grey level of the ground
    tint: tuple[float, float, float]
    colours: tuple[str, ...]
    colour_weights: tuple[float, ...]
    shapes: tuple[str, ...]
    shape_weights: tuple[float, ...]
    density: float  # objects per base footprint area
    max_rotation: float  # degrees either way


@dataclass(frozen=True)
class SiteObject:
    colour: str
    shape: str
    x: float  # centre, canvas px
    y: float
    diameter: float  # circumscribed, canvas px
    rotation: float  # degrees


@dataclass
class Site:
    index: int
    style: SiteStyle
    canvas: Image.Image
    objects: list[SiteObject]
    base_width: float  # footprint width at zoom 1, canvas px

    def objects_in(self, footprint: np.ndarray) -> list[SiteObject]:
        """The objects whose centre lies within a footprint."""
        return [o for o in self.objects if _inside_convex(footprint, o.x, o.y)]


def _pick(rng: np.random.Generator, names: Sequence[str], lo: int, hi: int) -> tuple:
    chosen = [str(c) for c in rng.choice(list(names), int(rng.integers(lo, hi + 1)), False)]
    weights = rng.dirichlet(np.full(len(chosen), 2.0))
    return tuple(chosen), tuple(float(w) for w in weights)


def _style(rng: np.random.Generator) -> SiteStyle:
    colours, colour_weights = _pick(rng, list(COLOURS), 2, 4)
    shapes, shape_weights = _pick(rng, SHAPES, 2, 4)
    return SiteStyle(
        background=str(rng.choice(BACKGROUNDS)),
        level=float(rng.uniform(90, 180)),
        tint=TINTS[int(rng.integers(len(TINTS)))],
        colours=colours,
        colour_weights=colour_weights,
        shapes=shapes,
        shape_weights=shape_weights,
        density=float(rng.uniform(2.5, 4.5)),
        max_rotation=70.0 if rng.random() < 0.25 else 30.0,
    )


def _smooth(rng: np.random.Generator, width: int, height: int, cell: float) -> np.ndarray:
    """Smooth noise of unit-ish amplitude: a coarse Gaussian lattice, bicubic-upscaled."""
    gw, gh = max(2, math.ceil(width / cell) + 1), max(2, math.ceil(height / cell) + 1)
    coarse = rng.normal(0, 1, (gh, gw)).astype(np.float32)
    up = Image.fromarray(coarse, mode="F").resize((width, height), Image.Resampling.BICUBIC)
    return np.asarray(up, np.float32)


def _ground(rng: np.random.Generator, style: SiteStyle, width: int, height: int, unit: float):
    """The site's grey ground (H x W float32), ``unit`` canvas px per base-footprint 1 %."""
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    g = np.full((height, width), style.level, np.float32)
    kind = style.background
    if kind == "tiles":
        tile = float(rng.uniform(7, 18)) * unit
        ox, oy = rng.uniform(0, tile, 2)
        col = np.floor((xx + ox) / tile).astype(np.int32)
        row = np.floor((yy + oy) / tile).astype(np.int32)
        levels = rng.normal(0, rng.uniform(6, 16), (row.max() + 1, col.max() + 1))
        g += levels[row, col].astype(np.float32)
        grout = float(rng.uniform(0.3, 0.6)) * unit
        on_line = (np.mod(xx + ox, tile) < grout) | (np.mod(yy + oy, tile) < grout)
        g -= on_line * np.float32(rng.uniform(25, 45))
    elif kind == "planks":
        edges = np.cumsum(rng.uniform(6, 20, 400) * unit)
        band = np.searchsorted(edges, yy[:, 0]).astype(np.int32)
        g += rng.normal(0, rng.uniform(6, 14), band.max() + 1).astype(np.float32)[band][:, None]
        seam = np.isin(np.floor(yy[:, 0]).astype(np.int64), np.floor(edges).astype(np.int64))
        g -= seam[:, None] * np.float32(rng.uniform(20, 40))
        streak = np.asarray(
            Image.fromarray(
                rng.normal(0, 1, (height // 2, max(2, width // 60))).astype("f4"), "F"
            ).resize((width, height), Image.Resampling.BILINEAR),
            np.float32,
        )
        g += streak * np.float32(rng.uniform(4, 9))
    elif kind == "mottled":
        g += _smooth(rng, width, height, 14 * unit) * np.float32(rng.uniform(10, 22))
        g += _smooth(rng, width, height, 3 * unit) * np.float32(rng.uniform(4, 10))
    elif kind == "speckle":
        g += _smooth(rng, width, height, 20 * unit) * np.float32(rng.uniform(6, 14))
        seeds = (rng.random((height, width)) < 0.002 / unit).astype(np.uint8) * 255
        radius = max(1, round(0.35 * unit)) * 2 + 1
        dots = np.asarray(Image.fromarray(seeds, "L").filter(ImageFilter.MaxFilter(radius)))
        sign = np.float32(1.0 if rng.random() < 0.5 else -1.0)
        g += sign * (dots > 0) * np.float32(rng.uniform(25, 45))
    else:
        raise ValueError(f"unknown background {kind!r}")
    # a broad illumination falloff, and fine grain
    angle = rng.uniform(0, 2 * math.pi)
    t = (xx / width - 0.5) * math.cos(angle) + (yy / height - 0.5) * math.sin(angle)
    g *= 1 + np.float32(rng.uniform(0.08, 0.2)) * t
    g += rng.normal(0, 2.5, (height, width)).astype(np.float32)
    return g


def _outline(shape: str, rng: np.random.Generator) -> np.ndarray:
    """Outline (K x 2) of a shape of unit circumradius, unrotated, proportions jittered."""

    def ring(count: int, start: float, radius: np.ndarray | float = 1.0) -> np.ndarray:
        t = np.radians(start + np.arange(count) * 360.0 / count)
        return np.stack([np.cos(t), np.sin(t)], 1) * np.asarray(radius).reshape(-1, 1)

    if shape == "circle":
        return ring(96, 0.0)
    if shape == "square":
        return ring(4, 45.0)
    if shape == "triangle":
        return ring(3, -90.0)
    if shape == "star":
        inner = float(rng.uniform(0.40, 0.48))
        return ring(10, -90.0, np.where(np.arange(10) % 2 == 0, 1.0, inner))
    if shape == "cross":
        w = float(rng.uniform(0.28, 0.34))
        quarter = [(1, -w), (1, w), (w, w)]
        pts: list[tuple[float, float]] = []
        for k in range(4):  # four quarter turns of one arm's outline
            c, s = math.cos(k * math.pi / 2), math.sin(k * math.pi / 2)
            pts += [(x * c - y * s, x * s + y * c) for x, y in quarter]
        return np.array(pts) / math.hypot(1.0, w)
    raise ValueError(f"unknown shape {shape!r}")


def _crossings(px: np.ndarray, py: np.ndarray, poly: np.ndarray) -> np.ndarray:
    """Even-odd test: whether each point lies inside the (possibly concave) polygon."""
    inside = np.zeros(px.shape, bool)
    for (ax, ay), (bx, by) in zip(poly, np.roll(poly, -1, axis=0), strict=True):
        if ay == by:
            continue
        spans = (ay > py) != (by > py)
        inside ^= spans & (px < ax + (py - ay) * (bx - ax) / (by - ay))
    return inside


def _coverage(poly: np.ndarray, x0: int, y0: int, x1: int, y1: int) -> np.ndarray:
    """Coverage 0..1 of the pixels [y0:y1, x0:x1]: centre test, boundary pixels 4 x 4."""
    ys, xs = np.mgrid[y0:y1, x0:x1].astype(np.float64)
    inside = _crossings(xs + 0.5, ys + 0.5, poly)
    padded = np.pad(inside, 1, mode="edge")
    h, w = inside.shape
    edge = np.zeros_like(inside)
    for dy in range(3):
        for dx in range(3):
            edge |= padded[dy : dy + h, dx : dx + w] != inside
    cov = inside.astype(np.float32)
    ey, ex = np.nonzero(edge)
    if len(ey):
        sub = (np.arange(4) + 0.5) / 4
        sx = (ex[:, None, None] + x0 + sub[None, None, :]).repeat(4, 1).reshape(len(ex), 16)
        sy = (ey[:, None, None] + y0 + sub[None, :, None]).repeat(4, 2).reshape(len(ey), 16)
        cov[ey, ex] = _crossings(sx, sy, poly).mean(1)
    return cov


def _object_colour(rng: np.random.Generator, colour: str) -> np.ndarray:
    """The named colour with hue (±4°), saturation and value jittered in HSV."""
    r, g, b = (c / 255 for c in COLOURS[colour])
    h, s, v = colorsys.rgb_to_hsv(r, g, b)
    h = (h + rng.uniform(-4, 4) / 360) % 1.0
    s = min(1.0, s * rng.uniform(0.85, 1.02))
    v = min(1.0, v * rng.uniform(0.9, 1.05))
    return np.array(colorsys.hsv_to_rgb(h, s, v), np.float32) * 255


def _place(rng: np.random.Generator, style: SiteStyle, size: tuple[int, int], base: float):
    """Objects spread evenly: one a cell of a jittered grid (so that few views are empty and
    few crowded, as with things laid out on a site), discs touching at most a little."""
    width, height = size
    count = style.density * width * height / (base * base * 0.75)
    nx = max(1, round(math.sqrt(count * width / height)))
    ny = max(1, round(count / nx))
    lo, hi = DIAMETER[0] * base, DIAMETER[1] * base
    placed: list[SiteObject] = []
    for cell in rng.permutation(nx * ny).tolist():
        cx0, cy0 = (cell % nx) * width / nx, (cell // nx) * height / ny
        colour = str(rng.choice(style.colours, p=style.colour_weights))
        shape = str(rng.choice(style.shapes, p=style.shape_weights))
        for _attempt in range(60):
            d = float(math.exp(rng.uniform(math.log(lo), math.log(hi))))
            x = float(np.clip(cx0 + rng.uniform(0, width / nx), d / 2 + 2, width - d / 2 - 2))
            y = float(np.clip(cy0 + rng.uniform(0, height / ny), d / 2 + 2, height - d / 2 - 2))
            # circumscribed discs may touch a little: corners overlap, bodies do not
            if all(math.hypot(x - o.x, y - o.y) >= 0.45 * (d + o.diameter) for o in placed):
                placed.append(SiteObject(colour, shape, x, y, d, float(rng.uniform(0, 360))))
                break
    return placed


def make_site(
    seed: int,
    index: int,
    canvas_size: tuple[int, int] = CANVAS_SIZE,
    style: SiteStyle | None = None,
) -> Site:
    """Site ``index`` of a seed: its style, objects and canvas (draws from ``(seed, index)``)."""
    rng = np.random.default_rng([seed, index, 29])
    style = style or _style(rng)
    width, height = canvas_size
    base = width / BASE_FOOTPRINTS
    arr = np.repeat(_ground(rng, style, width, height, base / 100)[:, :, None], 3, axis=2)
    arr += np.asarray(style.tint, np.float32)
    objects = _place(rng, style, canvas_size, base)
    for o in objects:
        poly = _outline(o.shape, rng) * (o.diameter / 2)
        t = math.radians(o.rotation)
        poly = poly @ np.array([[math.cos(t), math.sin(t)], [-math.sin(t), math.cos(t)]])
        poly += (o.x, o.y)
        x0, y0 = (max(0, math.floor(v) - 1) for v in poly.min(0))
        x1, y1 = (
            min(width, math.ceil(poly[:, 0].max()) + 1),
            min(height, math.ceil(poly[:, 1].max()) + 1),
        )
        a = _coverage(poly, x0, y0, x1, y1)[:, :, None]
        ys, xs = np.mgrid[y0:y1, x0:x1].astype(np.float32)
        phi = rng.uniform(0, 2 * math.pi)
        ramp = ((xs - o.x) * math.cos(phi) + (ys - o.y) * math.sin(phi)) / (o.diameter / 2)
        shade = 1 + np.float32(rng.uniform(0.03, 0.07)) * ramp[:, :, None]
        colour = _object_colour(rng, o.colour)[None, None, :] * shade
        patch = arr[y0:y1, x0:x1]
        arr[y0:y1, x0:x1] = patch * (1 - a) + colour * a
    canvas = Image.fromarray(np.clip(np.rint(arr), 0, 255).astype(np.uint8), "RGB")
    return Site(index, style, canvas, objects, base)


# ----------------------------------------------------------------------------- cameras


@dataclass(frozen=True)
class Camera:
    """A footprint on a site's canvas: centre, width (canvas px), rotation (degrees)."""

    x: float
    y: float
    width: float
    angle: float = 0.0
    aspect: float = VIEW_SIZE[1] / VIEW_SIZE[0]  # height / width

    @property
    def height(self) -> float:
        return self.width * self.aspect

    def corners(self) -> np.ndarray:
        """The image's top-left, top-right, bottom-right, bottom-left corners on the canvas."""
        u = np.array([[-1, -1], [1, -1], [1, 1], [-1, 1]]) * (self.width / 2, self.height / 2)
        t = math.radians(self.angle)
        turn = np.array([[math.cos(t), math.sin(t)], [-math.sin(t), math.cos(t)]])
        return u @ turn + (self.x, self.y)

    def moved(self, dx: float = 0.0, dy: float = 0.0, zoom: float = 1.0, turn: float = 0.0):
        return Camera(self.x + dx, self.y + dy, self.width * zoom, self.angle + turn, self.aspect)


def _fit(camera: Camera, size: tuple[int, int]) -> Camera:
    """The camera shifted (and if need be narrowed) so that its footprint lies on the canvas."""
    for _ in range(8):
        c = camera.corners()
        (x0, y0), (x1, y1) = c.min(0), c.max(0)
        if x1 - x0 < size[0] - 2 and y1 - y0 < size[1] - 2:
            dx = max(0.0, 1 - float(x0)) - max(0.0, float(x1) - (size[0] - 1))
            dy = max(0.0, 1 - float(y0)) - max(0.0, float(y1) - (size[1] - 1))
            return camera.moved(dx, dy)
        camera = camera.moved(zoom=0.9)
    raise ValueError("the footprint does not fit on the canvas")


@dataclass(frozen=True)
class _Motion:
    step: tuple[float, float]  # translation per capture, share of the footprint width
    turn: float  # sd of the rotation change per capture, degrees
    zoom: float  # sd of the log-width change per capture
    wander: float  # sd of the heading change per capture, degrees


UNORDERED = _Motion((0.15, 0.45), 6.0, 0.08, 50.0)
ORDERED = _Motion((0.03, 0.08), 0.7, 0.012, 8.0)


def _waypoints(rng: np.random.Generator, site: Site, sweep: bool) -> list[tuple[float, float]]:
    width, height = site.canvas.size
    margin = 0.45 * site.base_width
    if not sweep:
        xs = rng.uniform(margin, width - margin, 64)
        ys = rng.uniform(margin, height - margin, 64)
        return list(zip(xs.tolist(), ys.tolist(), strict=True))
    rows = np.linspace(
        margin, height - margin, max(2, round((height - 2 * margin) / (0.5 * margin)) + 1)
    )
    out: list[tuple[float, float]] = []
    for k, y in enumerate(rows.tolist()):
        ends = [margin, width - margin]
        out += [(x, y) for x in (ends if k % 2 == 0 else ends[::-1])]
    return out + out[::-1][1:]  # and back


def trajectory(rng: np.random.Generator, site: Site, count: int, ordered: bool) -> list[Camera]:
    """``count`` cameras in capture order: a walk to random waypoints or a serpentine sweep."""
    motion = ORDERED if ordered else UNORDERED
    width, height = site.canvas.size
    lo, hi = math.log(ZOOM[0] * site.base_width), math.log(ZOOM[1] * site.base_width)
    points = _waypoints(rng, site, sweep=rng.random() < 0.4)
    target = int(rng.integers(len(points)))
    x, y = rng.uniform(0.3, 0.7) * width, rng.uniform(0.3, 0.7) * height
    log_w = float(rng.uniform(lo, hi))
    angle = float(rng.uniform(-1, 1) * site.style.max_rotation)
    heading = float(rng.uniform(0, 360))
    cameras: list[Camera] = []
    for _ in range(count):
        camera = _fit(Camera(x, y, math.exp(log_w), angle), (width, height))
        cameras.append(camera)
        x, y = camera.x, camera.y
        tx, ty = points[target % len(points)]
        step = float(rng.uniform(*motion.step)) * camera.width
        if math.hypot(tx - x, ty - y) < step:
            target += 1
        goal = math.degrees(math.atan2(ty - y, tx - x))
        # steer towards the waypoint, with some wander
        heading += math.remainder(goal - heading, 360) * 0.5 + rng.normal(0, motion.wander)
        x += step * math.cos(math.radians(heading))
        y += step * math.sin(math.radians(heading))
        log_w = float(np.clip(log_w + rng.normal(0, motion.zoom), lo, hi))
        angle = float(
            np.clip(
                angle + rng.normal(0, motion.turn),
                -site.style.max_rotation,
                site.style.max_rotation,
            )
        )
    return cameras


# ----------------------------------------------------------------------------- views


@dataclass(frozen=True)
class Effects:
    """What a view goes through after the crop, in this order."""

    blur: float = 0.0  # Gaussian sigma, output px
    gain: float = 1.0  # levels multiplied ...
    gamma: float = 1.0  # ... then raised: 255 (gain v / 255) ** gamma
    noise: float = 0.0  # sensor noise sigma, levels
    quality: int = 92  # JPEG quality
    seed: int = 0  # of the noise


def render_view(site: Site, camera: Camera, size: tuple[int, int] = VIEW_SIZE) -> Image.Image:
    """The canvas under the footprint, resampled to ``size`` (no effects)."""
    ss = max(1, round(camera.width / size[0]))  # supersample when shrinking: no aliasing
    tl, tr, br, bl = camera.corners()
    quad = (*tl, *bl, *br, *tr)  # PIL's order: upper left, lower left, lower right, upper right
    image = site.canvas.transform(
        (size[0] * ss, size[1] * ss),
        Image.Transform.QUAD,
        tuple(float(v) for v in quad),
        resample=Image.Resampling.BICUBIC,
    )
    return image.reduce(ss) if ss > 1 else image


def _exposed(levels: np.ndarray, gain: float, gamma: float) -> np.ndarray:
    return 255.0 * np.clip(gain * levels / 255.0, 0, 1) ** gamma


def apply_effects(image: Image.Image, effects: Effects) -> Image.Image:
    if effects.blur > 0:
        image = image.filter(ImageFilter.GaussianBlur(effects.blur))
    arr = np.asarray(image, np.float32)
    if effects.gain != 1.0 or effects.gamma != 1.0:
        arr = _exposed(arr, effects.gain, effects.gamma)
    if effects.noise > 0:
        rng = np.random.default_rng(effects.seed)
        arr = arr + rng.normal(0, effects.noise, arr.shape).astype(np.float32)
    return Image.fromarray(np.clip(np.rint(arr), 0, 255).astype(np.uint8), "RGB")


def encode_jpeg(image: Image.Image, quality: int, exif: Image.Exif | None = None) -> bytes:
    buffer = io.BytesIO()
    kw = {"exif": exif.tobytes()} if exif is not None else {}
    image.save(buffer, format="JPEG", quality=quality, **kw)
    return buffer.getvalue()


def clipped_shares(image: Image.Image) -> tuple[float, float]:
    """Shares of grey levels at >= 250 (clipped highlights) and <= 5 (crushed shadows)."""
    grey = np.asarray(image.convert("L"))
    return float((grey >= CLIP_HIGH).mean()), float((grey <= CLIP_LOW).mean())


def _mild(rng: np.random.Generator, width: int) -> Effects:
    """An ordinary capture: mostly sharp, small exposure changes, some noise, JPEG."""
    scale = width / VIEW_SIZE[0]
    blur = float(
        rng.choice(
            [rng.uniform(0, 0.5), rng.uniform(0.5, 1.2), rng.uniform(1.2, 2.0)], p=[0.75, 0.2, 0.05]
        )
    )
    return Effects(
        blur=blur * scale,
        gain=float(rng.uniform(0.85, 1.12)),
        gamma=float(rng.uniform(0.9, 1.1)),
        noise=float(rng.uniform(0.5, 3.0)),
        quality=int(rng.integers(82, 96)),
        seed=int(rng.integers(2**31)),
    )


# ----------------------------------------------------------------------------- datasets


@dataclass(frozen=True)
class View:
    name: str
    jpeg: bytes
    site: int
    capture: int  # index in its site's capture order
    camera: Camera
    effects: Effects
    objects: int  # objects whose centre the view holds

    @property
    def footprint(self) -> np.ndarray:
        return self.camera.corners()


@dataclass
class MultiviewDataset:
    seed: int
    ordered: bool
    views: list[View]  # in file-name order
    styles: list[SiteStyle]
    _overlaps: np.ndarray | None = field(default=None, repr=False)

    @property
    def names(self) -> list[str]:
        return [v.name for v in self.views]

    @property
    def sites(self) -> np.ndarray:
        return np.array([v.site for v in self.views])

    def overlaps(self) -> np.ndarray:
        """n x n overlap matrix (area of the intersection / the smaller footprint)."""
        if self._overlaps is None:
            self._overlaps = overlap_matrix([v.footprint for v in self.views], self.sites)
        return self._overlaps

    def overlapping_pairs(self, threshold: float = OVERLAP_MIN) -> set[tuple[int, int]]:
        """Pairs (i < j) of views that overlap at least ``threshold``."""
        ii, jj = np.nonzero(np.triu(self.overlaps() >= threshold, 1))
        return set(zip(ii.tolist(), jj.tolist(), strict=True))


def _site_counts(rng: np.random.Generator, n_images: int, n_sites: int) -> list[int]:
    """Uneven shares (0.6-1.4 of the mean), at least two views a site, summing to n."""
    if n_images < 2 * n_sites:
        raise ValueError("at least two images a site")
    weights = rng.uniform(0.6, 1.4, n_sites)
    raw = 2 + weights / weights.sum() * (n_images - 2 * n_sites)
    counts = np.floor(raw).astype(int)
    for i in np.argsort(counts - raw)[: n_images - int(counts.sum())]:
        counts[i] += 1
    return counts.tolist()


def multiview_dataset(
    seed: int,
    n_images: int,
    n_sites: int,
    ordered: bool = False,
    *,
    canvas_size: tuple[int, int] = CANVAS_SIZE,
    view_size: tuple[int, int] = VIEW_SIZE,
    effects: bool = True,
) -> MultiviewDataset:
    """Views of ``n_sites`` sites (uneven shares), as JPEGs with their exact footprints.

    Unordered: file names ``img_0000.jpg``... in a random order that reveals nothing.
    Ordered (video-like): ``frame_00000.jpg``... in capture order, site after site, with
    small steps between consecutive frames. ``effects=False``: no blur, exposure or noise.
    """
    rng = np.random.default_rng([seed, 31])
    counts = _site_counts(rng, n_images, n_sites)
    captured: list[tuple[int, int, Camera, Effects, bytes, int]] = []
    styles = []
    for s, count in enumerate(counts):
        site = make_site(seed, s, canvas_size)
        styles.append(site.style)
        site_rng = np.random.default_rng([seed, s, 37, int(ordered)])
        for k, camera in enumerate(trajectory(site_rng, site, count, ordered)):
            fx = _mild(site_rng, view_size[0]) if effects else Effects()
            image = apply_effects(render_view(site, camera, view_size), fx)
            held = len(site.objects_in(camera.corners()))
            captured.append((s, k, camera, fx, encode_jpeg(image, fx.quality), held))
        del site  # a canvas is 20 MB: one at a time
    if ordered:
        names = [f"frame_{i:05d}.jpg" for i in range(len(captured))]
    else:
        order = rng.permutation(len(captured))
        names = [f"img_{int(i):04d}.jpg" for i in order]
    views = [
        View(name, data, s, k, camera, fx, held)
        for name, (s, k, camera, fx, data, held) in zip(names, captured, strict=True)
    ]
    views.sort(key=lambda v: v.name)
    return MultiviewDataset(seed, ordered, views, styles)


# ----------------------------------------------------------------------------- hygiene


@dataclass(frozen=True)
class ExifTruth:
    make: str
    model: str
    focal_length_mm: float
    focal_length_35mm: int | None  # None: the tag is not written


# make, model, focal lengths (mm), crop factor
CAMERAS: tuple[tuple[str, str, tuple[float, ...], float], ...] = (
    ("Canon", "Canon EOS 80D", (18.0, 24.0, 35.0, 55.0), 1.6),
    ("NIKON CORPORATION", "NIKON D750", (24.0, 35.0, 50.0), 1.0),
    ("Apple", "iPhone 13", (5.1,), 5.1),  # 26 mm equivalent
    ("SONY", "ILCE-7M3", (28.0, 35.0), 1.0),
    ("DJI", "FC3170", (4.5,), 5.33),  # 24 mm equivalent
)


def make_exif(truth: ExifTruth) -> Image.Exif:
    exif = Image.Exif()
    exif[0x010F] = truth.make
    exif[0x0110] = truth.model
    ifd = exif.get_ifd(0x8769)
    ifd[0x920A] = TiffImagePlugin.IFDRational(round(truth.focal_length_mm * 10), 10)
    if truth.focal_length_35mm is not None:
        ifd[0xA405] = truth.focal_length_35mm
    return exif


def _exif_truth(rng: np.random.Generator) -> ExifTruth:
    make, model, focals, crop = CAMERAS[int(rng.integers(len(CAMERAS)))]
    focal = float(rng.choice(focals))
    equivalent = round(focal * crop) if rng.random() < 0.8 else None
    return ExifTruth(make, model, focal, equivalent)


@dataclass(frozen=True)
class HygieneImage:
    name: str
    data: bytes
    site: int
    camera: Camera
    labels: frozenset[str]  # of FLAGS
    size: tuple[int, int]
    blur: float  # Gaussian sigma applied, px at the image's own width
    clipped_highlights: float  # measured on the decoded JPEG
    clipped_shadows: float
    duplicate_group: int | None = None
    exif: ExifTruth | None = None


@dataclass
class HygieneSet:
    images: list[HygieneImage]  # in file-name order
    # clean views of one site, each overlapping the next but moved enough to add baseline:
    # these must not be taken for near-duplicates
    baseline_pairs: list[tuple[str, str]]

    def labelled(self, flag: str) -> set[str]:
        return {im.name for im in self.images if flag in im.labels}

    def distinct_pairs(self, min_overlap: float = OVERLAP_MIN) -> list[tuple[str, str]]:
        """Every pair of one site overlapping at least ``min_overlap`` but not of one burst:
        their centres at least 6 % of the width apart (a burst's are within 1 %)."""
        out = []
        for i, a in enumerate(self.images):
            for b in self.images[i + 1 :]:
                if a.site != b.site or (
                    a.duplicate_group is not None and a.duplicate_group == b.duplicate_group
                ):
                    continue
                if overlap(a.camera.corners(), b.camera.corners()) >= min_overlap:
                    out.append((a.name, b.name))
        return out


_LOW_SIZES = ((320, 240), (400, 300), (448, 336), (600, 450))
_CLEAN_SIZES = ((640, 480), (640, 480), (640, 480), (800, 600), (1024, 768))


def _exposure_for(image: Image.Image, over: bool, target: float = 0.45) -> tuple[float, float]:
    """Gain and gamma that clip ``target`` of the grey levels (bisection on one strength)."""
    levels = np.asarray(image.convert("L"), np.float32)

    def params(t: float) -> tuple[float, float]:
        return (1 + 3 * t, 1 - 0.3 * t) if over else (1 - 0.7 * t, 1 + 3 * t)

    def share(t: float) -> float:
        out = _exposed(levels, *params(t))
        return float((out >= CLIP_HIGH).mean() if over else (out <= CLIP_LOW).mean())

    lo, hi = 0.0, 1.0
    for _ in range(20):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if share(mid) < target else (lo, mid)
    return params(hi)


def _plan(rng: np.random.Generator, n: int) -> list[tuple[str, int | None]]:
    """Each image's kind, and its near-duplicate group; in capture order."""
    plan: list[tuple[str, int | None]] = []
    group = 0
    while len(plan) < round(0.12 * n) and len(plan) + 2 <= n - 5:
        plan += [("near_duplicate", group)] * min(int(rng.integers(2, 5)), n - 5 - len(plan))
        group += 1
    shares = {"blurry": 0.10, "overexposed": 0.06, "underexposed": 0.06, "low_resolution": 0.06}
    for flag, share in shares.items():
        plan += [(flag, None)] * max(1, round(share * n))
    plan = plan[:n] + [("clean", None)] * max(0, n - len(plan))
    order = rng.permutation(len(plan))  # interleave the kinds, each group kept together
    firsts: dict[int, int] = {}
    keyed = []
    for rank, i in enumerate(order.tolist()):
        g = plan[i][1]
        if g is not None:
            rank = firsts.setdefault(g, rank)
        keyed.append((rank, i))
    return [plan[i] for _, i in sorted(keyed)]


def hygiene_dataset(
    seed: int, n: int, *, canvas_size: tuple[int, int] = CANVAS_SIZE, n_sites: int = 2
) -> HygieneSet:
    """``n`` images of ``n_sites`` sites with known hygiene labels, at most one each.

    About 12 % sit in near-duplicate groups (bursts: 2-4 captures of one pose by one camera
    at one resolution, ≤ 1 % shift, ≤ 1° turn, ≤ 0.5 % zoom, exposure within 2 %, blur
    ≤ 0.6 px, each its own noise), 10 % are blurry (sigma
    2.5-6 px at 640 px wide; the others ≤ 0.6: a gap of 4x), 6 % over- and 6 % under-exposed
    (about 45 % of grey levels clipped, always > 30 %; the others < 10 %), 6 % low resolution
    (shorter side 240-450 px; the others 480-768), the rest clean. The clean views of a site
    are a walk with steps of 8-30 % of the footprint and a few degrees: they overlap their
    predecessor (``baseline_pairs``) but add baseline. No image outside a burst has its centre
    within 6 % of the width of another's of its site (``DISTINCT``; turning or zooming in
    place adds no baseline), so every pair but a burst's adds baseline (``distinct_pairs``:
    those of them that overlap). A third of
    the images carry EXIF (make, model, focal length, mostly its 35 mm equivalent).
    """
    rng = np.random.default_rng([seed, 41])
    plan = _plan(rng, n)
    sites = [make_site(seed + 1000, s, canvas_size) for s in range(n_sites)]
    walks = [
        trajectory(np.random.default_rng([seed, s, 43]), site, n, ordered=False)
        for s, site in enumerate(sites)
    ]
    made: list[HygieneImage] = []
    last_clean: dict[int, int] = {}  # site -> its latest clean capture
    group_pose: dict[int, tuple[int, Camera, tuple[int, int], ExifTruth | None]] = {}
    baseline: list[tuple[int, int]] = []
    poses: list[list[Camera]] = [[] for _ in sites]
    for k, (kind, group) in enumerate(plan):
        s = int(rng.integers(n_sites))
        camera = walks[s][k]
        sizes = _LOW_SIZES if kind == "low_resolution" else _CLEAN_SIZES
        size = sizes[int(rng.integers(len(sizes)))]
        exif = _exif_truth(rng) if rng.random() < 1 / 3 else None
        first = group is None or group not in group_pose
        if not first:  # a burst: one camera, one pose, one resolution
            s, camera, size, exif = group_pose[group]  # type: ignore[index]
        elif kind == "clean" and s in last_clean:
            camera = _baseline_step(rng, made[last_clean[s]].camera, sites[s])
        if first:  # a pose of its own: no earlier image of the site within duplicate reach
            camera = _distinct(rng, _fit(camera, sites[s].canvas.size), poses[s], sites[s])
        if group is not None:
            base = group_pose.setdefault(group, (s, camera, size, exif))[1]
            r, phi = 0.01 * base.width * math.sqrt(rng.random()), rng.uniform(0, 2 * math.pi)
            zoom, turn = float(rng.uniform(0.995, 1.005)), float(rng.uniform(-1, 1))
            camera = _fit(
                base.moved(r * math.cos(phi), r * math.sin(phi), zoom, turn), sites[s].canvas.size
            )
        if kind == "clean":
            previous = last_clean.get(s)
            if (
                previous is not None
                and overlap(made[previous].camera.corners(), camera.corners()) >= OVERLAP_MIN
            ):
                baseline.append((previous, k))
            last_clean[s] = k
        poses[s].append(camera)
        sigma = BLURRY_SIGMA if kind == "blurry" else (0.0, SHARP_MAX_SIGMA)
        blur = float(rng.uniform(*sigma)) * size[0] / VIEW_SIZE[0]
        fx = _mild(rng, size[0])
        gain, gamma = fx.gain, fx.gamma
        clean = render_view(sites[s], camera, size)
        exposed = kind in ("overexposed", "underexposed")
        if group is not None:
            gain, gamma = float(rng.uniform(0.98, 1.02)), 1.0
        fx = Effects(blur, gain, gamma, fx.noise, fx.quality, fx.seed)
        image = apply_effects(clean, fx)
        for target in (0.45, 0.55, 0.65) if exposed else ():
            # noise and JPEG unclip some levels: aim at 45 %, more if it ends below 35 %
            soft = clean.filter(ImageFilter.GaussianBlur(blur)) if blur > 0 else clean
            gain, gamma = _exposure_for(soft, kind == "overexposed", target)
            fx = Effects(blur, gain, gamma, fx.noise, fx.quality, fx.seed)
            image = apply_effects(clean, fx)
            decoded = Image.open(io.BytesIO(encode_jpeg(image, fx.quality)))
            if clipped_shares(decoded)[0 if kind == "overexposed" else 1] > 0.35:
                break
        if not exposed and max(clipped_shares(image)) >= CLEAN_CLIPPED_MAX / 2:
            fx = Effects(blur, 1.0, 1.0, fx.noise, fx.quality, fx.seed)
            image = apply_effects(clean, fx)  # keep clean images clean
        data = encode_jpeg(image, fx.quality, make_exif(exif) if exif else None)
        high, low = clipped_shares(Image.open(io.BytesIO(data)))
        labels = frozenset() if kind == "clean" else frozenset({kind})
        made.append(HygieneImage("", data, s, camera, labels, size, blur, high, low, group, exif))
    names = [f"hyg_{int(i):04d}.jpg" for i in rng.permutation(n)]
    images = [replace(m, name=name) for name, m in zip(names, made, strict=True)]
    images.sort(key=lambda im: im.name)
    return HygieneSet(images, [(names[i], names[j]) for i, j in baseline])


# Closer than this (a share of the footprint's width) between centres, two poses are taken for
# one: turning or zooming in place adds no baseline, only moving does.
DISTINCT = 0.06


def _too_close(a: Camera, b: Camera) -> bool:
    return math.hypot(a.x - b.x, a.y - b.y) < DISTINCT * min(a.width, b.width)


def _distinct(rng: np.random.Generator, camera: Camera, earlier: list[Camera], site: Site):
    """``camera``, or a baseline step away from it until no earlier pose is that close."""
    for _ in range(20):
        if not any(_too_close(camera, other) for other in earlier):
            return camera
        camera = _baseline_step(rng, camera, site)
    raise RuntimeError("no distinct pose found")


def _baseline_step(rng: np.random.Generator, camera: Camera, site: Site) -> Camera:
    """A new pose that still overlaps ``camera`` but adds baseline: 8-30 % of its width away
    (after fitting on the canvas), a few degrees turned, a few per cent zoomed."""
    lo, hi = ZOOM[0] * site.base_width, ZOOM[1] * site.base_width
    moved = camera
    for _ in range(20):
        step = float(rng.uniform(0.08, 0.30)) * camera.width
        phi = rng.uniform(0, 2 * math.pi)
        zoom, turn = float(rng.uniform(0.92, 1.08)), float(rng.uniform(-5, 5))
        limit = site.style.max_rotation
        turn = float(np.clip(camera.angle + turn, -limit, limit)) - camera.angle
        moved = camera.moved(step * math.cos(phi), step * math.sin(phi), zoom, turn)
        moved = moved.moved(zoom=float(np.clip(moved.width, lo, hi)) / moved.width)
        moved = _fit(moved, site.canvas.size)
        if math.hypot(moved.x - camera.x, moved.y - camera.y) >= 0.08 * camera.width:
            break  # (at a canvas edge, fitting may pull it back: try another direction)
    return moved

"""A procedurally generated world of coloured shapes, for training and testing clipq's models.

Six colours (``COLOURS``) and five shapes (``SHAPES``), any size from about 7 % to 70 % of
the image side, any position and rotation, on plain grey, gradient or noise backgrounds,
sometimes lightly blurred; scenes hold 1 to 6 objects that may overlap a little. Every
scene comes with plain-English captions derived from what is in it, and with each object's
box and (visible) mask for the detector.

Everything is deterministic from a seed: ``render_scene`` draws only from the
``numpy.random.Generator`` it is given and ``generate_scenes(seed, count)`` gives scene
``i`` its own generator seeded with ``(seed, i)``, so a scene does not depend on ``count``.

Objects are rasterised with PIL ``ImageDraw`` on a supersampled canvas and box-filtered
down (antialiasing). ``clipcore.lab.world_alt`` is an independent renderer of the same world
(analytic signed distances in numpy) used to check that models learn colours and shapes
rather than this module's pixels.

Captions carry a structured meaning (``Claim``) so that training can tell whether a caption
written for one image also describes another (multi-positive contrastive learning), and
evaluation can tell whether a retrieved image matches a query: see ``claim_holds``.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (220, 40, 40),
    "green": (40, 170, 60),
    "blue": (40, 80, 220),
    "yellow": (240, 210, 40),
    "orange": (245, 140, 30),
    "purple": (140, 60, 190),
}
SHAPES: tuple[str, ...] = ("circle", "square", "triangle", "star", "cross")

MIN_SCALE = 0.07
MAX_SCALE = 0.70
# Size words: an object is "small" below SMALL_MAX and "large" above LARGE_MIN (as a fraction
# of the image side, circumscribed diameter); in between it gets no size word.
SMALL_MAX = 0.2
LARGE_MIN = 0.45
# Position words: thirds of the image, from the object's centre.
LOW_THIRD = 0.35
HIGH_THIRD = 0.65

NUMBER_WORDS = {1: "one", 2: "two", 3: "three", 4: "four", 5: "five", 6: "six"}
PLURALS = {
    "circle": "circles",
    "square": "squares",
    "triangle": "triangles",
    "star": "stars",
    "cross": "crosses",
}


@dataclass
class WorldObject:
    colour: str
    shape: str
    box: tuple[float, float, float, float]  # x0, y0, x1, y1 in pixels
    mask: np.ndarray  # bool, H x W: the visible part of the object
    size_fraction: float  # circumscribed diameter / image side
    center: tuple[float, float] = (0.5, 0.5)  # as fractions of the image side (x, y)
    rotation: float = 0.0  # degrees

    @property
    def size_word(self) -> str | None:
        return size_word(self.size_fraction)

    @property
    def position(self) -> tuple[str | None, str | None]:
        return horizontal_word(self.center[0]), vertical_word(self.center[1])


@dataclass(frozen=True)
class ClaimItem:
    """ "count objects that are colour / shape / size / position" (None: any)."""

    count: int
    colour: str | None = None
    shape: str | None = None
    size: str | None = None  # "small" | "large"
    horizontal: str | None = None  # "left" | "right" | "center"
    vertical: str | None = None  # "top" | "bottom" | "center"
    exact: bool = False  # exactly `count` such objects, else at least

    def matches(self, obj: WorldObject) -> bool:
        if self.colour is not None and obj.colour != self.colour:
            return False
        if self.shape is not None and obj.shape != self.shape:
            return False
        if self.size is not None and obj.size_word != self.size:
            return False
        h, v = obj.position
        if self.horizontal is not None and h != self.horizontal:
            return False
        return self.vertical is None or v == self.vertical


@dataclass(frozen=True)
class Claim:
    """The meaning of a caption: some items, and whether they are all there is."""

    items: tuple[ClaimItem, ...]
    exhaustive: bool = True


def claim_holds(claim: Claim, objects: list[WorldObject]) -> bool:
    """Whether a caption with this meaning correctly describes a scene with these objects."""
    for item in claim.items:
        n = sum(1 for o in objects if item.matches(o))
        if n < item.count or ((item.exact or claim.exhaustive) and n != item.count):
            return False
    if claim.exhaustive:
        total = sum(item.count for item in claim.items)
        if total != len(objects):
            return False
    return True


@dataclass
class Scene:
    image: Image.Image
    objects: list[WorldObject]
    captions: list[str]
    claims: list[Claim] = field(default_factory=list)  # parallel to captions

    def describes(self, claim: Claim) -> bool:
        return claim_holds(claim, self.objects)


# ----------------------------------------------------------------------------- words


def size_word(size_fraction: float) -> str | None:
    if size_fraction < SMALL_MAX:
        return "small"
    if size_fraction > LARGE_MIN:
        return "large"
    return None


def horizontal_word(x: float) -> str | None:
    if x < LOW_THIRD:
        return "left"
    if x > HIGH_THIRD:
        return "right"
    if 0.42 <= x <= 0.58:
        return "center"
    return None


def vertical_word(y: float) -> str | None:
    if y < LOW_THIRD:
        return "top"
    if y > HIGH_THIRD:
        return "bottom"
    if 0.42 <= y <= 0.58:
        return "center"
    return None


def position_phrase(h: str | None, v: str | None) -> tuple[str, str | None, str | None] | None:
    """A phrase for a position, with the (horizontal, vertical) words it claims."""
    if h == "center" and v == "center":
        return "in the center", "center", "center"
    if h in ("left", "right") and v in ("top", "bottom"):
        return f"in the {v} {h}", h, v
    if h in ("left", "right"):
        return f"on the {h}", h, None
    if v in ("top", "bottom"):
        return f"at the {v}", None, v
    return None


def article(word: str) -> str:
    return "an" if word[0] in "aeiou" else "a"


def noun_phrase(count: int, colour: str | None, shape: str | None) -> str:
    noun = shape if shape is not None else "shape"
    if count > 1:
        noun = PLURALS.get(noun, noun + "s")
    words = [colour, noun] if colour else [noun]
    phrase = " ".join(words)
    if count == 1:
        return f"{article(phrase)} {phrase}"
    return f"{NUMBER_WORDS[count]} {phrase}"


def join_list(parts: list[str]) -> str:
    if len(parts) == 1:
        return parts[0]
    return ", ".join(parts[:-1]) + " and " + parts[-1]


def simple_caption(colour: str, shape: str) -> str:
    """The canonical prompt: "a photo of a red circle"."""
    return f"a photo of a {colour} {shape}"


def make_captions(
    objects: list[WorldObject], rng: np.random.Generator
) -> tuple[list[str], list[Claim]]:
    """Plain-English captions of a scene, each with its meaning."""
    out: list[tuple[str, Claim]] = []
    n = len(objects)
    if n == 1:
        o = objects[0]
        base = f"{o.colour} {o.shape}"
        full = Claim((ClaimItem(1, o.colour, o.shape),))
        out.append((f"a photo of {article(base)} {base}", full))
        out.append((f"{article(base)} {base}", full))
        out.append(
            (f"a photo of {article(o.shape)} {o.shape}", Claim((ClaimItem(1, None, o.shape),)))
        )
        out.append((f"{article(o.colour)} {o.colour} shape", Claim((ClaimItem(1, o.colour),))))
        sw = o.size_word
        if sw is not None:
            out.append((f"a {sw} {base}", Claim((ClaimItem(1, o.colour, o.shape, sw),))))
        pp = position_phrase(*o.position)
        if pp is not None:
            phrase, h, v = pp
            out.append(
                (
                    f"{article(base)} {base} {phrase}",
                    Claim((ClaimItem(1, o.colour, o.shape, None, h, v),)),
                )
            )
            if sw is not None:
                out.append(
                    (f"a {sw} {base} {phrase}", Claim((ClaimItem(1, o.colour, o.shape, sw, h, v),)))
                )
        return [c for c, _ in out], [m for _, m in out]

    groups = Counter((o.colour, o.shape) for o in objects)
    keys = list(groups)
    rng.shuffle(keys)
    items = tuple(ClaimItem(groups[k], k[0], k[1]) for k in keys)
    listing = join_list([noun_phrase(groups[k], *k) for k in keys])
    out.append((listing, Claim(items)))
    out.append((f"a photo of {listing}", Claim(items)))
    out.append((f"{NUMBER_WORDS[n]} shapes", Claim((ClaimItem(n),))))
    # per-colour and per-shape counts
    by_shape = Counter(o.shape for o in objects)
    shape_keys = sorted(by_shape)
    rng.shuffle(shape_keys)
    out.append(
        (
            join_list([noun_phrase(by_shape[s], None, s) for s in shape_keys]),
            Claim(tuple(ClaimItem(by_shape[s], None, s) for s in shape_keys)),
        )
    )
    by_colour = Counter(o.colour for o in objects)
    colour_keys = sorted(by_colour)
    rng.shuffle(colour_keys)
    out.append(
        (
            join_list([noun_phrase(by_colour[c], c, None) for c in colour_keys]),
            Claim(tuple(ClaimItem(by_colour[c], c, None) for c in colour_keys)),
        )
    )
    # partial descriptions: "a picture with a small blue star on the left"
    o = objects[int(rng.integers(n))]
    base = f"{o.colour} {o.shape}"
    out.append(
        (
            f"a picture with {article(base)} {base}",
            Claim((ClaimItem(1, o.colour, o.shape),), exhaustive=False),
        )
    )
    sw = o.size_word
    pp = position_phrase(*o.position)
    if sw is not None or pp is not None:
        words = f"{sw} {base}" if sw else base
        h = v = None
        if pp is not None:
            phrase, h, v = pp
            words = f"{words} {phrase}"
        out.append(
            (
                f"shapes including {article(words)} {words}",
                Claim((ClaimItem(1, o.colour, o.shape, sw, h, v),), exhaustive=False),
            )
        )
    return [c for c, _ in out], [m for _, m in out]


# ----------------------------------------------------------------------------- geometry


def shape_polygon(
    shape: str, rng: np.random.Generator | None = None, params: dict | None = None
) -> np.ndarray:
    """Vertices (K x 2) of a shape with circumradius 1 centred on the origin, unrotated.

    Proportions are jittered a little when ``rng`` is given. The circle is a 64-gon.
    """
    params = dict(params or {})
    if shape == "circle":
        t = np.linspace(0, 2 * np.pi, 64, endpoint=False)
        return np.stack([np.cos(t), np.sin(t)], 1)
    if shape == "square":
        t = np.pi / 4 + np.arange(4) * np.pi / 2
        return np.stack([np.cos(t), np.sin(t)], 1)
    if shape == "triangle":
        t = -np.pi / 2 + np.arange(3) * 2 * np.pi / 3
        return np.stack([np.cos(t), np.sin(t)], 1)
    if shape == "star":
        inner = params.get("inner", rng.uniform(0.38, 0.5) if rng is not None else 0.42)
        t = -np.pi / 2 + np.arange(10) * np.pi / 5
        r = np.where(np.arange(10) % 2 == 0, 1.0, inner)
        return np.stack([r * np.cos(t), r * np.sin(t)], 1)
    if shape == "cross":
        w = params.get("width", rng.uniform(0.26, 0.36) if rng is not None else 0.32)
        a = 1.0
        pts = [
            (w, -a),
            (w, -w),
            (a, -w),
            (a, w),
            (w, w),
            (w, a),
            (-w, a),
            (-w, w),
            (-a, w),
            (-a, -w),
            (-w, -w),
            (-w, -a),
        ]
        p = np.array(pts, dtype=np.float64)
        return p / np.sqrt(a * a + w * w)
    raise ValueError(f"unknown shape {shape!r}")


def rotate(points: np.ndarray, degrees: float) -> np.ndarray:
    t = math.radians(degrees)
    c, s = math.cos(t), math.sin(t)
    return points @ np.array([[c, s], [-s, c]])


# ----------------------------------------------------------------------------- backgrounds


def make_background(rng: np.random.Generator, size: int, kind: str | None = None) -> np.ndarray:
    """A grey-level background, H x W x 3 float32 in 0..255."""
    kind = kind or str(rng.choice(["plain", "gradient", "noise"], p=[0.4, 0.35, 0.25]))
    if kind == "plain":
        g = rng.uniform(20, 235)
        bg = np.full((size, size), g, np.float32)
    elif kind == "gradient":
        g0, g1 = rng.uniform(20, 235, size=2)
        angle = rng.uniform(0, 2 * np.pi)
        ys, xs = np.mgrid[0:size, 0:size].astype(np.float32) / max(size - 1, 1)
        t = (xs - 0.5) * math.cos(angle) + (ys - 0.5) * math.sin(angle)
        t = (t - t.min()) / max(float(t.max() - t.min()), 1e-6)
        bg = (g0 + (g1 - g0) * t).astype(np.float32)
    elif kind == "noise":
        g = rng.uniform(40, 215)
        cells = int(rng.integers(2, 9))
        coarse = rng.normal(0, rng.uniform(5, 30), size=(cells, cells)).astype(np.float32)
        low = np.asarray(
            Image.fromarray(coarse, mode="F").resize((size, size), Image.Resampling.BICUBIC)
        )
        fine = rng.normal(0, rng.uniform(2, 12), size=(size, size)).astype(np.float32)
        bg = g + low + fine
    else:
        raise ValueError(f"unknown background {kind!r}")
    return np.repeat(np.clip(bg, 0, 255)[:, :, None], 3, axis=2)


def jitter_colour(rng: np.random.Generator, colour: str) -> np.ndarray:
    base = np.array(COLOURS[colour], np.float32)
    c = base * rng.uniform(0.9, 1.08) + rng.uniform(-12, 12, size=3)
    return np.clip(c, 0, 255).astype(np.float32)


# ----------------------------------------------------------------------------- rendering


def _coverage(
    points: np.ndarray, size: int, supersample: int, circle: tuple | None
) -> tuple[np.ndarray, tuple[int, int, int, int]]:
    """Antialiased coverage (0..1) of a polygon (pixel coordinates) within its pixel bbox."""
    if circle is not None:
        cx, cy, r = circle
        x0, y0, x1, y1 = cx - r, cy - r, cx + r, cy + r
    else:
        x0, y0 = points.min(0)
        x1, y1 = points.max(0)
    px0, py0 = max(math.floor(x0) - 1, 0), max(math.floor(y0) - 1, 0)
    px1, py1 = min(math.ceil(x1) + 1, size), min(math.ceil(y1) + 1, size)
    w, h = max(px1 - px0, 1), max(py1 - py0, 1)
    ss = supersample
    canvas = Image.new("L", (w * ss, h * ss), 0)
    draw = ImageDraw.Draw(canvas)
    if circle is not None:
        cx, cy, r = circle
        draw.ellipse(
            [
                ((cx - r) - px0) * ss,
                ((cy - r) - py0) * ss,
                ((cx + r) - px0) * ss - 1,
                ((cy + r) - py0) * ss - 1,
            ],
            fill=255,
        )
    else:
        local = (points - np.array([px0, py0])) * ss
        draw.polygon([tuple(p) for p in local.tolist()], fill=255)
    if ss > 1:
        canvas = canvas.reduce(ss)
    a = np.asarray(canvas, dtype=np.float32) / 255.0
    return a, (px0, py0, px1, py1)


def _sample_n_objects(rng: np.random.Generator) -> int:
    return int(rng.choice([1, 2, 3, 4, 5, 6], p=[0.3, 0.2, 0.15, 0.13, 0.11, 0.11]))


def _scale_range_for(n: int) -> tuple[float, float]:
    hi = min(MAX_SCALE, max(0.22, 0.8 / math.sqrt(n)))
    return MIN_SCALE, hi


def render_scene(
    rng: np.random.Generator,
    size: int = 128,
    n_objects: int | None = None,
    *,
    scale_range: tuple[float, float] | None = None,
    colours: list[str] | None = None,
    shapes: list[str] | None = None,
    background: str | float | tuple | None = None,
    blur: float | None = None,
    max_occlusion: float = 0.25,
    supersample: int | None = None,
    captions: bool = True,
    tint: np.ndarray | None = None,
) -> Scene:
    """A random scene of ``n_objects`` (default: 1 to 6) shapes on a grey background.

    ``scale_range`` bounds each object's circumscribed diameter as a fraction of the image
    side (default 0.07 up to 0.7, less when there are many objects; drawn log-uniformly).
    ``colours`` / ``shapes``: one per object (else random). ``background``: "plain",
    "gradient", "noise", a grey level or an RGB tuple (else random). ``blur``: Gaussian
    radius in pixels (else a light blur on about a quarter of the images). An object may
    cover at most ``max_occlusion`` of those drawn before it. ``tint``: an RGB offset added
    to the background only (``clipcore.lab.nuisance.tint``).
    """
    n = n_objects if n_objects is not None else _sample_n_objects(rng)
    lo, hi = scale_range if scale_range is not None else _scale_range_for(n)
    ss = supersample or max(2, math.ceil(256 / size))

    if isinstance(background, str) or background is None:
        bg = make_background(rng, size, background)
    else:
        rgb = (background,) * 3 if np.isscalar(background) else background
        bg = np.empty((size, size, 3), np.float32)
        bg[:] = np.asarray(rgb, np.float32)
    if tint is not None:
        bg = np.clip(bg + np.asarray(tint, np.float32), 0, 255)
    img = bg

    placed: list[dict] = []
    for k in range(n):
        colour = colours[k] if colours is not None else str(rng.choice(list(COLOURS)))
        shape = shapes[k] if shapes is not None else str(rng.choice(SHAPES))
        rgb = jitter_colour(rng, colour)
        for attempt in range(40):
            scale = float(math.exp(rng.uniform(math.log(lo), math.log(hi))))
            if attempt >= 20:  # crowded: try smaller objects
                scale = max(lo, scale * 0.6)
            r = scale * size / 2
            margin = r + 0.5
            cx = rng.uniform(margin, max(size - margin, margin + 1e-3))
            cy = rng.uniform(margin, max(size - margin, margin + 1e-3))
            rot = float(rng.uniform(0, 360))
            poly = rotate(shape_polygon(shape, rng), rot) * r + np.array([cx, cy])
            circle = (cx, cy, r) if shape == "circle" else None
            a, (x0, y0, x1, y1) = _coverage(poly, size, ss, circle)
            full = np.zeros((size, size), np.float32)
            full[y0:y1, x0:x1] = a[: y1 - y0, : x1 - x0]
            ok = True
            for p in placed:
                before = float((p["visible"]).sum())
                after = float((p["visible"] * (1 - full)).sum())
                if before <= 0 or after < (1 - max_occlusion) * float(p["alpha"].sum()):
                    ok = False
                    break
            if ok:
                break
        else:
            continue  # no room: fewer objects
        for p in placed:
            p["visible"] = p["visible"] * (1 - full)
        if shape == "circle":
            box = (cx - r, cy - r, cx + r, cy + r)
        else:
            box = (*poly.min(0).tolist(), *poly.max(0).tolist())
        box = (
            max(box[0], 0.0),
            max(box[1], 0.0),
            min(box[2], float(size)),
            min(box[3], float(size)),
        )
        placed.append(
            dict(
                colour=colour,
                shape=shape,
                alpha=full,
                visible=full.copy(),
                box=box,
                scale=scale,
                center=(cx / size, cy / size),
                rot=rot,
            )
        )
        img = img * (1 - full[:, :, None]) + rgb[None, None, :] * full[:, :, None]

    if blur is None:
        blur = float(rng.uniform(0.3, 1.0)) * size / 128 if rng.random() < 0.25 else 0.0
    if rng.random() < 0.3:
        img = img + rng.normal(0, rng.uniform(1, 6), size=img.shape).astype(np.float32)
    image = Image.fromarray(np.clip(img + 0.5, 0, 255).astype(np.uint8), "RGB")
    if blur > 0:
        image = image.filter(ImageFilter.GaussianBlur(blur))

    objects = [
        WorldObject(
            colour=p["colour"],
            shape=p["shape"],
            box=tuple(float(v) for v in p["box"]),
            mask=p["visible"] > 0.5,
            size_fraction=p["scale"],
            center=p["center"],
            rotation=p["rot"],
        )
        for p in placed
    ]
    caps, claims = make_captions(objects, rng) if captions else ([], [])
    return Scene(image=image, objects=objects, captions=caps, claims=claims)


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
    supersample: int | None = None,
) -> Scene:
    """One object, fully specified: ``render_object("red", "circle")`` is "a red circle".

    ``scale`` is the circumscribed diameter as a fraction of the image side, ``center`` in
    fractions of the side, ``rotation`` in degrees; ``background`` as for ``render_scene``
    (default plain grey 200). ``seed`` drives the small colour and proportion jitter.
    """
    if colour not in COLOURS:
        raise ValueError(f"unknown colour {colour!r}")
    if shape not in SHAPES:
        raise ValueError(f"unknown shape {shape!r}")
    rng = np.random.default_rng(seed)
    ss = supersample or max(2, math.ceil(256 / size))
    if isinstance(background, str):
        img = make_background(rng, size, background)
    else:
        rgb = (background,) * 3 if np.isscalar(background) else background
        img = np.empty((size, size, 3), np.float32)
        img[:] = np.asarray(rgb, np.float32)
    if tint is not None:
        img = np.clip(img + np.asarray(tint, np.float32), 0, 255)
    r = scale * size / 2
    cx, cy = center[0] * size, center[1] * size
    poly = rotate(shape_polygon(shape, rng), rotation) * r + np.array([cx, cy])
    circle = (cx, cy, r) if shape == "circle" else None
    a, (x0, y0, x1, y1) = _coverage(poly, size, ss, circle)
    full = np.zeros((size, size), np.float32)
    full[y0:y1, x0:x1] = a[: y1 - y0, : x1 - x0]
    col = jitter_colour(rng, colour)
    img = img * (1 - full[:, :, None]) + col[None, None, :] * full[:, :, None]
    image = Image.fromarray(np.clip(img + 0.5, 0, 255).astype(np.uint8), "RGB")
    if shape == "circle":
        box = (cx - r, cy - r, cx + r, cy + r)
    else:
        box = (*poly.min(0).tolist(), *poly.max(0).tolist())
    box = (max(box[0], 0.0), max(box[1], 0.0), min(box[2], float(size)), min(box[3], float(size)))
    obj = WorldObject(
        colour, shape, tuple(float(v) for v in box), full > 0.5, scale, tuple(center), rotation
    )
    caps, claims = make_captions([obj], rng)
    return Scene(image=image, objects=[obj], captions=caps, claims=claims)


def generate_scenes(seed: int, count: int, **kw) -> list[Scene]:
    """``count`` scenes; scene ``i`` is ``render_scene(default_rng([seed, i]), **kw)``."""
    return [render_scene(np.random.default_rng([seed, i]), **kw) for i in range(count)]


def zero_shot_labels() -> list[tuple[str, str]]:
    """The 30 (colour, shape) classes in a fixed order."""
    return [(c, s) for c in COLOURS for s in SHAPES]


def zero_shot_prompts() -> list[str]:
    return [f"a photo of a {c} {s}." for c, s in zero_shot_labels()]

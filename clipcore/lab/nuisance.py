"""The nuisances a camera, a browser or another drawing program put on an image.

A model that knows colours and shapes must not care about them. Each family is a plain
function of an image and a ``numpy.random.Generator``, so that training can draw them and
evaluation can measure each family on its own, on any renderer:

- ``cast``: a white-balance shift of every channel (up to ``CAST_MAX`` levels), the whole
  image; small enough that no colour of the world turns into another (the nearest two,
  yellow and orange, differ by 70 levels of green);
- ``exposure``: a gain and a contrast change around the image mean;
- ``jpeg``: a JPEG round trip at quality 15 to 60;
- ``blur`` and ``noise``: a light Gaussian blur, additive Gaussian noise.

``tint`` draws the tint of a background (a grey shifted per channel, sometimes a pale
colour), which the renderers apply to their backgrounds only, objects untouched.
Sending images at about the model's input size without antialiasing is a rendering choice
(``size`` and ``supersample`` of the renderers), not a function here.
"""

from __future__ import annotations

import io
from collections.abc import Callable

import numpy as np
from PIL import Image, ImageFilter

CAST_MAX = 20.0
TINT_MAX = 25.0

Nuisance = Callable[[Image.Image, np.random.Generator], Image.Image]


def _levels(image: Image.Image) -> np.ndarray:
    return np.asarray(image.convert("RGB"), dtype=np.float32)


def _image(levels: np.ndarray) -> Image.Image:
    return Image.fromarray(np.clip(levels + 0.5, 0, 255).astype(np.uint8), "RGB")


def tint(rng: np.random.Generator) -> np.ndarray:
    """A per-channel offset for a background: a faint cast, or now and then a pale colour."""
    if rng.random() < 0.7:
        return rng.uniform(-TINT_MAX, TINT_MAX, size=3).astype(np.float32)
    hue = rng.uniform(0, 2 * np.pi)
    strength = rng.uniform(15, 40)
    phases = np.array([0.0, 2 * np.pi / 3, 4 * np.pi / 3])
    return (strength * np.cos(hue - phases)).astype(np.float32)


def cast(image: Image.Image, rng: np.random.Generator) -> Image.Image:
    return _image(_levels(image) + rng.uniform(-CAST_MAX, CAST_MAX, size=3).astype(np.float32))


def exposure(image: Image.Image, rng: np.random.Generator) -> Image.Image:
    levels = _levels(image)
    mean = levels.mean()
    contrast = rng.uniform(0.75, 1.25)
    gain = rng.uniform(0.8, 1.2)
    return _image((mean + (levels - mean) * contrast) * gain)


def jpeg(image: Image.Image, rng: np.random.Generator, quality: int | None = None) -> Image.Image:
    buffer = io.BytesIO()
    image.convert("RGB").save(buffer, format="JPEG", quality=quality or int(rng.integers(15, 61)))
    buffer.seek(0)
    return Image.open(buffer).convert("RGB")


def blur(image: Image.Image, rng: np.random.Generator) -> Image.Image:
    radius = rng.uniform(0.4, 1.2) * image.width / 96
    return image.filter(ImageFilter.GaussianBlur(radius))


def noise(image: Image.Image, rng: np.random.Generator) -> Image.Image:
    levels = _levels(image)
    return _image(levels + rng.normal(0, rng.uniform(3, 12), size=levels.shape))


FAMILIES: dict[str, Nuisance] = {
    "cast": cast,
    "exposure": exposure,
    "jpeg": jpeg,
    "blur": blur,
    "noise": noise,
}


def random_nuisances(image: Image.Image, rng: np.random.Generator, p: float = 0.35) -> Image.Image:
    """Each family with probability ``p``, in a camera's order (JPEG last)."""
    for name in ("exposure", "cast", "blur", "noise", "jpeg"):
        if rng.random() < p:
            image = FAMILIES[name](image, rng)
    return image

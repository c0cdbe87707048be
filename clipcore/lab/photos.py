"""Real photographs for out-of-domain checks: the ones bundled with scikit-image.

No model of clipq is trained on them. ``photographs(crops)`` gives each photograph whole
and ``crops`` deterministic square crops of 40-90 % of its shorter side, so that a few
photographs make a set of a few hundred views. Drawings and charts among scikit-image's
samples (its logo, colour wheel, text page) are left out: they are not photographs.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

PHOTOGRAPHS = (
    "astronaut",
    "brick",
    "camera",
    "cat",
    "chelsea",
    "coffee",
    "coins",
    "grass",
    "gravel",
    "horse",
    "hubble_deep_field",
    "immunohistochemistry",
    "moon",
    "retina",
    "rocket",
)


def _rgb(array: np.ndarray) -> Image.Image:
    if array.dtype != np.uint8:
        array = (array * 255 if array.max() <= 1 else array).astype(np.uint8)
    if array.ndim == 2:
        array = np.stack([array] * 3, axis=-1)
    return Image.fromarray(array[..., :3], "RGB")


def photograph(name: str) -> Image.Image:
    """One of scikit-image's photographs (``PHOTOGRAPHS``), as an RGB image."""
    import skimage.data

    return _rgb(getattr(skimage.data, name)())


def photographs(crops: int = 10, seed: int = 0) -> list[tuple[str, Image.Image]]:
    """(name, image) for each photograph and ``crops`` square crops of it."""
    rng = np.random.default_rng(seed)
    views = []
    for name in PHOTOGRAPHS:
        image = photograph(name)
        views.append((name, image))
        width, height = image.size
        for k in range(crops):
            side = int(min(width, height) * rng.uniform(0.4, 0.9))
            x = int(rng.integers(0, width - side + 1))
            y = int(rng.integers(0, height - side + 1))
            views.append((f"{name}-crop{k}", image.crop((x, y, x + side, y + side))))
    return views

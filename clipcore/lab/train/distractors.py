"""Texts and images that describe nothing in the world: negatives for training.

A contrastive model only learns what its captions and images contrast. Trained on the
world alone, it has never been told that "a pink circle" or "a dog in the park" is *not*
a red circle, so such texts land anywhere, often near real images. These distractors are
added to each batch as extra columns (texts) and rows (images) that match nothing.

The word lists here are for training only; ``clipcore.lab.honesty`` measures refusal
with other lists (other words, other sentence shapes), so that the measurement is of
what the model learnt, not of these lists.
"""

from __future__ import annotations

import string

import numpy as np
from PIL import Image

from clipcore.lab import world

UNKNOWN_COLOURS = ("pink", "brown", "black", "white", "cyan", "magenta", "beige", "navy")
UNKNOWN_SHAPES = ("hexagon", "heart", "pentagon", "arrow", "crescent", "spiral", "oval", "ring")
NOUNS = [
    "dog",
    "cat",
    "horse",
    "car",
    "bicycle",
    "house",
    "tree",
    "mountain",
    "river",
    "city",
    "street",
    "person",
    "child",
    "kitchen",
    "table",
    "chair",
    "laptop",
    "phone",
    "invoice",
    "contract",
    "meeting",
    "recipe",
    "soup",
    "guitar",
    "piano",
    "concert",
    "forest",
    "beach",
    "ocean",
    "airplane",
    "train",
    "bridge",
    "castle",
    "garden",
    "flower",
    "bird",
    "fish",
    "market",
    "office",
    "football",
    "stadium",
    "painting",
    "museum",
    "library",
    "book",
    "newspaper",
    "coffee",
    "pizza",
    "bottle",
    "window",
]
VERBS = [
    "running",
    "sleeping",
    "playing",
    "eating",
    "standing",
    "flying",
    "swimming",
    "parked",
    "waiting",
]
PLACES = [
    "in the park",
    "at night",
    "on a table",
    "in the rain",
    "by the sea",
    "downtown",
    "in winter",
]


def sentence(rng: np.random.Generator) -> str:
    """An off-topic caption: an unknown colour or shape, another domain, or nonsense."""
    kind = rng.integers(5)
    if kind == 0:
        return f"a photo of a {rng.choice(UNKNOWN_COLOURS)} {rng.choice(world.SHAPES)}"
    if kind == 1:
        return f"a {rng.choice(list(world.COLOURS))} {rng.choice(UNKNOWN_SHAPES)}"
    if kind == 2:
        noun = rng.choice(NOUNS)
        return f"a {noun} {rng.choice(VERBS)} {rng.choice(PLACES)}"
    if kind == 3:
        words = rng.choice(NOUNS, size=int(rng.integers(1, 4)))
        return " ".join(words)
    letters = list(string.ascii_lowercase)
    return " ".join(
        "".join(rng.choice(letters, size=int(rng.integers(3, 9))))
        for _ in range(int(rng.integers(1, 4)))
    )


def texture(rng: np.random.Generator, size: int) -> Image.Image:
    """An image that is no scene of the world: many-coloured smooth noise, stripes or blobs."""
    kind = rng.integers(3)
    if kind == 0:
        cells = int(rng.integers(3, 12))
        coarse = rng.uniform(0, 255, size=(cells, cells, 3)).astype(np.uint8)
        image = Image.fromarray(coarse, "RGB").resize((size, size), Image.Resampling.BICUBIC)
        fine = rng.normal(0, rng.uniform(0, 25), size=(size, size, 3))
        return Image.fromarray(np.clip(np.asarray(image) + fine, 0, 255).astype(np.uint8), "RGB")
    ys, xs = np.mgrid[0:size, 0:size].astype(np.float32) / size
    if kind == 1:
        angle = rng.uniform(0, np.pi)
        freq = rng.uniform(3, 15)
        t = np.sin(2 * np.pi * freq * (xs * np.cos(angle) + ys * np.sin(angle)))
        a, b = rng.uniform(0, 255, size=(2, 3))
        levels = a + (b - a) * ((t[:, :, None] + 1) / 2)
        return Image.fromarray(levels.astype(np.uint8), "RGB")
    levels = np.zeros((size, size, 3), np.float32) + rng.uniform(0, 255, size=3)
    for _ in range(int(rng.integers(5, 25))):
        cx, cy, r = rng.uniform(0, 1), rng.uniform(0, 1), rng.uniform(0.03, 0.25)
        blob = np.exp(-((xs - cx) ** 2 + (ys - cy) ** 2) / (2 * r * r))[:, :, None]
        levels = levels * (1 - blob) + rng.uniform(0, 255, size=3) * blob
    return Image.fromarray(np.clip(levels, 0, 255).astype(np.uint8), "RGB")

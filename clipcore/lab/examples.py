"""The web page's "Try an example" pictures: things the embedded demo CLIP knows.

``python -m clipcore.lab.examples`` renders them with :mod:`clipcore.lab.world` into
``api/static/examples/`` (small PNGs and ``examples.json``, which the page reads: each
example's file, the labels and prompt template it is classified with, and the label that
should come out on top). Everything is seeded, so a rerun writes the same pictures
(``tests/clipcore/test_examples.py`` checks the committed ones against a fresh render).

The labels were chosen against the embedded model: one object is named reliably (30-way,
98.7 %); in a scene of several it tells which colours and shapes are present, not which
colour goes with which shape, so the scene's other labels never swap colours between its
shapes.
"""

from __future__ import annotations

import argparse
import io
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from clipcore.lab.world import render_object, render_scene

SIZE = 128  # pixels; the embedded model reads 48, photographs' CLIPs 224
OUT = Path(__file__).resolve().parents[2] / "api" / "static" / "examples"
SHAPE_LABELS = ["red circle", "blue square", "yellow star", "green triangle"]
SCENE_LABELS = [  # no commas: the page's labels box splits on them
    "a red circle and a blue square and a yellow star",
    "a green triangle and a purple cross and an orange circle",
    "three green stars",
    "a purple square",
]


@dataclass(frozen=True)
class Example:
    name: str  # what the button says
    file: str
    labels: list[str]
    prompt_template: str
    expected: str  # the top label the embedded model gives it
    shows: list[tuple[str, str]]  # (colour, shape) of every object in it

    def manifest(self) -> dict:
        return {
            "name": self.name,
            "file": self.file,
            "labels": self.labels,
            "prompt_template": self.prompt_template,
            "expected": self.expected,
            "shows": [list(pair) for pair in self.shows],
        }


EXAMPLES = [
    Example("red circle", "red-circle.png", SHAPE_LABELS, "a photo of a {}.", "red circle",
            [("red", "circle")]),
    Example("blue square", "blue-square.png", SHAPE_LABELS, "a photo of a {}.", "blue square",
            [("blue", "square")]),
    Example("yellow star", "yellow-star.png", SHAPE_LABELS, "a photo of a {}.", "yellow star",
            [("yellow", "star")]),
    Example("three shapes", "three-shapes.png", SCENE_LABELS, "a photo of {}.", SCENE_LABELS[0],
            [("red", "circle"), ("blue", "square"), ("yellow", "star")]),
]  # fmt: skip
SCENE_SEED = 0


def render(example: Example) -> Image.Image:
    """The picture of ``example``, the same on every run."""
    if len(example.shows) == 1:
        colour, shape = example.shows[0]
        index = EXAMPLES.index(example)
        return render_object(
            colour,
            shape,
            size=SIZE,
            scale=0.55,
            center=(0.46, 0.54),  # off the exact centre, where the demo model is weaker
            rotation=12.0 * index,
            seed=index,
        ).image
    colours, shapes = zip(*example.shows, strict=True)
    scene = render_scene(
        np.random.default_rng(SCENE_SEED),
        size=SIZE,
        n_objects=len(example.shows),
        colours=list(colours),
        shapes=list(shapes),
        background="plain",
        blur=0.0,
        scale_range=(0.3, 0.4),
        captions=False,
    )
    assert len(scene.objects) == len(example.shows), "an object found no room; change the seed"
    return scene.image


def png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", optimize=True)
    return buffer.getvalue()


def manifest() -> dict:
    return {
        "about": "Pictures the embedded demo CLIP knows, rendered by python -m "
        "clipcore.lab.examples",
        "examples": [example.manifest() for example in EXAMPLES],
    }


def write(out: Path) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for example in EXAMPLES:
        path = out / example.file
        path.write_bytes(png(render(example)))
        written.append(path)
    (out / "examples.json").write_text(json.dumps(manifest(), indent=2) + "\n")
    return [*written, out / "examples.json"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=OUT, help="default: %(default)s")
    args = parser.parse_args()
    for path in write(args.out):
        print(f"wrote {path} ({path.stat().st_size} bytes)")


if __name__ == "__main__":
    main()

"""How well a CLIP's zero-shot colour and shape survive the nuisances of images from elsewhere.

``python -m clipcore.lab.robustness [--model DIR] [--count 600] [--renderers main,alt,third]
[--families clean,...] [--seed 20000] [--markdown OUT] [--json OUT]`` measures zero-shot
top-1 over the 30 prompts "a photo of a {colour} {shape}." (``world.zero_shot_prompts``)
for colour, shape and colour x shape, on ``count`` held-out single-object images per set,
for every renderer (``main``: ``clipcore.lab.world``, the training renderer; ``alt`` and
``third``: the independent ``world_alt`` and ``world_third``) and each nuisance family on
its own (``FAMILIES``):

- ``clean``: 128 px, the renderer's own backgrounds and effects, objects 20-70 % of the side;
- ``cast-bg``: a plain background, a grey whose every channel is shifted by 10 to 20 levels
  either way (a faint colour cast, as other drawing code makes);
- ``tinted-bg``: the renderer's textured (gradient / noise ...) backgrounds with
  ``clipcore.lab.nuisance.tint`` on the background only;
- ``near-size``: drawn directly at the model's input size up to 4/3 of it (48-64 px for a
  48 px model) without antialiasing and sent at that size, so no downscaling smooths the
  edges;
- ``jpeg-15``, ``exposure``, ``cast`` (the whole image), ``blur``, ``noise``: the functions
  of ``clipcore.lab.nuisance`` applied to the ``clean`` images themselves (paired sets: the
  difference from ``clean`` is the family's alone);
- ``small``: like ``clean`` with objects 7-20 % of the side.

Seeds are held out from training (which uses 0-5, its checks 10_007 / 10_008): the sets
start at ``--seed`` (default 20_000). Images go through the model's own processor, loaded
and embedded as ``clipcore.lab.evaluate`` does (:func:`evaluate.zero_shot_accuracy`).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image

from clipcore.lab import nuisance
from clipcore.lab.evaluate import (
    SMALL_SCALES,
    ZERO_SHOT_SCALES,
    LoadedClip,
    load_clip,
    renderer_module,
    zero_shot_accuracy,
)

RENDERERS: tuple[str, ...] = ("main", "alt", "third")
RENDERER_MODULES = {
    "main": "clipcore.lab.world",
    "alt": "clipcore.lab.world_alt",
    "third": "clipcore.lab.world_third",
}
FAMILIES: dict[str, str] = {
    "clean": "128 px, the renderer's own backgrounds and effects, objects 20-70 % of the side",
    "cast-bg": "plain background: a grey, each channel shifted by 10-20 levels either way",
    "tinted-bg": "the renderer's textured backgrounds, tinted (nuisance.tint)",
    "near-size": "drawn at the input size to 4/3 of it, no antialiasing, sent at that size",
    "jpeg-15": "the clean images, JPEG quality 15",
    "exposure": "the clean images, gain and contrast (nuisance.exposure)",
    "cast": "the clean images, a whole-image cast up to 20 levels (nuisance.cast)",
    "blur": "the clean images, a light Gaussian blur (nuisance.blur)",
    "noise": "the clean images, Gaussian noise (nuisance.noise)",
    "small": "like clean, objects 7-20 % of the side",
}
SEED = 20_000
CAST_BG = (10.0, 20.0)
# Each renderer's own non-plain backgrounds, for tinted-bg.
TEXTURED: dict[str, tuple[str, ...]] = {
    "main": ("gradient", "noise"),
    "alt": ("linear", "radial", "noise"),
    "third": ("vignette", "stops", "value"),
}
# Hard edges: each renderer's own way of drawing without antialiasing (and without the blur
# it would otherwise put on some images).
NO_ANTIALIAS: dict[str, dict] = {
    "main": {"supersample": 1, "blur": 0.0},
    "alt": {"antialias": False},
    "third": {"antialias": False},
}
# The families that post-process the clean images, and how.
POST: dict[str, Callable[[Image.Image, np.random.Generator], Image.Image]] = {
    "jpeg-15": lambda im, rng: nuisance.jpeg(im, rng, quality=15),
    "exposure": nuisance.exposure,
    "cast": nuisance.cast,
    "blur": nuisance.blur,
    "noise": nuisance.noise,
}
# The families drawn afresh, each from its own seed offset.
DRAWN = {"clean": 0, "cast-bg": 1, "tinted-bg": 2, "near-size": 3, "small": 4}


def _scene_kwargs(
    family: str, renderer: str, rng: np.random.Generator, input_size: int = 48
) -> dict:
    """Per-image arguments of ``render_scene`` for a drawn family (``rng``: its own)."""
    if family == "cast-bg":
        grey = rng.uniform(30, 225)
        shift = rng.uniform(*CAST_BG, size=3) * rng.choice([-1.0, 1.0], size=3)
        return {"background": tuple(float(v) for v in np.clip(grey + shift, 0, 255))}
    if family == "tinted-bg":
        kinds = TEXTURED[renderer]
        return {"background": kinds[int(rng.integers(len(kinds)))], "tint": nuisance.tint(rng)}
    if family == "near-size":
        return {"size": int(rng.integers(input_size, input_size * 4 // 3 + 1))}
    return {}


def family_set(
    family: str, renderer: str, count: int, seed: int = SEED, clean=None, input_size: int = 48
) -> tuple[list[Image.Image], list[tuple[str, str]]]:
    """``count`` single-object images of one family by one renderer, and their labels.

    The post-processing families transform ``clean`` (the renderer's clean set, made here
    when not given). ``input_size``: the model's, which near-size images are drawn about.
    """
    if family in POST:
        images, labels = clean or family_set("clean", renderer, count, seed)
        k = list(POST).index(family)
        return [
            POST[family](im, np.random.default_rng([seed, i, 100 + k]))
            for i, im in enumerate(images)
        ], list(labels)
    if family not in DRAWN:
        raise ValueError(f"unknown family {family!r}; known: {', '.join(FAMILIES)}")
    mod = renderer_module(renderer)
    r = list(RENDERERS).index(renderer) if renderer in RENDERERS else 9
    fixed: dict = {"n_objects": 1, "scale_range": ZERO_SHOT_SCALES, "size": 128}
    if family == "small":
        fixed["scale_range"] = SMALL_SCALES
    if family == "near-size":
        fixed.update(NO_ANTIALIAS[renderer])
    images, labels = [], []
    s = seed + DRAWN[family]
    for i in range(count):
        own = np.random.default_rng([s, i, r, 1])
        kw = {**fixed, **_scene_kwargs(family, renderer, own, input_size)}
        scene = mod.render_scene(np.random.default_rng([s, i, r]), captions=False, **kw)
        images.append(scene.image)
        labels.append((scene.objects[0].colour, scene.objects[0].shape))
    return images, labels


def measure(
    clip: LoadedClip,
    count: int = 600,
    renderers=RENDERERS,
    families=tuple(FAMILIES),
    seed: int = SEED,
    log: Callable[[str], None] | None = print,
) -> dict:
    """``{family: {renderer: {"colour", "shape", "colour_shape"}}}`` plus ``"seconds"``:
    per renderer, the time spent drawing images and embedding them."""
    results: dict = {f: {} for f in families}
    seconds: dict = {}
    input_size = clip.family.shape.input_size
    for r in renderers:
        draw = embed = 0.0
        clean = None
        for f in families:
            t0 = time.perf_counter()
            if f in POST and clean is None:
                clean = family_set("clean", r, count, seed)
            images, labels = family_set(f, r, count, seed, clean, input_size)
            if f == "clean":
                clean = (images, labels)
            t1 = time.perf_counter()
            results[f][r] = zero_shot_accuracy(clip, images, labels)
            t2 = time.perf_counter()
            draw, embed = draw + t1 - t0, embed + t2 - t1
            if log:
                m = results[f][r]
                log(
                    f"{r:5s} {f:9s} colour x shape {m['colour_shape']:.3f}  colour "
                    f"{m['colour']:.3f}  shape {m['shape']:.3f}  ({t2 - t0:.1f} s)"
                )
        seconds[r] = {"draw": round(draw, 1), "embed": round(embed, 1)}
    results["seconds"] = seconds
    return results


def table(results: dict, renderers=RENDERERS, families=None) -> str:
    """A markdown table: families down, renderers across; each cell colour x shape top-1,
    then (colour / shape), in per cent."""
    families = [f for f in (families or FAMILIES) if f in results]
    head = "| family | " + " | ".join(f"{r} (`{RENDERER_MODULES[r]}`)" for r in renderers)
    lines = [head + " |", "|---" * (len(renderers) + 1) + "|"]
    for f in families:
        cells = []
        for r in renderers:
            m = results[f].get(r)
            cells.append(
                "-"
                if m is None
                else f"**{100 * m['colour_shape']:.1f}** "
                f"({100 * m['colour']:.1f} / {100 * m['shape']:.1f})"
            )
        lines.append(f"| {f} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def legend(families=None) -> str:
    return "\n".join(f"- `{f}`: {FAMILIES[f]}" for f in (families or FAMILIES))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m clipcore.lab.robustness",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--model", default="", help="CLIP folder (default: the embedded model)")
    p.add_argument("--count", type=int, default=600, help="images per family and renderer")
    p.add_argument("--renderers", default=",".join(RENDERERS))
    p.add_argument("--families", default=",".join(FAMILIES))
    p.add_argument("--seed", type=int, default=SEED)
    p.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch threads (default 1: beside another job on 2 cores, 2 threads are slower)",
    )
    p.add_argument("--markdown", type=Path, help="also write the table here (markdown)")
    p.add_argument("--json", type=Path, help="also write the figures here (JSON)")
    args = p.parse_args(argv)
    renderers = tuple(r for r in args.renderers.split(",") if r)
    families = tuple(f for f in args.families.split(",") if f)
    for r in renderers:
        if r not in RENDERERS:
            p.error(f"unknown renderer {r!r}; known: {', '.join(RENDERERS)}")
    for f in families:
        if f not in FAMILIES:
            p.error(f"unknown family {f!r}; known: {', '.join(FAMILIES)}")

    import torch

    torch.set_num_threads(args.threads)
    t0 = time.time()
    clip = load_clip(args.model, "cpu")
    results = measure(clip, args.count, renderers, families, args.seed)
    elapsed = time.time() - t0
    out = table(results, renderers, families)
    cmd = "python -m clipcore.lab.robustness " + " ".join(
        argv if argv is not None else sys.argv[1:]
    )
    timing = ", ".join(
        f"{r}: draw {s['draw']:.0f} s, embed {s['embed']:.0f} s"
        for r, s in results["seconds"].items()
    )
    note = (
        f"Zero-shot top-1 over the 30 prompts, in per cent: **colour x shape** (colour / "
        f"shape); {args.count} held-out single-object images per cell (seed {args.seed}), "
        f"model `{args.model or 'embedded'}`. Measured with `{cmd.strip()}` in "
        f"{elapsed:.0f} s ({timing}; {args.threads} torch threads)."
    )
    print()
    print(out)
    print()
    print(note)
    if args.markdown:
        args.markdown.write_text(f"{note}\n\n{out}\n\nFamilies:\n\n{legend(families)}\n")
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

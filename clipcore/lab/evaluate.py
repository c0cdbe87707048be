"""Evaluate clipq's CLIP and detector on held-out generated images.

``python -m clipcore.lab.evaluate [--clip PATH] [--detector SPEC] [--count 600] [--seed 12345]
[--renderer main|alt|third|all] [--write-cards]`` prints, for each renderer:

- zero-shot top-1 accuracy over the 30 classes "a photo of a {colour} {shape}." on ``count``
  single-object images (object 20-70 % of the side, any position, rotation and background),
  scored for colour, shape and colour x shape; and colour x shape on ``count`` images of small
  objects (7-20 % of the side), reported separately;
- text -> image Recall@1 / Recall@5 over ``count`` scenes of 1-6 objects, each scene's full
  caption ("a red circle, two blue stars and a green square") as the query; a retrieved
  image counts when the caption correctly describes it (``clipcore.lab.world.claim_holds``);
- detector recall: the share of ground-truth objects matched at box IoU >= 0.5 by one of the
  top 10 proposals, and the mean mask IoU of those matches (unmatched objects count 0) on the
  same scenes.

``main`` is ``clipcore.lab.world`` (the renderer the models were trained on); ``alt`` and
``third`` are the independent ``clipcore.lab.world_alt`` and ``clipcore.lab.world_third``.
Images are 128 px and go through the model's own ``CLIPProcessor`` (resize + centre crop),
as user images do: models load and embed through the service core
(:func:`clipcore.clip_model.load_clip`, :mod:`clipcore.encode`).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from clipcore.clip_model import LoadedClip, load_clip
from clipcore.encode import embed_images, embed_texts
from clipcore.lab import world, world_alt, world_third

ZERO_SHOT_SCALES = (0.2, world.MAX_SCALE)
SMALL_SCALES = (world.MIN_SCALE, 0.2)


RENDERERS = {"main": world, "alt": world_alt, "third": world_third}


def renderer_module(name: str):
    """``main``: the training renderer; ``alt`` and ``third``: independent ones (eval only)."""
    return RENDERERS[name]


def zero_shot_set(
    renderer: str = "main",
    seed: int = 12345,
    count: int = 600,
    size: int = 128,
    scale_range: tuple[float, float] = ZERO_SHOT_SCALES,
):
    """Single-object images and their (colour, shape) labels."""
    scenes = renderer_module(renderer).generate_scenes(
        seed, count, size=size, n_objects=1, scale_range=scale_range
    )
    return [s.image for s in scenes], [(s.objects[0].colour, s.objects[0].shape) for s in scenes]


def scene_set(renderer: str = "main", seed: int = 12345, count: int = 600, size: int = 128):
    """Scenes of 1-6 objects (for retrieval and the detector)."""
    return renderer_module(renderer).generate_scenes(seed + 1, count, size=size)


def embed_images_in_chunks(clip: LoadedClip, images, chunk: int = 256):
    """Unit image embeddings through the core's own pre-processing and forward pass."""
    import torch

    return torch.cat(
        [embed_images(clip, images[i : i + chunk]) for i in range(0, len(images), chunk)]
    )


def zero_shot_accuracy(clip: LoadedClip, images, labels) -> dict[str, float]:
    """Top-1 over the 30 "a photo of a {colour} {shape}." prompts: colour, shape, both."""
    classes = world.zero_shot_labels()
    txt = embed_texts(clip, world.zero_shot_prompts())
    img = embed_images_in_chunks(clip, images)
    pred = [classes[i] for i in (img @ txt.T).argmax(1).tolist()]
    n = len(labels)
    return {
        "colour": sum(p[0] == y[0] for p, y in zip(pred, labels, strict=True)) / n,
        "shape": sum(p[1] == y[1] for p, y in zip(pred, labels, strict=True)) / n,
        "colour_shape": sum(p == y for p, y in zip(pred, labels, strict=True)) / n,
    }


def retrieval_recall(clip: LoadedClip, scenes, ks=(1, 5)) -> dict[str, float]:
    """Text -> image Recall@k with each scene's first (complete) caption as the query."""
    img = embed_images_in_chunks(clip, [s.image for s in scenes])
    txt = embed_texts(clip, [s.captions[0] for s in scenes])
    order = (txt @ img.T).argsort(1, descending=True)[:, : max(ks)].tolist()
    hits = {k: 0 for k in ks}
    for q, ranked in enumerate(order):
        claim = scenes[q].claims[0]
        ok = [world.claim_holds(claim, scenes[i].objects) for i in ranked]
        for k in ks:
            hits[k] += any(ok[:k])
    return {f"R@{k}": hits[k] / len(scenes) for k in ks}


def _box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    x0 = np.maximum(a[:, None, 0], b[None, :, 0])
    y0 = np.maximum(a[:, None, 1], b[None, :, 1])
    x1 = np.minimum(a[:, None, 2], b[None, :, 2])
    y1 = np.minimum(a[:, None, 3], b[None, :, 3])
    inter = np.clip(x1 - x0, 0, None) * np.clip(y1 - y0, 0, None)
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    return inter / np.maximum(area_a[:, None] + area_b[None, :] - inter, 1e-9)


def detector_metrics(model, scenes, top_n: int = 10, batch: int = 16) -> dict[str, float]:
    """Recall of ground-truth objects at box IoU >= 0.5 among the top ``top_n`` proposals,
    and mean mask IoU of the best-box-IoU match (0 for unmatched objects)."""
    from clipcore.detector import propose_regions

    found = total = 0
    mask_ious: list[float] = []
    for i in range(0, len(scenes), batch):
        chunk = scenes[i : i + batch]
        regions = propose_regions(model, [s.image for s in chunk], top_n=top_n, score_threshold=0.0)
        for scene, regs in zip(chunk, regions, strict=True):
            gt = np.array([o.box for o in scene.objects], dtype=np.float64).reshape(-1, 4)
            total += len(gt)
            if not regs or not len(gt):
                mask_ious += [0.0] * len(gt)
                continue
            pr = np.array([r.box for r in regs], dtype=np.float64)
            iou = _box_iou(gt, pr)
            for g, obj in enumerate(scene.objects):
                j = int(iou[g].argmax())
                if iou[g, j] >= 0.5:
                    found += 1
                    m = regs[j].mask
                    inter = np.logical_and(m, obj.mask).sum()
                    union = np.logical_or(m, obj.mask).sum()
                    mask_ious.append(float(inter / union) if union else 0.0)
                else:
                    mask_ious.append(0.0)
    return {
        "recall": found / max(total, 1),
        "mask_iou": float(np.mean(mask_ious or [0.0])),
        "objects": total,
    }


def evaluate(
    clip: str | None = None,
    detector: str | None = "embedded",
    count: int = 600,
    seed: int = 12345,
    renderers=("main", "alt"),
    log=print,
) -> dict:
    import torch

    torch.set_num_threads(max(1, torch.get_num_threads()))
    results: dict = {"count": count, "seed": seed}
    loaded: LoadedClip | None = None
    det = None
    if clip is not None:
        loaded = load_clip(clip or "embedded", "cpu")
    if detector is not None:
        from clipcore.detector import load_detector

        det = load_detector(detector, "cpu")
    for r in renderers:
        res: dict = {}
        t0 = time.time()
        if loaded is not None:
            imgs, labels = zero_shot_set(r, seed, count)
            res.update(zero_shot_accuracy(loaded, imgs, labels))
            imgs, labels = zero_shot_set(r, seed + 2, count, scale_range=SMALL_SCALES)
            res["colour_shape_small"] = zero_shot_accuracy(loaded, imgs, labels)["colour_shape"]
        scenes = scene_set(r, seed, count)
        if loaded is not None:
            res.update(retrieval_recall(loaded, scenes))
        if det is not None:
            t1 = time.time()
            d = detector_metrics(det, scenes)
            res["detector_recall@10"] = d["recall"]
            res["mask_iou"] = d["mask_iou"]
            res["gt_objects"] = d["objects"]
            res["detector_ms_per_image"] = 1000 * (time.time() - t1) / len(scenes)
        res["seconds"] = round(time.time() - t0, 1)
        results[r] = res
        log(f"{r}: {json.dumps(res)}")
    return results


ROWS = [
    ("colour", "zero-shot colour top-1 (single object, 20-70 % of side)"),
    ("shape", "zero-shot shape top-1 (same images)"),
    ("colour_shape", "zero-shot colour x shape top-1, 30 classes (same images)"),
    ("colour_shape_small", "zero-shot colour x shape top-1, small objects (7-20 % of side)"),
    ("R@1", "text -> image Recall@1 (1-6 object scenes, full caption)"),
    ("R@5", "text -> image Recall@5"),
    ("detector_recall@10", "detector recall at IoU >= 0.5 in top 10 proposals"),
    ("mask_iou", "detector mean mask IoU (unmatched = 0)"),
]


def table(results: dict, renderers) -> str:
    head = (
        "| measure | "
        + " | ".join(f"{r} renderer ({RENDERERS[r].__name__})" for r in renderers)
        + " |"
    )
    lines = [head, "|---" * (len(renderers) + 1) + "|"]
    for key, label in ROWS:
        if not any(key in results.get(r, {}) for r in renderers):
            continue
        vals = []
        for r in renderers:
            v = results.get(r, {}).get(key)
            vals.append("-" if v is None else f"{100 * v:.1f} %")
        lines.append(f"| {label} | " + " | ".join(vals) + " |")
    return "\n".join(lines)


def write_figures(card: Path, text: str) -> None:
    from clipcore.lab.train.clip import FIGURES_MARKER

    body = card.read_text() if card.exists() else ""
    head = body.split(FIGURES_MARKER, 1)[0].rstrip() if body else ""
    card.write_text(f"{head}\n\n{FIGURES_MARKER}\n\n{text.strip()}\n")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m clipcore.lab.evaluate",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--clip", default="", help="CLIP folder (default: the embedded model); 'none' to skip"
    )
    p.add_argument(
        "--detector",
        default="embedded",
        help="detector spec (see clipcore.detector.load_detector); 'none' to skip",
    )
    p.add_argument("--count", type=int, default=600)
    p.add_argument("--seed", type=int, default=12345)
    p.add_argument("--renderer", choices=["main", "alt", "third", "all"], default="all")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument(
        "--write-cards",
        action="store_true",
        help="write the figures into the embedded models' README.md cards",
    )
    args = p.parse_args(argv)

    import torch

    torch.set_num_threads(args.threads)
    renderers = ("main", "alt", "third") if args.renderer == "all" else (args.renderer,)
    clip = None if args.clip.lower() == "none" else args.clip
    det = None if args.detector.lower() == "none" else args.detector
    t0 = time.time()
    results = evaluate(clip, det, args.count, args.seed, renderers)
    out = table(results, renderers)
    print()
    print(out)
    print(f"\n{args.count} images per set, seed {args.seed}; {time.time() - t0:.0f} s")
    if args.write_cards:
        import platform

        from clipcore.models import EMBEDDED_CLIP_DIR, EMBEDDED_DETECTOR_DIR

        cmd = "python -m clipcore.lab.evaluate " + " ".join(
            argv if argv is not None else sys.argv[1:]
        )
        note = (
            f"Measured with `{cmd.strip()}` ({args.count} held-out images per set, seed "
            f"{args.seed}, 128 px scenes; CLIP inputs go through the model's own processor), "
            "on a 2-core CPU "
            f"({platform.machine()}), no GPU. `main` is `clipcore.lab.world`, the renderer the "
            "models were trained on (held-out seeds); `alt` (`clipcore.lab.world_alt`) and "
            "`third` (`clipcore.lab.world_third`) are independent renderers never used in "
            "training."
        )
        if clip is not None:
            rows = table(
                {
                    r: {
                        k: v
                        for k, v in results[r].items()
                        if k not in ("detector_recall@10", "mask_iou")
                    }
                    for r in renderers
                },
                renderers,
            )
            write_figures(EMBEDDED_CLIP_DIR / "README.md", f"{note}\n\n{rows}")
        if det is not None:
            rows = table(
                {
                    r: {
                        k: results[r][k]
                        for k in ("detector_recall@10", "mask_iou")
                        if k in results[r]
                    }
                    for r in renderers
                },
                renderers,
            )
            ms = ", ".join(f"{r}: {results[r]['detector_ms_per_image']:.0f}" for r in renderers)
            write_figures(
                EMBEDDED_DETECTOR_DIR / "README.md",
                f"{note}\n\n{rows}\n\nInference time (ms per 128 px image, batches of "
                f"16, {args.threads} torch threads, on a machine shared with other jobs): {ms}.",
            )
        print("cards updated")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

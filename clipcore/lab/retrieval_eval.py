"""Does crop reranking find small objects? A held-out study on the generated world.

``python -m clipcore.lab.retrieval_eval`` builds collections in which each query's
colour-shape pair appears exactly once — as one small object in a cluttered
scene — and never anywhere else, so a full-image score cannot find it by
accident. It prints Recall@1/5/10, MRR and the median rank of the target with
and without crop reranking, for tight and context crops, kept and masked
backgrounds, max and weighted fusion; and the best-score distributions of
in-domain and out-of-domain queries, from which the default ``min_score`` is
chosen.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import statistics
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image
from tqdm import tqdm

from clipcore.batching import Upload
from clipcore.clip_model import LoadedClip, load_clip
from clipcore.detector import load_detector
from clipcore.encode import embed_texts
from clipcore.ingest import CropSettings, PreparedImage, prepare_images
from clipcore.lab.world import render_scene, zero_shot_labels
from clipcore.metrics import mean
from clipcore.retrieval import CollectionIndex, evaluate_rankings, rankings
from clipcore.schemas import CropBackground, Fusion, RerankMode

OUT_OF_DOMAIN = [
    "a photo of a dog.",
    "a photo of a cat.",
    "an airplane in the sky.",
    "a car on a street.",
    "a bowl of soup.",
    "a portrait of a man.",
    "a city at night.",
    "a forest in autumn.",
]


@dataclass(frozen=True)
class HeldOutSet:
    images: list[Upload]
    labels: list[list[str]]  # per image: the query pair it holds, if any
    queries: list[str]
    relevant: list[list[str]]


def png_bytes(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def build_held_out(seed: int, scenes: int, size: int = 128) -> HeldOutSet:
    """Half the 30 colour-shape pairs are queries, each planted once, small, in clutter made
    only of the other half; every other scene is clutter of the other half too."""
    rng = np.random.default_rng(seed)
    pairs = zero_shot_labels()
    order = rng.permutation(len(pairs))
    queries = [pairs[i] for i in order[: len(pairs) // 2]]
    fillers = [pairs[i] for i in order[len(pairs) // 2 :]]
    images, labels = [], []
    for index in range(scenes):
        if index < len(queries):
            colour, shape = queries[index]
            picks = [fillers[i] for i in rng.choice(len(fillers), 4, replace=False)]
            scene = render_scene(
                rng,
                size,
                5,
                scale_range=(0.1, 0.2),
                colours=[colour, *(c for c, _ in picks)],
                shapes=[shape, *(s for _, s in picks)],
                captions=False,
            )
            label = [f"{colour} {shape}"]
        else:
            count = int(rng.integers(1, 7))
            picks = [fillers[i] for i in rng.choice(len(fillers), count)]
            scene = render_scene(
                rng,
                size,
                count,
                colours=[c for c, _ in picks],
                shapes=[s for _, s in picks],
                captions=False,
            )
            label = []
        data = png_bytes(scene.image)
        images.append(Upload(f"scene-{index:04d}.png", hashlib.sha256(data).hexdigest(), data))
        labels.append(label)
    permutation = rng.permutation(scenes)  # targets anywhere in the collection
    images = [images[i] for i in permutation]
    labels = [labels[i] for i in permutation]
    texts = [f"a photo of a {c} {s}." for c, s in queries]
    return HeldOutSet(images, labels, texts, [[f"{c} {s}"] for c, s in queries])


def build_index(prepared: Sequence[PreparedImage]) -> CollectionIndex:
    index = CollectionIndex()
    crops = [p.crop_embeddings for p in prepared if p.crop_embeddings.numel()]
    owners = [torch.full((len(p.regions),), row) for row, p in enumerate(prepared)]
    index.extend(
        [p.upload.sha256 for p in prepared],
        torch.stack([p.embedding for p in prepared]),
        torch.cat(crops) if crops else torch.empty(0, 0),
        torch.cat(owners).long() if owners else torch.empty(0, dtype=torch.long),
        version=1,
    )
    return index


def study(
    clip: LoadedClip,
    detector: torch.nn.Module,
    held_out: HeldOutSet,
    crops: CropSettings,
    fusions: Sequence[tuple[Fusion, float]],
    batch_size: int = 64,
) -> list[dict]:
    prepared = prepare_images(
        clip, detector, held_out.images, crops=crops, batch_size=batch_size, max_pixels=10**8
    )
    index = build_index(prepared)  # type: ignore[arg-type]
    queries = embed_texts(clip, held_out.queries)
    rows = []
    for mode, fusion, weight in [(RerankMode.none, Fusion.max, 0.5)] + [
        (RerankMode.crops, f, w) for f, w in fusions
    ]:
        ranked = rankings(index, queries, mode, index.size, fusion, weight)
        outcomes = evaluate_rankings(ranked, held_out.labels, held_out.relevant, [1, 5, 10])
        ranks = [o.rank or index.size for o in outcomes]
        rows.append(
            {
                "rerank": str(mode),
                "fusion": "-"
                if mode == RerankMode.none
                else f"{fusion}" + (f" {weight}" if fusion == Fusion.weighted else ""),
                "context": crops.context,
                "background": str(crops.background),
                **{f"R@{k}": mean([o.recall_at[str(k)] for o in outcomes]) for k in (1, 5, 10)},
                "MRR": mean([o.reciprocal_rank for o in outcomes]),
                "median rank": statistics.median(ranks),
            }
        )
    return rows


def best_scores(clip: LoadedClip, index: CollectionIndex, texts: Sequence[str]) -> list[float]:
    queries = embed_texts(clip, list(texts))
    return (queries @ index.images.T).max(dim=1).values.tolist()


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clip", default="embedded")
    parser.add_argument("--detector", default="embedded")
    parser.add_argument("--scenes", type=int, default=300)
    parser.add_argument("--seeds", default="7,8", help="one collection per seed")
    args = parser.parse_args(argv)
    clip = load_clip(args.clip, "cpu")
    detector = load_detector(args.detector, "cpu")
    variants = [
        CropSettings(8, 0.5, CropBackground.keep, 2.0),
        CropSettings(8, 0.5, CropBackground.keep, 1.0),
        CropSettings(8, 0.5, CropBackground.mask, 2.0),
    ]
    fusions = [(Fusion.max, 0.5), (Fusion.weighted, 0.5), (Fusion.weighted, 0.75)]
    table: dict[tuple, list[dict]] = {}
    in_domain, out_domain = [], []
    for seed in tqdm([int(s) for s in args.seeds.split(",")], desc="collections"):
        held_out = build_held_out(seed, args.scenes)
        for crops in variants:
            for row in study(clip, detector, held_out, crops, fusions):
                key = (row["rerank"], row["fusion"], row["context"], row["background"])
                table.setdefault(key, []).append(row)
        prepared = prepare_images(
            clip, detector, held_out.images, crops=CropSettings(0), batch_size=64, max_pixels=10**8
        )
        index = build_index(prepared)  # type: ignore[arg-type]
        in_domain += best_scores(clip, index, held_out.queries)
        out_domain += best_scores(clip, index, OUT_OF_DOMAIN)
    print(f"{len(args.seeds.split(','))} collections of {args.scenes} scenes, 15 queries each")
    header = [
        "rerank",
        "fusion",
        "context",
        "background",
        "R@1",
        "R@5",
        "R@10",
        "MRR",
        "median rank",
    ]
    print(" | ".join(header))
    for key, rows in table.items():
        if key[0] == "none" and key[2:] != (2.0, "keep"):
            continue  # without reranking the crop settings do not matter
        numbers = [statistics.mean(r[h] for r in rows) for h in header[4:]]
        print(
            " | ".join([*map(str, key), *(f"{n:.3f}" for n in numbers[:-1]), f"{numbers[-1]:.1f}"])
        )
    print(
        "best score, in-domain queries: "
        f"min {min(in_domain):.3f} median {statistics.median(in_domain):.3f}; "
        f"out-of-domain: median {statistics.median(out_domain):.3f} max {max(out_domain):.3f}"
    )
    for threshold in (0.4, 0.45, 0.5, 0.55):
        kept = mean([s >= threshold for s in in_domain])
        refused = mean([s < threshold for s in out_domain])
        print(
            f"min_score {threshold}: keeps {kept:.0%} of in-domain queries, "
            f"answers no match to {refused:.0%} of out-of-domain ones"
        )


if __name__ == "__main__":
    main()

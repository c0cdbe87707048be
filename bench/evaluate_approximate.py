"""Benchmark: Recall@K and MRR of the evaluation job, exact against approximate.

    python -m bench.evaluate_approximate [--images 3000] [--renderer alt]

The embedded model embeds scenes drawn by a renderer it was not trained on (``alt``:
different code, the same world), each image labelled with the "colour shape" of its
objects. Two sets of queries: one per label ("a photo of a red circle", every image with
one relevant), and 500 scenes' own captions (only that scene relevant: a ranking off by a
place shows). The same embeddings go into a
collection index twice — exact (an fp32 scan) and approximate (the FAISS index a collection
past ``CLIPQ_INDEX_EXACT_BELOW`` gets, forced here with a cross-over of 256; and once more
visiting 1/32 of its lists, as a 1 M-image collection's search does) — and
``clipcore.retrieval.rankings`` + ``evaluate_rankings``, what the evaluate job runs, score
both. Without crops: imported and most large collections have none.
"""

from __future__ import annotations

import argparse

import torch

from bench.common import machine, table
from clipcore import retrieval
from clipcore.clip_model import load_clip
from clipcore.encode import embed_texts
from clipcore.lab import evaluate as lab
from clipcore.metrics import mean
from clipcore.retrieval import CollectionIndex
from clipcore.schemas import RerankMode
from clipcore.vector_index import IndexPolicy

KS = (1, 5, 10)


def main(images: int, renderer: str) -> dict[str, dict[str, dict[str, float]]]:
    """{query set: {index: metrics}}: one query per "colour shape" label (every image
    carrying it relevant), and each of 500 scenes' caption (only that scene relevant)."""
    torch.set_num_threads(2)
    clip = load_clip("embedded", device="cpu")
    scenes = lab.scene_set(renderer, seed=777, count=images)
    vectors = lab.embed_images_in_chunks(clip, [s.image for s in scenes])
    labels = [sorted({f"{o.colour} {o.shape}" for o in s.objects}) for s in scenes]
    names = sorted({label for row in labels for label in row})
    query_sets = {
        "labels": (
            [f"a photo of a {name}" for name in names],
            labels,
            [[name] for name in names],
        ),
        "captions": (
            [s.captions[0] for s in scenes[:500]],
            [[f"scene {row}"] for row in range(len(scenes))],
            [[f"scene {row}"] for row in range(500)],
        ),
    }
    ids = [f"{row:024d}" for row in range(len(scenes))]
    results: dict[str, dict[str, dict[str, float]]] = {name: {} for name in query_sets}
    for name, policy in (
        ("exact", IndexPolicy(exact_below=10**9)),
        ("approximate", IndexPolicy(exact_below=256)),
        # 2 of its 64 lists: the share of lists a 1 M-image collection's search visits
        ("approximate, 1/32 of lists", IndexPolicy(exact_below=256, nprobe=2)),
    ):
        index = CollectionIndex(policy=policy)
        empty = torch.empty(0, vectors.shape[1])
        index.extend(ids, vectors, empty, torch.empty(0, dtype=torch.long), 1)
        assert index.approximate == (name != "exact")
        for set_name, (texts, row_labels, relevant) in query_sets.items():
            queries = embed_texts(clip, texts)
            ranked = retrieval.rankings(index, queries, RerankMode.none, index.size)
            outcomes = retrieval.evaluate_rankings(ranked, row_labels, relevant, KS)
            results[set_name][name] = {
                **{f"R@{k}": mean([o.recall_at[str(k)] for o in outcomes]) for k in KS},
                "MRR": mean([o.reciprocal_rank for o in outcomes]),
            }
    return results


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--images", type=int, default=3000)
    parser.add_argument("--renderer", default="alt", choices=["main", "alt", "third"])
    args = parser.parse_args()
    print(machine())
    columns = [f"R@{k}" for k in KS] + ["MRR"]
    for set_name, found in main(args.images, args.renderer).items():
        rows = [[name, *(metrics[c] for c in columns)] for name, metrics in found.items()]
        for name in [n for n in found if n != "exact"]:
            rows.append([f"{name} - exact", *(found[name][c] - found["exact"][c] for c in columns)])
        print(f"\n== {set_name} as queries: {args.images:,} images drawn by '{args.renderer}' ==")
        print(table(rows, ["index", *columns]))

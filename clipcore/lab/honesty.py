"""Does the model say "no match" and "out of domain" when it should? Held-out studies.

``python -m clipcore.lab.honesty --model DIR`` measures, on collections drawn by renderers
other than the training one (``world_alt``, ``world_third``) and held-out seeds of the
training one, mixing one-object images and cluttered scenes:

- **no match**: off-topic queries (other domains, other objects, unknown colours and
  shapes, nonsense; none of their words is in the training distractors of
  ``clipcore.lab.train.distractors``) should be refused; in-domain queries that describe
  an image of the collection should be answered with a right image first. Each decision
  method is printed as a curve over its parameter;
- **out of domain**: the share of rendered shapes (every renderer, with the nuisances of
  ``clipcore.lab.nuisance``) and of real photographs (``clipcore.lab.photos``) that the
  model's domain reference flags.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from clipcore.batching import Upload
from clipcore.clip_model import LoadedClip, load_clip
from clipcore.detector import load_detector
from clipcore.encode import embed_images, embed_texts
from clipcore.ingest import CropSettings, prepare_images
from clipcore.lab import nuisance, world
from clipcore.lab.evaluate import renderer_module
from clipcore.lab.photos import photographs
from clipcore.lab.retrieval_eval import build_index, png_bytes
from clipcore.retrieval import CollectionIndex, collection_nulls, score_images
from clipcore.schemas import CropBackground, RerankMode
from clipcore.search_decision import DEFAULT_Z, MatchDecision, NullScores, null_prompts

OFF_TOPIC = (
    # other domains
    "quarterly tax report",
    "a bowl of ramen",
    "the eiffel tower at sunset",
    "a man riding a skateboard",
    "wedding photos",
    "a spreadsheet of sales figures",
    "an old lighthouse",
    "two zebras grazing",
    "a plate of sushi",
    "a crowded subway platform",
    "firefighters at work",
    "a snowy cabin",
    # other objects
    "a ceramic vase",
    "a leather wallet",
    "an umbrella",
    "a pair of scissors",
    "a tennis racket",
    "a toothbrush",
    # unknown colours, unknown shapes
    "a turquoise circle",
    "a grey triangle",
    "a lime star",
    "a maroon square",
    "a golden cross",
    "a silver circle",
    "an octagon",
    "a blue trapezoid",
    "a yellow teardrop",
    "a green lightning bolt",
    "a purple parallelogram",
    "a red octagon",
    # nonsense
    "zxqv plomb",
    "asdf qwer",
    "lorem ipsum dolor",
    "hhhhh",
    "blorptangle",
    "qqq www eee",
    "1234 5678",
    "!!!???",
)


@dataclass
class Collection:
    renderer: str
    index: CollectionIndex
    scenes: list[world.Scene]
    queries: list[str]  # in-domain queries, each describing at least one scene
    claims: list[world.Claim]
    kinds: list[str]


def build_collection(
    clip: LoadedClip, detector, renderer: str, seed: int, size: int = 60
) -> Collection:
    """A third one-object images, the rest 2-6 object scenes; in-domain queries from them.

    With a ``detector`` the collection is ingested as the service does (region crops).
    """
    module = renderer_module(renderer)
    rng = np.random.default_rng([50_000, seed])
    singles = size // 3
    scenes = [
        module.render_scene(rng, size=128, n_objects=1, scale_range=(0.15, 0.7))
        for _ in range(singles)
    ] + [
        module.render_scene(rng, size=128, n_objects=int(rng.integers(2, 7)))
        for _ in range(size - singles)
    ]
    queries, claims, kinds = [], [], []
    for index in rng.choice(len(scenes), 12, replace=False):
        scene = scenes[int(index)]
        if len(scene.objects) == 1:
            pick, kind = 0, "one object"
        else:
            partial = [i for i, c in enumerate(scene.claims) if not c.exhaustive]
            pick, kind = (int(rng.choice(partial)), "partial") if partial else (0, "listing")
            if rng.random() < 0.3:
                pick, kind = 0, "listing"
        queries.append(scene.captions[pick])
        claims.append(scene.claims[pick])
        kinds.append(kind)
    if detector is None:
        index = CollectionIndex()
        embeddings = embed_images(clip, [s.image for s in scenes])
        no_crops = torch.empty(0, 0)
        index.extend([str(i) for i in range(size)], embeddings, no_crops, torch.empty(0), 1)
    else:
        uploads = [Upload(f"{i}.png", str(i), png_bytes(s.image)) for i, s in enumerate(scenes)]
        crops = CropSettings(8, 0.5, CropBackground.keep, 2.0)
        prepared = prepare_images(
            clip, detector, uploads, crops=crops, batch_size=32, max_pixels=10**8
        )
        index = build_index(prepared)  # type: ignore[arg-type]
    return Collection(renderer, index, scenes, queries, claims, kinds)


def no_match_study(
    clip: LoadedClip, collections: Sequence[Collection], rerank: RerankMode
) -> list[dict]:
    """Per query: its best score, the collection's null statistics, whether top-1 is right."""
    off = embed_texts(clip, list(OFF_TOPIC))
    nulls = embed_texts(clip, list(null_prompts()))
    rows = []
    for collection in collections:
        statistics = collection_nulls(collection.index, nulls, rerank)
        inside = embed_texts(clip, collection.queries)
        for kind, texts, matrix in (("in", collection.queries, inside), ("off", OFF_TOPIC, off)):
            scores, *_ = score_images(collection.index, matrix, rerank)
            best, top = scores.max(dim=1)
            for j, text in enumerate(texts):
                row = {
                    "kind": kind,
                    "query": text,
                    "renderer": collection.renderer,
                    "best": float(best[j]),
                    "null_mean": statistics.mean,
                    "null_std": statistics.std,
                }
                if kind == "in":
                    scene = collection.scenes[int(top[j])]
                    row["right"] = scene.describes(collection.claims[j])
                    row["query_kind"] = collection.kinds[j]
                rows.append(row)
    return rows


def _nulls(row: dict) -> NullScores:
    return NullScores(row["null_mean"], row["null_std"])


def curves(rows: list[dict], parameters: Sequence[float]) -> list[dict]:
    """For each parameter: off-topic refused, in-domain answered right first."""
    inside = [r for r in rows if r["kind"] == "in"]
    off = [r for r in rows if r["kind"] == "off"]
    out = []
    for z in parameters:
        decision = MatchDecision(z)
        answered = [r for r in inside if decision.is_match(r["best"], _nulls(r))]
        refused = [r for r in off if not decision.is_match(r["best"], _nulls(r))]
        out.append(
            {
                "z": z,
                "off_topic_refused": len(refused) / len(off),
                "in_domain_answered_right": sum(r["right"] for r in answered) / len(inside),
                "in_domain_answered": len(answered) / len(inside),
            }
        )
    return out


def fixed_curves(rows: list[dict], thresholds: Sequence[float]) -> list[dict]:
    inside = [r for r in rows if r["kind"] == "in"]
    off = [r for r in rows if r["kind"] == "off"]
    return [
        {
            "min_score": t,
            "off_topic_refused": sum(r["best"] < t for r in off) / len(off),
            "in_domain_answered_right": sum(r["right"] and r["best"] >= t for r in inside)
            / len(inside),
        }
        for t in thresholds
    ]


def domain_study(clip: LoadedClip, count: int = 300) -> dict:
    """Share flagged out of domain: rendered shapes per renderer and nuisance, photographs."""
    if clip.domain is None:
        raise SystemExit(
            f"{clip.model_id} has no domain reference (python -m clipcore.lab.reference)"
        )
    flagged: dict[str, float] = {}
    for renderer in ("main", "alt", "third"):
        module = renderer_module(renderer)
        rng = np.random.default_rng([60_000, len(renderer)])
        clean = [module.render_scene(rng, size=128).image for _ in range(count)]
        noisy = [nuisance.random_nuisances(image, rng, 0.5) for image in clean]
        for name, images in (("clean", clean), ("nuisances", noisy)):
            checks = clip.domain.check(embed_images(clip, images))
            flagged[f"shapes {renderer} {name}"] = sum(not c.in_domain for c in checks) / count
    views = photographs(crops=10)
    checks = clip.domain.check(embed_images(clip, [image for _, image in views]))
    flagged["photographs"] = sum(not c.in_domain for c in checks) / len(views)
    flagged["photographs (whole)"] = sum(
        not c.in_domain for (name, _), c in zip(views, checks, strict=True) if "-crop" not in name
    ) / sum("-crop" not in name for name, _ in views)
    return flagged


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m clipcore.lab.honesty", description=__doc__)
    parser.add_argument("--model", default="embedded")
    parser.add_argument("--collections", type=int, default=12)
    parser.add_argument("--renderers", default="main,alt,third")
    parser.add_argument("--rerank", choices=["none", "crops"], default="none")
    parser.add_argument("--detector", default="embedded", help="for --rerank crops")
    parser.add_argument("--json", type=Path, default=None, help="write every figure here")
    args = parser.parse_args(argv)
    torch.manual_seed(0)
    clip = load_clip(args.model, "cpu")
    rerank = RerankMode(args.rerank)
    detector = load_detector(args.detector, "cpu") if rerank == RerankMode.crops else None
    renderers = args.renderers.split(",")
    collections = [
        build_collection(clip, detector, renderers[i % len(renderers)], i)
        for i in range(args.collections)
    ]
    rows = no_match_study(clip, collections, rerank)
    z_curve = curves(rows, [0.0, 1.0, 2.0, 2.5, 3.0, 3.5, 4.0, 5.0, 6.0])
    fixed = fixed_curves(rows, [0.3, 0.35, 0.4, 0.45, 0.5, 0.55, 0.6])
    print(
        f"{len(collections)} collections ({', '.join(renderers)}), {len(rows)} queries, "
        f"rerank {rerank}"
    )
    print("calibrated (z over the collection's null scores):")
    for c in z_curve:
        print(
            f"  z {c['z']:>4}: off-topic refused {c['off_topic_refused']:.3f}, in-domain "
            f"answered with a right image first {c['in_domain_answered_right']:.3f} "
            f"(answered {c['in_domain_answered']:.3f})"
            + ("  <- the default" if c["z"] == DEFAULT_Z else "")
        )
    print("fixed min_score:")
    for c in fixed:
        print(
            f"  {c['min_score']}: off-topic refused {c['off_topic_refused']:.3f}, in-domain "
            f"answered right {c['in_domain_answered_right']:.3f}"
        )
    right = [r["right"] for r in rows if r["kind"] == "in"]
    print(f"in-domain queries with a right image first, undecided: {np.mean(right):.3f}")
    for kind in ("one object", "partial", "listing"):
        some = [r["right"] for r in rows if r.get("query_kind") == kind]
        print(f"  {kind}: {np.mean(some):.3f} of {len(some)}")
    domain = domain_study(clip) if clip.domain is not None else {}
    for name, share in domain.items():
        print(f"flagged out of domain: {name}: {share:.3f}")
    if args.json:
        args.json.write_text(
            json.dumps({"z": z_curve, "fixed": fixed, "domain": domain, "rows": rows}, indent=1)
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""``python -m clipcore.lab.train clip|detector [--seed N] [--steps N] [--minutes M] [--out DIR]``.

Reproduces the embedded models from a seed and writes the model folder (with its card).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from clipcore.models import EMBEDDED_CLIP_DIR, EMBEDDED_DETECTOR_DIR


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m clipcore.lab.train", description=__doc__)
    sub = p.add_subparsers(dest="what", required=True)
    for name, default_out in (("clip", EMBEDDED_CLIP_DIR), ("detector", EMBEDDED_DETECTOR_DIR)):
        s = sub.add_parser(name, help=f"train the embedded {name}")
        s.add_argument("--seed", type=int, default=0)
        s.add_argument("--steps", type=int, default=None, help="training steps (schedule length)")
        s.add_argument(
            "--minutes",
            type=float,
            default=None,
            help="stop after this many minutes (saving the best checkpoint)",
        )
        s.add_argument("--out", type=Path, default=default_out)
        s.add_argument("--threads", type=int, default=2)
        s.add_argument("--batch-size", type=int, default=None)
        s.add_argument("--eval-every", type=int, default=None)
        s.add_argument(
            "--set",
            action="append",
            default=[],
            metavar="KEY=VALUE",
            help="override a recipe field (repeatable), e.g. --set aux_weight=0",
        )
    args = p.parse_args(argv)

    if args.what == "clip":
        from clipcore.lab.train.clip import ClipRecipe as Recipe
        from clipcore.lab.train.clip import train_clip as train
        from clipcore.lab.train.clip import write_card as card
    else:
        from clipcore.lab.train.detector import DetectorRecipe as Recipe
        from clipcore.lab.train.detector import train_detector as train
        from clipcore.lab.train.detector import write_card as card

    recipe = Recipe(seed=args.seed)
    if args.steps is not None:
        recipe.steps = args.steps
    if args.batch_size is not None:
        recipe.batch_size = args.batch_size
    if args.eval_every is not None:
        recipe.eval_every = args.eval_every
    for kv in args.set:
        key, _, value = kv.partition("=")
        if not hasattr(recipe, key):
            p.error(f"unknown recipe field {key!r}")
        kind = type(getattr(recipe, key))
        if kind in (int, float):
            setattr(recipe, key, kind(float(value)))
        elif kind is tuple:
            setattr(recipe, key, tuple(float(x) for x in value.split(",")))
        else:
            setattr(recipe, key, kind(value))
    info = train(recipe, args.out, minutes=args.minutes, threads=args.threads)
    card(
        args.out, info, command=" ".join(["python -m clipcore.lab.train", *(argv or sys.argv[1:])])
    )
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

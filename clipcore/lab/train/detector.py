"""Train the embedded tiny Mask R-CNN (class-agnostic proposals) on generated cluttered scenes."""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from clipcore.detector import DEFAULT_CONFIG, _to_tensor, build_tiny_maskrcnn, save_tiny_detector
from clipcore.lab import world
from clipcore.lab.train.clip import keep_best, prefetch, render_card, run_info


@dataclass
class DetectorRecipe:
    seed: int = 0
    steps: int = 1500
    batch_size: int = 8
    image_size: int = 128
    lr: float = 2e-3
    weight_decay: float = 1e-4
    warmup_steps: int = 100
    eval_every: int = 250
    eval_count: int = 60


def scene_target(scene: world.Scene) -> dict:
    objs = [
        o
        for o in scene.objects
        if o.mask.any() and o.box[2] - o.box[0] >= 1 and o.box[3] - o.box[1] >= 1
    ]
    if not objs:
        return {
            "boxes": torch.zeros((0, 4)),
            "labels": torch.zeros((0,), dtype=torch.int64),
            "masks": torch.zeros((0, *scene.image.size[::-1]), dtype=torch.uint8),
        }
    return {
        "boxes": torch.tensor([o.box for o in objs], dtype=torch.float32),
        "labels": torch.ones(len(objs), dtype=torch.int64),
        "masks": torch.from_numpy(np.stack([o.mask for o in objs]).astype(np.uint8)),
    }


class SceneBatches:
    def __init__(self, recipe: DetectorRecipe):
        self.r = recipe
        self.rng = np.random.default_rng([recipe.seed, 2])

    def sample(self, step: int):
        scenes = [
            world.render_scene(self.rng, size=self.r.image_size, captions=False)
            for _ in range(self.r.batch_size)
        ]
        return [_to_tensor(s.image) for s in scenes], [scene_target(s) for s in scenes]


def train_detector(
    recipe: DetectorRecipe, out: Path, minutes: float | None = None, threads: int = 2, log=print
) -> dict:
    from tqdm import tqdm

    from clipcore.lab.evaluate import detector_metrics

    torch.set_num_threads(threads)
    torch.manual_seed(recipe.seed)
    t0 = time.time()
    config = dict(DEFAULT_CONFIG)
    model = build_tiny_maskrcnn(config)
    n_params = sum(p.numel() for p in model.parameters())
    log(f"Mask R-CNN parameters: {n_params / 1e6:.2f} M")
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=recipe.lr, weight_decay=recipe.weight_decay)

    def lr_at(step: int) -> float:
        if step < recipe.warmup_steps:
            return recipe.lr * (step + 1) / recipe.warmup_steps
        prog = (step - recipe.warmup_steps) / max(1, recipe.steps - recipe.warmup_steps)
        return recipe.lr * (0.02 + 0.98 * 0.5 * (1 + math.cos(math.pi * min(prog, 1.0))))

    held_out = world.generate_scenes(20_011, recipe.eval_count, size=recipe.image_size)
    history: list[dict] = []
    info: dict = {}
    best = -1.0
    model.train()
    bar = tqdm(total=recipe.steps, desc="detector", mininterval=5.0)
    for step, (images, targets) in prefetch(SceneBatches(recipe).sample, range(recipe.steps)):
        for g in opt.param_groups:
            g["lr"] = lr_at(step)
        losses = model(images, targets)
        loss = sum(losses.values())
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 5.0)
        opt.step()
        bar.update(1)
        bar.set_postfix(loss=f"{loss.item():.3f}", refresh=False)
        elapsed = (time.time() - t0) / 60
        last = step == recipe.steps - 1 or (minutes is not None and elapsed >= minutes)
        if (step + 1) % recipe.eval_every == 0 or last:
            m = detector_metrics(model, held_out, top_n=10)
            model.train()
            rec = {
                "step": step + 1,
                "minutes": round(elapsed, 2),
                "loss": round(loss.item(), 4),
                "recall@10": round(m["recall"], 4),
                "mask_iou": round(m["mask_iou"], 4),
            }
            history.append(rec)
            log(f"eval {json.dumps(rec)}")
            info = run_info(recipe, n_params, step, elapsed, threads, history)
            best = keep_best(
                out,
                info,
                m["recall"] + m["mask_iou"],
                best,
                lambda _info: save_tiny_detector(model, config, out),
            )
        if last:
            break
    bar.close()
    return info


def write_card(out: Path, info: dict, command: str = "") -> None:
    r = info.get("recipe", {})
    c = DEFAULT_CONFIG
    lines = [
        "# maskrcnn-tiny: clipq's embedded object-proposal model",
        "",
        "A torchvision `MaskRCNN` with a small backbone and small heads, trained from scratch",
        "by clipq's own script on cluttered scenes of `clipcore.lab.world` (1-6 coloured shapes,",
        "7-70 % of the side, little overlap). Class-agnostic: it proposes objects (box, score,",
        "mask); naming them is CLIP's job. Default when `CLIPQ_DETECTOR_MODEL` is unset.",
        "",
        'Load: `clipcore.detector.load_detector("embedded")` (builds the architecture from',
        "`config.json` with `build_tiny_maskrcnn`, then loads `model.safetensors`).",
        "",
        "## Recipe",
        "",
        f"- Backbone: {len(c['backbone_channels'])} conv 3x3 + BatchNorm + ReLU layers, channels "
        f"{c['backbone_channels']}, strides {c['backbone_strides']} (one feature map at stride "
        "8); anchors "
        + ", ".join(map(str, c["anchor_sizes"]))
        + " px, ratios "
        + ", ".join(map(str, c["aspect_ratios"]))
        + f"; `TwoMLPHead(64*49, "
        f"{c['box_representation']})`; `MaskRCNNHeads(64, {c['mask_layers']}, 1)`; 2 classes "
        f"(background, object); {info.get('parameters', 0) / 1e6:.2f} M parameters.",
        f"- Input: images are resized to a shortest side of {c['min_size']} px (longest at most "
        f"{c['max_size']}); normalised with mean {c['image_mean']}, std {c['image_std']}.",
        f"- Data: {r.get('image_size')} px scenes of 1-6 objects from `clipcore.lab.world`, boxes "
        "and visible masks from the generator.",
        f"- Optimiser: AdamW lr {r.get('lr')}, weight decay {r.get('weight_decay')}, "
        f"{r.get('warmup_steps')} warm-up steps, cosine; batch {r.get('batch_size')}; "
        f"{r.get('steps')}-step schedule; shipped checkpoint: step {info.get('checkpoint_step')} "
        f"of {info.get('steps_done')} run.",
        f"- Seed {r.get('seed')}. Training time: {info.get('train_minutes')} min on a 2-core "
        f"CPU (AMD EPYC, {info.get('threads')} torch threads), no GPU; torch {info.get('torch')}.",
        "- Note: torchvision hides detections under `box_score_thresh`; it is 0 here so that",
        "  callers choose their own threshold (`propose_regions(..., score_threshold=...)`).",
        "",
        f"Reproduce: `{command or 'python -m clipcore.lab.train detector'}`",
    ]
    render_card(out, lines, info)

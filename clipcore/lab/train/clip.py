"""Train the embedded tiny CLIP on the generated world.

Recipe (see ``ClipRecipe``): a ``transformers`` ``CLIPModel`` from a small ``CLIPConfig``
(ViT 48 px / patch 6 from scratch, hidden 128 x 4 layers; text hidden 128 x 4 layers;
projection 128), trained with

- multi-positive InfoNCE: a caption is a positive for every image in the batch that it
  correctly describes (``clipcore.lab.world.claim_holds``), in both directions;
- an auxiliary multi-label loss on the vision tower's pooled output (which of the 30
  colour x shape kinds are in the image), from a linear head that is thrown away — it gives
  the vision tower a direct signal for shape, which contrastive learning alone finds slowly;
  optionally (``aux_ce_weight``) also a 30-way cross-entropy of that head on one-object images,
  the sharpest shape signal;
- a curriculum: at first every sample is "easy" (one medium or large object, caption
  "a photo of a {colour} {shape}"); the easy share falls linearly to a floor, the rest being
  the full world (1-6 objects of any size, all caption kinds);
- images rendered at the input size, or at a larger size and resized to it like the
  processor does, so the model sees both renderings.

A later stage may continue from a saved model at another input size
(``--set image_size=96 --set patch_size=12``): ``resize_vision_input`` resizes the patch
kernel (FlexiViT's pseudo-inverse resize) and the position table, so training resumes from
what the model knew.

The output folder loads with ``CLIPModel.from_pretrained`` / ``CLIPProcessor.from_pretrained``.
"""

from __future__ import annotations

import json
import math
import queue
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from clipcore.lab import nuisance, world
from clipcore.lab.train import distractors
from clipcore.lab.train.tokenizer import caption_corpus, train_tokenizer

SMALL_SCALES = (world.MIN_SCALE, 0.22)
DEFAULT_IMAGE_SIZE, DEFAULT_PATCH_SIZE = 48, 6
IMAGE_MEAN = [0.5, 0.5, 0.5]
IMAGE_STD = [0.5, 0.5, 0.5]
COLOUR_INDEX = {c: i for i, c in enumerate(world.COLOURS)}
SHAPE_INDEX = {s: i for i, s in enumerate(world.SHAPES)}
SIZE_INDEX = {None: 0, "small": 1, "large": 2}
H_INDEX = {None: 0, "left": 1, "right": 2, "center": 3}
V_INDEX = {None: 0, "top": 1, "bottom": 2, "center": 3}


@dataclass
class ClipRecipe:
    seed: int = 0
    steps: int = 3000
    batch_size: int = 128
    # 0: 48 px / patch 6 from scratch, the model's own when continuing (init_from); a stage
    # that sets them continues at that size (resize_vision_input)
    image_size: int = 0
    patch_size: int = 0
    vision_hidden: int = 128
    vision_layers: int = 4
    text_hidden: int = 128
    text_layers: int = 4
    heads: int = 4
    projection_dim: int = 128
    max_text_length: int = 64
    lr: float = 1e-3
    weight_decay: float = 0.05
    warmup_steps: int = 100
    aux_weight: float = 1.0
    # extra 30-way cross-entropy on the aux head for one-object images: a sharper shape signal
    aux_ce_weight: float = 0.0
    curriculum_steps: int = 800
    easy_floor: float = 0.35
    easy_scale: tuple = (0.25, 0.7)
    direct_render_p: float = 0.5
    # share of easy samples centred exactly on a corner of the ViT patch grid, where random
    # placement almost never lands and the model was weaker
    grid_centre_p: float = 0.0
    # robustness (stage 5): images sent at 49-72 px, drawn without antialiasing, tinted
    # backgrounds, camera nuisances (clipcore.lab.nuisance), and distractor texts and images
    # that match nothing (clipcore.lab.train.distractors)
    near_size_p: float = 0.0
    aliased_p: float = 0.0
    tint_p: float = 0.0
    nuisance_p: float = 0.0
    negative_texts: int = 0
    negative_images: int = 0
    # stage 6: one-object images with small objects (7-22 % of the side), and an extra hard
    # JPEG round trip (quality 10-25) on top of the nuisances
    small_p: float = 0.0
    jpeg_p: float = 0.0
    eval_every: int = 250
    eval_count: int = 300
    # continue from a saved model folder (a second stage: its tokenizer, processor and weights)
    init_from: str = ""
    extra: dict = field(default_factory=dict)


# ----------------------------------------------------------------------------- model


def build_clip(recipe: ClipRecipe, tokenizer):
    from transformers import CLIPConfig, CLIPModel

    text = dict(
        vocab_size=len(tokenizer),
        hidden_size=recipe.text_hidden,
        intermediate_size=4 * recipe.text_hidden,
        num_hidden_layers=recipe.text_layers,
        num_attention_heads=recipe.heads,
        max_position_embeddings=recipe.max_text_length,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        projection_dim=recipe.projection_dim,
    )
    vision = dict(
        hidden_size=recipe.vision_hidden,
        intermediate_size=4 * recipe.vision_hidden,
        num_hidden_layers=recipe.vision_layers,
        num_attention_heads=recipe.heads,
        image_size=recipe.image_size or DEFAULT_IMAGE_SIZE,
        patch_size=recipe.patch_size or DEFAULT_PATCH_SIZE,
        projection_dim=recipe.projection_dim,
    )
    config = CLIPConfig(
        text_config=text, vision_config=vision, projection_dim=recipe.projection_dim
    )
    assert config.text_config.eos_token_id == tokenizer.eos_token_id != 2
    return CLIPModel(config)


def resize_patch_kernel(kernel: torch.Tensor, patch_size: int) -> torch.Tensor:
    """FlexiViT's pseudo-inverse resize of a patch-embedding kernel (out, in, p, p).

    The new kernel sees a patch upsampled by bilinear interpolation as the old one saw the
    original: ``<resize(x), new> == <x, old>`` (exactly when growing), so the resized model
    starts where the old one was, on the same images sent larger.
    """
    old = kernel.shape[-1]
    basis = torch.eye(old * old).reshape(old * old, 1, old, old)
    grown = F.interpolate(basis, size=(patch_size, patch_size), mode="bilinear")
    resize = grown.reshape(old * old, patch_size * patch_size)  # x_old @ resize = x_new
    flat = kernel.reshape(-1, old * old)
    new = flat @ torch.linalg.pinv(resize).T
    return new.reshape(*kernel.shape[:2], patch_size, patch_size)


def resize_vision_input(model, image_size: int, patch_size: int) -> None:
    """Give a trained CLIP a new input size and patch size in place (kernel and positions)."""
    emb = model.vision_model.embeddings
    vc = model.config.vision_config
    old_grid, grid = vc.image_size // vc.patch_size, image_size // patch_size
    conv = emb.patch_embedding
    new_conv = torch.nn.Conv2d(
        conv.in_channels, conv.out_channels, patch_size, stride=patch_size, bias=False
    )
    with torch.no_grad():
        new_conv.weight.copy_(resize_patch_kernel(conv.weight, patch_size))
    emb.patch_embedding = new_conv
    if grid != old_grid:
        pos = emb.position_embedding.weight.detach()
        cls, patches = pos[:1], pos[1:].reshape(1, old_grid, old_grid, -1).permute(0, 3, 1, 2)
        patches = F.interpolate(patches, size=(grid, grid), mode="bicubic", align_corners=False)
        table = torch.cat([cls, patches.permute(0, 2, 3, 1).reshape(grid * grid, -1)])
        emb.position_embedding = torch.nn.Embedding.from_pretrained(table, freeze=False)
        emb.register_buffer("position_ids", torch.arange(grid * grid + 1)[None], persistent=False)
    emb.image_size, emb.patch_size = image_size, patch_size
    emb.num_patches = grid * grid
    emb.num_positions = grid * grid + 1
    vc.image_size, vc.patch_size = image_size, patch_size


def build_processor(tokenizer, image_size: int):
    from transformers import CLIPImageProcessor, CLIPProcessor

    image_processor = CLIPImageProcessor(
        size={"shortest_edge": image_size},
        crop_size={"height": image_size, "width": image_size},
        image_mean=IMAGE_MEAN,
        image_std=IMAGE_STD,
        do_convert_rgb=True,
    )
    return CLIPProcessor(image_processor=image_processor, tokenizer=tokenizer)


# ----------------------------------------------------------------------------- data


def to_tensor(images: list[Image.Image]) -> torch.Tensor:
    arr = np.stack([np.asarray(im, dtype=np.float32) for im in images]) / 255.0
    t = torch.from_numpy(arr).permute(0, 3, 1, 2)
    mean = torch.tensor(IMAGE_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(IMAGE_STD).view(1, 3, 1, 1)
    return (t - mean) / std


class ObjectTable:
    """The objects of a batch of scenes as arrays, to check many claims at once."""

    def __init__(self, scenes_objects: list[list[world.WorldObject]]):
        rows = [
            (
                i,
                COLOUR_INDEX[o.colour],
                SHAPE_INDEX[o.shape],
                SIZE_INDEX[o.size_word],
                H_INDEX[o.position[0]],
                V_INDEX[o.position[1]],
            )
            for i, objs in enumerate(scenes_objects)
            for o in objs
        ]
        a = np.array(rows, dtype=np.int64).reshape(-1, 6)
        self.n_images = len(scenes_objects)
        self.image, self.colour, self.shape, self.size, self.h, self.v = a.T
        self.totals = np.bincount(self.image, minlength=self.n_images)

    def holds(self, claim: world.Claim) -> np.ndarray:
        ok = np.ones(self.n_images, bool)
        total = 0
        for item in claim.items:
            m = np.ones(len(self.image), bool)
            if item.colour is not None:
                m &= self.colour == COLOUR_INDEX[item.colour]
            if item.shape is not None:
                m &= self.shape == SHAPE_INDEX[item.shape]
            if item.size is not None:
                m &= self.size == SIZE_INDEX[item.size]
            if item.horizontal is not None:
                m &= self.h == H_INDEX[item.horizontal]
            if item.vertical is not None:
                m &= self.v == V_INDEX[item.vertical]
            n = np.bincount(self.image[m], minlength=self.n_images)
            ok &= n == item.count if (item.exact or claim.exhaustive) else n >= item.count
            total += item.count
        if claim.exhaustive:
            ok &= self.totals == total
        return ok


def positives(claims: list[world.Claim], objects: list[list[world.WorldObject]]) -> np.ndarray:
    """M[i, j]: caption j correctly describes image i."""
    table = ObjectTable(objects)
    cache: dict[world.Claim, np.ndarray] = {}
    cols = []
    for c in claims:
        if c not in cache:
            cache[c] = table.holds(c)
        cols.append(cache[c])
    m = np.stack(cols, 1)
    m[np.arange(len(claims)), np.arange(len(claims))] = True
    return m


def presence(objects: list[list[world.WorldObject]]) -> torch.Tensor:
    y = torch.zeros(len(objects), len(world.COLOURS) * len(world.SHAPES))
    for i, objs in enumerate(objects):
        for o in objs:
            y[i, COLOUR_INDEX[o.colour] * len(world.SHAPES) + SHAPE_INDEX[o.shape]] = 1
    return y


class BatchMaker:
    """Deterministic stream of training batches (curriculum included)."""

    def __init__(self, recipe: ClipRecipe):
        self.r = recipe
        self.rng = np.random.default_rng([recipe.seed, 1])

    def easy_share(self, step: int) -> float:
        r = self.r
        if r.curriculum_steps <= 0:
            return r.easy_floor
        return max(r.easy_floor, 1.0 - (1.0 - r.easy_floor) * step / r.curriculum_steps)

    def grid_centred(self, size: int, **kw) -> world.Scene:
        r, rng = self.r, self.rng
        scale = float(rng.uniform(*r.easy_scale))
        corners = r.image_size // r.patch_size
        lo = math.ceil(scale / 2 * corners)  # the object stays inside the image
        kx, ky = rng.integers(lo, corners - lo + 1, size=2)
        return world.render_object(
            str(rng.choice(list(world.COLOURS))),
            str(rng.choice(world.SHAPES)),
            size=size,
            scale=scale,
            center=(kx / corners, ky / corners),
            rotation=float(rng.uniform(0, 360)),
            background=str(rng.choice(["plain", "gradient", "noise"])),
            seed=int(rng.integers(2**31)),
            **kw,
        )

    def render_size(self) -> tuple[int, bool]:
        """The side to draw at, and whether it goes straight to the model (no resize)."""
        r, rng = self.r, self.rng
        if rng.random() < r.direct_render_p:
            return r.image_size, True
        if r.near_size_p and rng.random() < r.near_size_p:  # no draw when off: old recipes
            return int(rng.integers(r.image_size + 1, r.image_size + 25)), False
        return int(rng.choice([80, 96, 128, 160])), False

    def sample(self, step: int):
        r, rng = self.r, self.rng
        images, captions, claims, objects = [], [], [], []
        p_easy = self.easy_share(step)
        for _ in range(r.batch_size):
            size, direct = self.render_size()
            kw: dict = {}
            if r.aliased_p and rng.random() < r.aliased_p:
                kw["supersample"] = 1
            if r.tint_p and rng.random() < r.tint_p:
                kw["tint"] = nuisance.tint(rng)
            if r.small_p and rng.random() < r.small_p:  # no draw when off: old recipes
                scene = world.render_scene(
                    rng, size=size, n_objects=1, scale_range=SMALL_SCALES, **kw
                )
                k = 0
                cap = scene.captions[0] + ("." if rng.random() < 0.5 else "")
            elif rng.random() < p_easy and rng.random() < r.grid_centre_p:
                scene = self.grid_centred(size, **kw)
                k = 0
                cap = scene.captions[0] + ("." if rng.random() < 0.5 else "")
            elif rng.random() < p_easy:
                scene = world.render_scene(
                    rng, size=size, n_objects=1, scale_range=tuple(r.easy_scale), **kw
                )
                k = 0
                cap = scene.captions[0] + ("." if rng.random() < 0.5 else "")
            else:
                scene = world.render_scene(rng, size=size, **kw)
                k = int(rng.integers(len(scene.captions)))
                cap = scene.captions[k]
                if rng.random() < 0.2:
                    cap += "."
            img = scene.image
            if r.nuisance_p:
                img = nuisance.random_nuisances(img, rng, r.nuisance_p)
            if r.jpeg_p and rng.random() < r.jpeg_p:
                img = nuisance.jpeg(img, rng, quality=int(rng.integers(10, 26)))
            if not direct:
                img = img.resize((r.image_size, r.image_size), Image.Resampling.BICUBIC)
            images.append(img)
            captions.append(cap)
            claims.append(scene.claims[k])
            objects.append(scene.objects)
        pos = positives(claims, objects)
        pres = presence(objects)
        # Distractors: extra text columns and image rows with no positive at all.
        captions += [distractors.sentence(rng) for _ in range(r.negative_texts)]
        for _ in range(r.negative_images):
            side, direct = self.render_size()
            img = distractors.texture(rng, side)
            if r.nuisance_p:
                img = nuisance.random_nuisances(img, rng, r.nuisance_p)
            if not direct:
                img = img.resize((r.image_size, r.image_size), Image.Resampling.BICUBIC)
            images.append(img)
        return (to_tensor(images), captions, pos, pres)


def prefetch(fn, steps: range, depth: int = 3):
    """Run ``fn(step)`` in a background thread, in order (deterministic), ``depth`` ahead."""
    q: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def worker():
        for s in steps:
            if stop.is_set():
                return
            q.put((s, fn(s)))
        q.put(None)

    t = threading.Thread(target=worker, daemon=True)
    t.start()
    try:
        while (item := q.get()) is not None:
            yield item
    finally:
        stop.set()
        while not q.empty():
            q.get_nowait()


# ----------------------------------------------------------------------------- loss


def multi_positive_loss(logits: torch.Tensor, pos: torch.Tensor) -> torch.Tensor:
    """Symmetric InfoNCE where every described pair counts as a match (logits: images x texts).

    ``logits`` may be larger than ``pos``: the extra rows and columns are distractors, which
    sit in every softmax's denominator and are the target of none.
    """
    n_images, n_texts = pos.shape
    pos = pos.float()
    t_i2t = pos / pos.sum(1, keepdim=True)
    t_t2i = pos / pos.sum(0, keepdim=True)
    i2t = F.log_softmax(logits[:n_images], 1)[:, :n_texts]
    t2i = F.log_softmax(logits[:, :n_texts], 0)[:n_images]
    l_i2t = -(t_i2t * i2t).sum(1).mean()
    l_t2i = -(t_t2i * t2i).sum(0).mean()
    return (l_i2t + l_t2i) / 2


def features(model, pixel_values=None, input_ids=None, attention_mask=None):
    """Unit-normalised projected embeddings (transformers 5 returns output objects)."""
    out = {}
    if pixel_values is not None:
        v = model.vision_model(pixel_values=pixel_values)
        out["vision_pooled"] = v.pooler_output
        out["image"] = F.normalize(model.visual_projection(v.pooler_output), dim=-1)
    if input_ids is not None:
        t = model.text_model(input_ids=input_ids, attention_mask=attention_mask)
        out["text"] = F.normalize(model.text_projection(t.pooler_output), dim=-1)
    return out


# ----------------------------------------------------------------------------- eval


@torch.no_grad()
def quick_eval(model, tokenizer, pixel_values: torch.Tensor, labels: list[tuple[str, str]]):
    model.eval()
    prompts = world.zero_shot_prompts()
    classes = world.zero_shot_labels()
    tok = tokenizer(prompts, padding=True, return_tensors="pt")
    txt = features(model, input_ids=tok.input_ids, attention_mask=tok.attention_mask)["text"]
    img = torch.cat(
        [
            features(model, pixel_values=pixel_values[i : i + 256])["image"]
            for i in range(0, len(pixel_values), 256)
        ]
    )
    pred = (img @ txt.T).argmax(1).tolist()
    n = len(labels)
    colour = sum(classes[p][0] == y[0] for p, y in zip(pred, labels, strict=True)) / n
    shape = sum(classes[p][1] == y[1] for p, y in zip(pred, labels, strict=True)) / n
    both = sum(classes[p] == y for p, y in zip(pred, labels, strict=True)) / n
    model.train()
    return {"colour": colour, "shape": shape, "colour_shape": both}


def eval_set(recipe: ClipRecipe, processor):
    scenes = world.generate_scenes(
        10_007, recipe.eval_count, size=128, n_objects=1, scale_range=(0.2, world.MAX_SCALE)
    )
    images = [s.image for s in scenes]
    if recipe.nuisance_p:
        # the robust recipe is judged on held-out seeds with its nuisances, half the set
        rng = np.random.default_rng(10_008)
        for i in range(0, len(scenes), 2):
            side = int(rng.integers(recipe.image_size, recipe.image_size + 17))
            scenes[i] = world.render_scene(
                rng,
                size=side,
                n_objects=1,
                scale_range=(0.2, world.MAX_SCALE),
                supersample=1,
                tint=nuisance.tint(rng),
            )
            images[i] = nuisance.random_nuisances(scenes[i].image, rng, 0.5)
    pv = processor(images=images, return_tensors="pt").pixel_values
    return pv, [(s.objects[0].colour, s.objects[0].shape) for s in scenes]


# ----------------------------------------------------------------------------- training


def save_folder(model, processor, out: Path, info: dict) -> None:
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out, safe_serialization=True)
    processor.save_pretrained(out)
    # also the classic standalone file, for CLIPImageProcessor.from_pretrained and older readers
    processor.image_processor.save_pretrained(out)
    (out / "training.json").write_text(json.dumps(info, indent=2) + "\n")


def train_clip(
    recipe: ClipRecipe, out: Path, minutes: float | None = None, threads: int = 2, log=print
) -> dict:
    from tqdm import tqdm

    torch.set_num_threads(threads)
    torch.manual_seed(recipe.seed)
    t_start = time.time()
    previous = None
    if recipe.init_from:
        from transformers import CLIPModel, CLIPProcessor

        src = Path(recipe.init_from)
        processor = CLIPProcessor.from_pretrained(src, local_files_only=True)
        tokenizer = processor.tokenizer
        model = CLIPModel.from_pretrained(src, local_files_only=True)
        if (src / "training.json").exists():
            previous = json.loads((src / "training.json").read_text())
        vc = model.config.vision_config
        wanted = (recipe.image_size or vc.image_size, recipe.patch_size or vc.patch_size)
        if wanted != (vc.image_size, vc.patch_size):
            log(f"input {vc.image_size} px / patch {vc.patch_size} -> {wanted[0]} / {wanted[1]}")
            resize_vision_input(model, *wanted)
            processor = build_processor(tokenizer, wanted[0])
        recipe.image_size, recipe.patch_size = wanted
        recipe.vision_hidden = vc.hidden_size
    else:
        recipe.image_size = recipe.image_size or DEFAULT_IMAGE_SIZE
        recipe.patch_size = recipe.patch_size or DEFAULT_PATCH_SIZE
        tokenizer = train_tokenizer(caption_corpus(recipe.seed), max_length=recipe.max_text_length)
        processor = build_processor(tokenizer, recipe.image_size)
        model = build_clip(recipe, tokenizer)
    n_classes = len(world.COLOURS) * len(world.SHAPES)
    aux = torch.nn.Linear(recipe.vision_hidden, n_classes)
    if recipe.init_from:
        # a random head would push random gradients into an already trained tower
        torch.nn.init.zeros_(aux.weight)
        torch.nn.init.zeros_(aux.bias)
    n_params = sum(p.numel() for p in model.parameters())
    log(f"CLIP parameters: {n_params / 1e6:.2f} M; vocab {len(tokenizer)}")

    decay, no_decay = [], []
    for name, p in list(model.named_parameters()) + list(aux.named_parameters()):
        (no_decay if p.ndim < 2 or "embedding" in name or name == "logit_scale" else decay).append(
            p
        )
    opt = torch.optim.AdamW(
        [
            {"params": decay, "weight_decay": recipe.weight_decay},
            {"params": no_decay, "weight_decay": 0.0},
        ],
        lr=recipe.lr,
        betas=(0.9, 0.98),
        eps=1e-6,
    )

    def lr_at(step: int) -> float:
        if step < recipe.warmup_steps:
            return recipe.lr * (step + 1) / recipe.warmup_steps
        prog = (step - recipe.warmup_steps) / max(1, recipe.steps - recipe.warmup_steps)
        return recipe.lr * (0.02 + 0.98 * 0.5 * (1 + math.cos(math.pi * min(prog, 1.0))))

    ev_pixels, ev_labels = eval_set(recipe, processor)
    maker = BatchMaker(recipe)
    history: list[dict] = []
    best = -1.0
    step = 0
    model.train()
    bar = tqdm(total=recipe.steps, desc="clip", mininterval=5.0)
    info = {}
    for step, (pix, caps, pos, pres) in prefetch(maker.sample, range(recipe.steps)):
        for g in opt.param_groups:
            g["lr"] = lr_at(step)
        tok = tokenizer(caps, padding=True, truncation=True, return_tensors="pt")
        f = features(model, pix, tok.input_ids, tok.attention_mask)
        aux_logits = aux(f["vision_pooled"][: len(pres)])
        scale = model.logit_scale.exp().clamp(max=100.0)
        logits = scale * f["image"].float() @ f["text"].float().T
        loss_c = multi_positive_loss(logits, torch.from_numpy(pos))
        loss_a = F.binary_cross_entropy_with_logits(aux_logits.float(), pres)
        single = pres.sum(1) == 1
        if recipe.aux_ce_weight and single.any():
            loss_a = loss_a + recipe.aux_ce_weight * F.cross_entropy(
                aux_logits[single].float(), pres[single].argmax(1)
            )
        loss = loss_c + recipe.aux_weight * loss_a
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        with torch.no_grad():
            model.logit_scale.clamp_(max=math.log(100.0))
        bar.update(1)
        bar.set_postfix(loss=f"{loss_c.item():.3f}", aux=f"{loss_a.item():.3f}", refresh=False)
        elapsed = (time.time() - t_start) / 60
        last = step == recipe.steps - 1 or (minutes is not None and elapsed >= minutes)
        if (step + 1) % recipe.eval_every == 0 or last:
            m = quick_eval(model, tokenizer, ev_pixels, ev_labels)
            rec = {
                "step": step + 1,
                "minutes": round(elapsed, 2),
                "loss": round(loss_c.item(), 4),
                "aux": round(loss_a.item(), 4),
                **{k: round(v, 4) for k, v in m.items()},
            }
            history.append(rec)
            log(f"eval {json.dumps(rec)}")
            info = run_info(
                recipe, n_params, step, elapsed, threads, history, previous_stage=previous
            )
            best = keep_best(
                out,
                info,
                m["colour_shape"],
                best,
                lambda kept: save_folder(model, processor, out, kept),
            )
        if last:
            break
    bar.close()
    return json.loads((out / "training.json").read_text()) if out.exists() else info


def run_info(recipe, n_params: int, step: int, elapsed: float, threads: int, history, **extra):
    """What training.json records about a run so far (both training commands)."""
    return {
        "recipe": asdict(recipe),
        "parameters": n_params,
        "steps_done": step + 1,
        "train_minutes": round(elapsed, 2),
        "threads": threads,
        "history": history,
        "torch": torch.__version__,
        **extra,
    }


def keep_best(out: Path, info: dict, score: float, best: float, save) -> float:
    """Save the model (``save(info)``) when ``score`` is the best so far; training.json
    always names the kept step. Returns the new best."""
    if score >= best:
        info["checkpoint_step"] = info["steps_done"]
        save(info)
        best = score
    else:
        kept = json.loads((out / "training.json").read_text())["checkpoint_step"]
        info["checkpoint_step"] = kept
    (out / "training.json").write_text(json.dumps(info, indent=2) + "\n")
    return best


def _stage_lines(info: dict, command: str) -> list[str]:
    r = info.get("recipe", {})
    if r.get("init_from"):
        curriculum = (
            f"- Continues from the previous stage's checkpoint (`--set init_from=...`); easy "
            f"share {r.get('easy_floor')} throughout"
            + (
                f", {r['grid_centre_p']} of the easy objects centred on a corner of the patch grid"
                if r.get("grid_centre_p")
                else ""
            )
            + (
                f" after a {r.get('curriculum_steps')}-step ramp"
                if r.get("curriculum_steps")
                else ""
            )
            + "."
        )
    else:
        curriculum = (
            f"- Curriculum: easy samples (one object, scale {r.get('easy_scale')}, plain or "
            f'gradient background, no blur, "a photo of a {{colour}} {{shape}}") from 100 % '
            f"falling linearly to {r.get('easy_floor')} over {r.get('curriculum_steps')} steps; "
            "the rest the full world (1-6 objects, 7-70 % sizes, all backgrounds, blur, noise) "
            "with all caption kinds."
        )
    return [
        f"- Loss: multi-positive symmetric InfoNCE (a caption is a positive for every image it "
        f"correctly describes) + {r.get('aux_weight')} x auxiliary multi-label BCE on the vision "
        "pooled output (which colour x shape kinds are present; linear head discarded)"
        + (
            f" + {r['aux_ce_weight']} x 30-way cross-entropy of the same head on one-object "
            "images (the head starts at zero when continuing a stage)"
            if r.get("aux_ce_weight")
            else ""
        )
        + ".",
        curriculum,
        *_architecture_change(info),
        *_robustness_lines(r),
        f"- Optimiser: AdamW lr {r.get('lr')}, betas (0.9, 0.98), weight decay "
        f"{r.get('weight_decay')}, {r.get('warmup_steps')} warm-up steps, cosine to 2 %; batch "
        f"{r.get('batch_size')}.",
        f"- Seed {r.get('seed')}; schedule {r.get('steps')} steps; kept checkpoint: step "
        f"{info.get('checkpoint_step')} of {info.get('steps_done')} run (best on the quick "
        "held-out check below).",
        f"- Training time: {info.get('train_minutes')} min on a 2-core CPU (AMD EPYC, "
        f"{info.get('threads')} torch threads, machine shared with other jobs), no GPU; torch "
        f"{info.get('torch')}.",
        f"- Command: `{command or info.get('command') or 'python -m clipcore.lab.train clip'}`",
    ]


def _robustness_lines(r: dict) -> list[str]:
    """What a robustness stage added to the world (recipes before it have none of it)."""
    lines = []
    if r.get("near_size_p") or r.get("aliased_p") or r.get("tint_p") or r.get("nuisance_p"):
        lines.append(
            f"- Nuisances (`clipcore.lab.nuisance`): of the images not drawn at the input size, "
            f"{r.get('near_size_p')} drawn at {r['image_size'] + 1}-{r['image_size'] + 24} px "
            "(sent near the input size); "
            f"{r.get('aliased_p')} drawn without antialiasing; {r.get('tint_p')} on a tinted "
            f"background (a cast of up to 25 levels per channel, or a pale colour); then each "
            f"of exposure/contrast, white-balance cast (up to 20 levels), light blur, noise "
            f"and JPEG (quality 15-60) with probability {r.get('nuisance_p')}."
        )
    if r.get("negative_texts") or r.get("negative_images"):
        lines.append(
            f"- Distractors (`clipcore.lab.train.distractors`): {r.get('negative_texts')} texts "
            "(unknown colours or shapes, other domains, nonsense) and "
            f"{r.get('negative_images')} textures per batch that match nothing: extra columns "
            "and rows of the contrastive loss, the target of none."
        )
    if r.get("small_p") or r.get("jpeg_p"):
        lines.append(
            f"- {r.get('small_p')} of the images one small object ({SMALL_SCALES[0]:.0%}-"
            f"{SMALL_SCALES[1]:.0%} of the side); {r.get('jpeg_p')} of them through an extra "
            "JPEG round trip at quality 10-25 after the other nuisances."
        )
    return lines


def _architecture_change(info: dict) -> list[str]:
    """A stage that changed the input size (``resize_vision_input``), said in the card."""
    r, before = info.get("recipe", {}), (info.get("previous_stage") or {}).get("recipe", {})
    old = (before.get("image_size"), before.get("patch_size"))
    new = (r.get("image_size"), r.get("patch_size"))
    if not before or old == new:
        return []
    return [
        f"- Architecture change: input {old[0]} px / patch {old[1]} -> {new[0]} px / patch "
        f"{new[1]}, by FlexiViT's pseudo-inverse resize of the patch kernel (the resized "
        "model starts as the old one on the same image sent larger). The token grid is "
        f"{old[0] // old[1]} x {old[0] // old[1]} before and {new[0] // new[1]} x "
        f"{new[0] // new[1]} after: small objects get "
        f"{new[0] / old[0]:.1f} x the pixels."
    ]


def write_card(out: Path, info: dict, command: str = "") -> None:
    """Write the model card (recipe and training facts; ``clipcore.lab.evaluate --write-cards``
    adds the measured figures below the marker)."""
    r = info.get("recipe", {})
    if command:
        info["command"] = command
        (out / "training.json").write_text(json.dumps(info, indent=2) + "\n")
    stages = []
    prev = info.get("previous_stage")
    while prev:
        stages.insert(0, prev)
        prev = prev.get("previous_stage")
    lines = [
        "# clip-tiny: clipq's embedded CLIP",
        "",
        "A `transformers` `CLIPModel` trained from scratch by clipq's own script on the",
        "procedurally generated world of `clipcore.lab.world` (six colours x five shapes, 1-6",
        "objects, grey / gradient / noise backgrounds). It is the default model when",
        "`CLIPQ_CLIP_MODEL` is unset. It knows this world only: colours, shapes, counts, sizes",
        "and positions as worded by the world's captions. It is not a general-purpose CLIP.",
        "",
        "Load: `CLIPModel.from_pretrained(folder)`, `CLIPProcessor.from_pretrained(folder)`.",
        "",
        "## Recipe",
        "",
        f"- Architecture: ViT {r.get('image_size')} px / patch {r.get('patch_size')}, hidden "
        f"{r.get('vision_hidden')} x {r.get('vision_layers')} layers; text transformer hidden "
        f"{r.get('text_hidden')} x {r.get('text_layers')} layers; {r.get('heads')} heads; "
        f"projection {r.get('projection_dim')}; {info.get('parameters', 0) / 1e6:.2f} M "
        "parameters, fp32 safetensors.",
        "- Tokenizer: byte-level BPE trained with `tokenizers` on generated captions (CLIP's",
        "  normalisation and split pattern; every byte in the vocabulary, so no unknown tokens;",
        "  `text_config.eos_token_id` is the tokenizer's `<|endoftext|>`).",
        f"- Images: {r.get('image_size')} px, mean/std 0.5; the processor resizes the shortest "
        f"edge to {r.get('image_size')} (bicubic) and centre-crops a square. Training images are "
        f"rendered at that size ({r.get('direct_render_p')} of them) or at 80-160 px and "
        "resized like the processor does.",
    ]
    total = sum(st.get("train_minutes", 0) for st in stages) + info.get("train_minutes", 0)
    for i, st in enumerate([*stages, info], 1):
        lines += ["", f"### Stage {i} of {len(stages) + 1}", ""]
        lines += _stage_lines(st, command if st is info else "")
    lines += ["", f"Total training time: {total:.1f} min (2-core CPU, no GPU)."]
    if stages:
        lines += [
            "",
            "To reproduce, run the stages' commands in order, giving each `--out` a folder of "
            "its own and pointing the next stage's `init_from` at it.",
        ]
    hist = []
    for i, st in enumerate([*stages, info], 1):
        hist += [{"stage": i, **h} for h in st.get("history", [])]
    render_card(out, lines, {"history": hist})


FIGURES_MARKER = "## Measured figures"


def render_card(out: Path, lines: list[str], info: dict) -> None:
    """Write README.md: the given lines, the training curve, and any measured figures
    already in the card (kept, so re-running training does not lose them until re-measured)."""
    out.mkdir(parents=True, exist_ok=True)
    card = out / "README.md"
    figures = ""
    if card.exists() and FIGURES_MARKER in card.read_text():
        figures = card.read_text().split(FIGURES_MARKER, 1)[1]
    hist = info.get("history", [])
    if hist:
        keys = [k for k in hist[0] if k not in ("stage", "step", "minutes")]
        stage = "stage | " if "stage" in hist[0] else ""
        lines += [
            "",
            "## Training curve (quick held-out check during training)",
            "",
            f"| {stage}step | minutes | " + " | ".join(keys) + " |",
            "|---" * (len(keys) + 2 + bool(stage)) + "|",
        ]
        lines += [
            "| "
            + (f"{h['stage']} | " if stage else "")
            + f"{h['step']} | {h['minutes']} | "
            + " | ".join(str(h[k]) for k in keys)
            + " |"
            for h in hist
        ]
    text = (
        "\n".join(lines)
        + "\n\n"
        + FIGURES_MARKER
        + (
            figures
            if figures
            else "\n\nNot measured yet: run `python -m clipcore.lab.evaluate --write-cards`.\n"
        )
    )
    card.write_text(text)

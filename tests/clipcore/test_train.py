"""Smoke test of the training commands: a few steps of tiny models, loaded back the real way."""

from __future__ import annotations

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")


def test_tokenizer_round_trip(tmp_path):
    from transformers import CLIPTokenizer, CLIPTokenizerFast

    from clipcore.lab.train.tokenizer import caption_corpus, train_tokenizer

    tok = train_tokenizer(caption_corpus(0, scenes=300))
    tok.save_pretrained(tmp_path)
    for cls in (CLIPTokenizer, CLIPTokenizerFast):
        loaded = cls.from_pretrained(tmp_path, local_files_only=True)
        ids = loaded("A photo of a RED circle.").input_ids
        assert ids == tok("a photo of a red circle.").input_ids
        assert ids[0] == loaded.bos_token_id and ids[-1] == loaded.eos_token_id
        # the caption words are single tokens; unseen text has no unknown (= eos) tokens
        assert len(ids) == 2 + 7
        odd = loaded("zebra ünïcode q").input_ids
        assert odd.count(loaded.eos_token_id) == 1


def test_multi_positive_matrix():
    from clipcore.lab import world
    from clipcore.lab.train.clip import positives

    scenes = world.generate_scenes(1, 24, size=32)
    claims = [s.claims[i % len(s.claims)] for i, s in enumerate(scenes)]
    m = positives(claims, [s.objects for s in scenes])
    assert m.shape == (24, 24) and m.diagonal().all()
    for i in range(24):
        for j in range(24):
            assert m[i, j] == (i == j or world.claim_holds(claims[j], scenes[i].objects))


def test_train_commands_smoke(tmp_path):
    from transformers import CLIPModel, CLIPProcessor

    from clipcore.detector import load_detector, propose_regions
    from clipcore.lab.train.__main__ import main
    from clipcore.lab.world import render_object

    clip_dir, det_dir = tmp_path / "clip", tmp_path / "det"
    tiny = [
        "--set",
        "vision_hidden=32",
        "--set",
        "text_hidden=32",
        "--set",
        "heads=2",
        "--set",
        "vision_layers=1",
        "--set",
        "text_layers=1",
        "--set",
        "projection_dim=16",
        "--set",
        "image_size=32",
        "--set",
        "eval_count=20",
        "--set",
        "warmup_steps=1",
    ]
    assert (
        main(
            [
                "clip",
                "--steps",
                "3",
                "--batch-size",
                "8",
                "--eval-every",
                "2",
                "--out",
                str(clip_dir),
                *tiny,
            ]
        )
        == 0
    )
    assert (
        main(
            [
                "detector",
                "--steps",
                "2",
                "--batch-size",
                "2",
                "--eval-every",
                "2",
                "--out",
                str(det_dir),
                "--set",
                "eval_count=3",
                "--set",
                "image_size=64",
            ]
        )
        == 0
    )

    # a second stage continues from the first (as the shipped model was trained)
    stage2 = tmp_path / "clip2"
    assert (
        main(
            [
                "clip",
                "--seed",
                "1",
                "--steps",
                "1",
                "--batch-size",
                "8",
                "--out",
                str(stage2),
                "--set",
                f"init_from={clip_dir}",
                "--set",
                "curriculum_steps=0",
                "--set",
                "eval_count=10",
                "--set",
                "aux_ce_weight=1",
                "--set",
                "easy_scale=0.2,0.6",
                "--set",
                "grid_centre_p=0.5",
            ]
        )
        == 0
    )
    card2 = (stage2 / "README.md").read_text()
    assert "Stage 2 of 2" in card2 and "Total training time" in card2
    assert "30-way cross-entropy" in card2.split("Stage 2 of 2")[1]
    assert json.loads((stage2 / "training.json").read_text())["recipe"]["easy_scale"] == [0.2, 0.6]
    assert CLIPModel.from_pretrained(stage2).config.vision_config.image_size == 32

    # a third changes the input size: the card says so, the model loads at the new size
    stage3 = tmp_path / "clip3"
    args = ["clip", "--steps", "1", "--batch-size", "4", "--out", str(stage3)]
    args += ["--set", f"init_from={stage2}", "--set", "eval_count=4"]
    assert main([*args, "--set", "image_size=64", "--set", "patch_size=12"]) == 0
    assert (
        "Architecture change: input 32 px / patch 6 -> 64 px / patch 12"
        in (stage3 / "README.md").read_text()
    )
    assert CLIPProcessor.from_pretrained(stage3).image_processor.crop_size["height"] == 64

    model = CLIPModel.from_pretrained(clip_dir, local_files_only=True).eval()
    processor = CLIPProcessor.from_pretrained(clip_dir, local_files_only=True)
    assert model.config.text_config.eos_token_id == processor.tokenizer.eos_token_id
    image = render_object("red", "circle", size=100).image
    inputs = processor(
        text=["a photo of a red circle.", "a blue star"],
        images=[image],
        return_tensors="pt",
        padding=True,
    )
    assert inputs["pixel_values"].shape == (1, 3, 32, 32)
    with torch.no_grad():
        out = model(**inputs)
    assert out.logits_per_image.shape == (1, 2)
    info = json.loads((clip_dir / "training.json").read_text())
    assert info["steps_done"] == 3 and info["recipe"]["seed"] == 0
    card = (clip_dir / "README.md").read_text()
    assert "Seed 0" in card and "2-core CPU" in card

    det = load_detector(str(det_dir), "cpu")
    regions = propose_regions(det, [image], top_n=5, score_threshold=0.0)
    assert len(regions) == 1 and len(regions[0]) <= 5
    for r in regions[0]:
        assert r.mask.shape == (100, 100) and r.mask.dtype == np.bool_
    assert "2-core CPU" in (det_dir / "README.md").read_text()


def test_grid_centred_samples_sit_on_patch_corners_inside_the_image():
    from clipcore.lab.train.clip import BatchMaker, ClipRecipe

    recipe = ClipRecipe(image_size=48, patch_size=6, easy_scale=(0.15, 0.7))
    maker = BatchMaker(recipe)
    for size in (48, 128):
        for _ in range(40):
            scene = maker.grid_centred(size)
            (obj,) = scene.objects
            corner = np.asarray(obj.center) * 48 / 6
            assert np.allclose(corner, np.round(corner))
            x0, y0, x1, y1 = obj.box
            assert 0 <= x0 < x1 <= size and 0 <= y0 < y1 <= size
            assert scene.captions[0].endswith(f" {obj.colour} {obj.shape}")


def test_a_trained_model_takes_a_larger_input_as_it_took_the_smaller_one(tmp_path):
    """resize_vision_input: the resized model on an image sent larger sees what it saw."""
    import torch
    import torch.nn.functional as F
    from transformers import CLIPModel

    from clipcore.lab.train.clip import ClipRecipe, build_clip, features, resize_vision_input
    from clipcore.lab.train.tokenizer import caption_corpus, train_tokenizer

    tokenizer = train_tokenizer(caption_corpus(0)[:200], max_length=16)
    recipe = ClipRecipe(vision_hidden=32, text_hidden=32, heads=2, vision_layers=1)
    recipe.text_layers, recipe.projection_dim, recipe.max_text_length = 1, 16, 16
    model = build_clip(recipe, tokenizer).eval()
    small = torch.rand(3, 3, 48, 48) * 2 - 1
    with torch.no_grad():
        before = features(model, pixel_values=small)["image"]
        resize_vision_input(model, 96, 12)  # the same 8 x 8 grid, twice the pixels
        large = F.interpolate(small, size=(96, 96), mode="bilinear")
        after = features(model, pixel_values=large)["image"]
    assert (before * after).sum(1).min() > 0.99
    model.save_pretrained(tmp_path / "resized")
    loaded = CLIPModel.from_pretrained(tmp_path / "resized").eval()
    assert loaded.config.vision_config.image_size == 96
    with torch.no_grad():
        again = features(loaded, pixel_values=large)["image"]
    assert torch.allclose(again, after, atol=1e-5)
    resize_vision_input(loaded, 60, 6)  # a finer grid: 10 x 10 positions, interpolated
    assert loaded.vision_model.embeddings.position_embedding.weight.shape[0] == 101
    with torch.no_grad():
        assert features(loaded, pixel_values=torch.zeros(1, 3, 60, 60))["image"].shape == (1, 16)

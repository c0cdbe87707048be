"""Helpers shared by the test packages: tiny random CLIP models and test images."""

from __future__ import annotations

import io
from pathlib import Path

from PIL import Image

CORPUS = [
    "a photo of a cat.",
    "a photo of a dog.",
    "a photo of a red circle.",
    "a photo of a blue square.",
    "a photo of a green star.",
    "a photo of a bird, a car, a truck, a ship, a horse, a frog, a deer, an airplane.",
]


def build_random_clip(folder: Path, *, seed: int = 0, image_size: int = 32) -> Path:
    """Save a small randomly initialised CLIP (model, tokenizer, image processor) to ``folder``.

    It loads through the same ``from_pretrained`` path as real weights; its answers
    mean nothing, but they are deterministic and comparable with transformers.
    """
    import torch
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, trainers
    from transformers import (
        CLIPConfig,
        CLIPImageProcessor,
        CLIPModel,
        CLIPProcessor,
        CLIPTokenizer,
    )

    specials = ["<|startoftext|>", "<|endoftext|>"]
    backend = Tokenizer(models.BPE(end_of_word_suffix="</w>", unk_token="<|endoftext|>"))
    backend.normalizer = normalizers.Lowercase()
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    trainer = trainers.BpeTrainer(
        vocab_size=400,
        special_tokens=specials,
        end_of_word_suffix="</w>",
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    backend.train_from_iterator(CORPUS * 4, trainer)
    state = backend.model
    vocab = backend.get_vocab()
    merges = [tuple(m.split(" ")) if isinstance(m, str) else tuple(m) for m in _merges(state)]
    tokenizer = CLIPTokenizer(vocab=vocab, merges=merges, model_max_length=32)
    processor = CLIPProcessor(
        image_processor=CLIPImageProcessor(
            size={"shortest_edge": image_size},
            crop_size={"height": image_size, "width": image_size},
        ),
        tokenizer=tokenizer,
    )
    eos = tokenizer.eos_token_id
    config = CLIPConfig(
        text_config={
            "vocab_size": len(vocab),
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_hidden_layers": 2,
            "num_attention_heads": 2,
            "max_position_embeddings": 32,
            "eos_token_id": eos,
            "bos_token_id": tokenizer.bos_token_id,
            "pad_token_id": tokenizer.pad_token_id,
        },
        vision_config={
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_hidden_layers": 2,
            "num_attention_heads": 2,
            "image_size": image_size,
            "patch_size": 8,
        },
        projection_dim=16,
    )
    torch.manual_seed(seed)
    CLIPModel(config).save_pretrained(folder)
    processor.save_pretrained(folder)
    return folder


def _merges(model) -> list:
    import json

    return json.loads(model.__getstate__())["merges"]


def png_bytes(colour: tuple[int, int, int], size: tuple[int, int] = (48, 40)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, colour).save(buffer, format="PNG")
    return buffer.getvalue()


def distinct_pngs(count: int, size: tuple[int, int] = (16, 16)) -> list[bytes]:
    """``count`` small PNGs with different bytes (so different content addresses)."""
    return [png_bytes((i % 251, (i // 251) % 251, 7), size) for i in range(count)]


def truncated_png() -> bytes:
    """A PNG whose header reads fine but whose pixel data stops half-way."""
    import os

    buffer = io.BytesIO()
    Image.frombytes("RGB", (64, 64), os.urandom(64 * 64 * 3)).save(buffer, format="PNG")
    data = buffer.getvalue()
    return data[: len(data) // 2]


def build_random_detector(folder: Path, *, seed: int = 0) -> Path:
    """A small randomly initialised Mask R-CNN saved like the embedded one (loads the same way)."""
    import torch

    from clipcore.detector import build_tiny_maskrcnn, save_tiny_detector

    torch.manual_seed(seed)
    save_tiny_detector(build_tiny_maskrcnn(), {}, folder)
    return folder

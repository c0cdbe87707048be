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


def _sentencepiece_model(folder: Path) -> Path:
    """A small SentencePiece model trained on :data:`CORPUS` (SigLIP's tokenizers read one)."""
    import sentencepiece

    buffer = io.BytesIO()
    sentencepiece.SentencePieceTrainer.train(
        sentence_iterator=iter(CORPUS * 8),
        model_writer=buffer,
        vocab_size=60,
        hard_vocab_limit=False,
        pad_id=0,
        eos_id=1,
        unk_id=2,
        bos_id=-1,
        minloglevel=2,
    )
    path = folder / "spiece.model"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(buffer.getvalue())
    return path


def build_random_siglip(folder: Path, *, version: int = 1, seed: int = 0) -> Path:
    """A small random ``SiglipModel`` (or, ``version=2``, a NaFlex ``Siglip2Model``) saved
    with ``save_pretrained`` beside its processor: a SentencePiece ``SiglipTokenizer`` and
    the family's own image processor."""
    import tempfile

    import torch
    from transformers import (
        Siglip2Config,
        Siglip2ImageProcessor,
        Siglip2Model,
        Siglip2Processor,
        SiglipConfig,
        SiglipImageProcessor,
        SiglipModel,
        SiglipProcessor,
        SiglipTokenizer,
    )

    with tempfile.TemporaryDirectory() as scratch:
        tokenizer = SiglipTokenizer(
            vocab_file=str(_sentencepiece_model(Path(scratch))), model_max_length=16
        )
    tower = {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2}
    text = {
        **tower,
        "num_attention_heads": 2,
        "vocab_size": len(tokenizer),
        "max_position_embeddings": 16,
        "pad_token_id": tokenizer.pad_token_id,
        "eos_token_id": tokenizer.eos_token_id,
        "bos_token_id": None,
    }
    vision = {**tower, "num_attention_heads": 2, "patch_size": 8}
    torch.manual_seed(seed)
    if version == 1:
        config = SiglipConfig(text_config=text, vision_config={**vision, "image_size": 32})
        model: torch.nn.Module = SiglipModel(config)
        images = SiglipImageProcessor(size={"height": 32, "width": 32})
        processor = SiglipProcessor(image_processor=images, tokenizer=tokenizer)
    else:
        config = Siglip2Config(text_config=text, vision_config={**vision, "num_patches": 16})
        model = Siglip2Model(config)
        images = Siglip2ImageProcessor(patch_size=8, max_num_patches=16)
        processor = Siglip2Processor(image_processor=images, tokenizer=tokenizer)
    with torch.no_grad():  # a bias and scale of the trained models' size, not init's zeros
        model.logit_scale.fill_(2.3)
        model.logit_bias.fill_(-1.5)
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    return folder


def build_random_open_clip(folder: Path, *, sigmoid: bool = False, seed: int = 0) -> Path:
    """A small random open_clip ``CLIP`` in open_clip's hub layout (``open_clip_config.json``
    + ``open_clip_model.safetensors``, as ``save_for_hf`` writes them); with ``sigmoid`` it
    has a ``logit_bias``, as open_clip's SigLIP ports do. Its tokenizer is open_clip's
    default (the CLIP BPE that ships in the package)."""
    import safetensors.torch
    import torch
    from open_clip.constants import OPENAI_DATASET_MEAN, OPENAI_DATASET_STD
    from open_clip.model import CLIP
    from open_clip.push_to_hf_hub import save_config_for_hf

    config: dict = {
        "embed_dim": 16,
        "vision_cfg": {
            "image_size": 32,
            "layers": 2,
            "width": 32,
            "head_width": 16,
            "patch_size": 8,
        },
        "text_cfg": {
            "context_length": 16,
            "vocab_size": 49408,
            "width": 32,
            "heads": 2,
            "layers": 2,
        },
    }
    if sigmoid:
        config["init_logit_bias"] = -2.0
    torch.manual_seed(seed)
    model = CLIP(**config)
    model.visual.image_mean, model.visual.image_std = OPENAI_DATASET_MEAN, OPENAI_DATASET_STD
    folder.mkdir(parents=True, exist_ok=True)
    safetensors.torch.save_file(model.state_dict(), folder / "open_clip_model.safetensors")
    save_config_for_hf(model, folder / "open_clip_config.json", model_config=config)
    return folder

"""Each model family, built small and random with its library's own classes and saved in
its own layout, loads through the public path (a model string) and scores as that
library computes directly."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from PIL import Image

from clipcore.batching import Upload
from clipcore.classify import classify_uploads
from clipcore.clip_model import load_clip, resolve_model_source
from clipcore.encode import EmbeddingCache
from clipcore.errors import ModelLoadError
from clipcore.families import ScoringRule
from clipcore.model_names import Library, parse_model_name
from tests.support import (
    build_random_open_clip,
    build_random_siglip,
    png_bytes,
)

LABELS = ["red circle", "blue square", "green star", "a photo of a cat"]
COLOURS = [(220, 30, 30), (30, 30, 220), (30, 200, 30)]
SIZES = [(64, 30), (30, 64), (32, 32)]  # landscape, portrait, square
TOLERANCE = 1e-5


def pictures() -> list[Image.Image]:
    pictures = []
    for colour, size in zip(COLOURS, SIZES, strict=True):
        image = Image.new("RGB", size, colour)
        image.paste((250, 250, 250), (4, 4, size[0] // 2, size[1] // 2))  # not one flat colour
        pictures.append(image)
    return pictures


def served(spec: str) -> torch.Tensor:
    """Label probabilities for :func:`pictures` through clipq: PNG uploads, classify."""
    import io

    clip = load_clip(spec, "cpu")
    uploads = []
    for number, image in enumerate(pictures()):
        buffer = io.BytesIO()
        image.save(buffer, format="PNG")
        uploads.append(Upload(f"{number}.png", f"{number:064x}", buffer.getvalue()))
    results = classify_uploads(
        clip,
        EmbeddingCache(),
        uploads,
        labels=LABELS,
        prompt_template="{}",
        top_k_labels=len(LABELS),
        batch_size=8,
        max_pixels=10_000_000,
    )
    rows = []
    for result in results:
        assert result.error is None
        scores = {score.label: score.probability for score in result.predictions}
        rows.append([scores[label] for label in LABELS])
    return torch.tensor(rows, dtype=torch.float64)


@pytest.fixture(scope="module")
def families(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("families")
    return {
        "siglip": build_random_siglip(root / "siglip"),
        "siglip2": build_random_siglip(root / "siglip2", version=2),
        "open_clip": build_random_open_clip(root / "open_clip"),
        "open_clip_sigmoid": build_random_open_clip(root / "open_clip_sigmoid", sigmoid=True),
    }


@torch.inference_mode()
@pytest.mark.parametrize("family", ["siglip", "siglip2"])
def test_siglip_scores_as_transformers_computes_them(
    families: dict[str, Path], family: str
) -> None:
    from transformers import AutoModel, AutoProcessor

    folder = families[family]
    model = AutoModel.from_pretrained(folder).eval()
    processor = AutoProcessor.from_pretrained(folder)
    images = processor.image_processor(images=pictures(), return_tensors="pt")
    texts = processor.tokenizer(LABELS, padding="max_length", max_length=16, return_tensors="pt")
    direct = model(**images, **texts).logits_per_image.sigmoid().double()

    clip = load_clip(f"hf:{folder}", "cpu")
    assert clip.family.name == family and clip.scoring.rule == ScoringRule.sigmoid
    assert clip.scoring.bias == pytest.approx(float(model.logit_bias))
    assert (served(f"hf:{folder}") - direct).abs().max() <= TOLERANCE
    # per-label probabilities: not a distribution over the labels
    assert not torch.allclose(direct.sum(dim=1), torch.ones(len(direct), dtype=torch.float64))


@torch.inference_mode()
@pytest.mark.parametrize("variant", ["open_clip", "open_clip_sigmoid"])
def test_open_clip_scores_as_open_clip_computes_them(
    families: dict[str, Path], variant: str
) -> None:
    import open_clip

    folder = families[variant]
    name = f"local-dir:{folder}"
    model, preprocess = open_clip.create_model_from_pretrained(name)
    tokenizer = open_clip.get_tokenizer(name)
    images = model.encode_image(torch.stack([preprocess(image) for image in pictures()]))
    texts = model.encode_text(tokenizer(LABELS))
    images = images / images.norm(dim=-1, keepdim=True)
    texts = texts / texts.norm(dim=-1, keepdim=True)
    logits = model.logit_scale.exp() * images @ texts.T
    if model.logit_bias is not None:
        direct = (logits + model.logit_bias).sigmoid().double()
    else:
        direct = logits.softmax(dim=-1).double()

    for spec in (f"open_clip:{folder}", f"open_clip:local-dir:{folder}", str(folder)):
        clip = load_clip(spec, "cpu")
        assert clip.family.name == "open_clip"
        sigmoid = variant == "open_clip_sigmoid"
        assert clip.scoring.rule == (ScoringRule.sigmoid if sigmoid else ScoringRule.softmax)
        assert (served(spec) - direct).abs().max() <= TOLERANCE
    shape = load_clip(str(folder), "cpu").family.shape
    assert (shape.embedding_dim, shape.input_size, shape.context_length) == (16, 32, 16)


def test_siglip2_keeps_each_images_aspect_ratio(families: dict[str, Path]) -> None:
    """NaFlex: a portrait and a landscape picture get patch grids of their own shapes."""
    from clipcore.encode import preprocess_images

    clip = load_clip(str(families["siglip2"]), "cpu")
    packed = preprocess_images(clip, pictures())
    grids = packed[:, 0, -2:].long().tolist()
    assert grids[0][1] > grids[0][0] and grids[1][0] > grids[1][1] and grids[2][0] == grids[2][1]


def test_model_strings_name_their_library() -> None:
    assert parse_model_name("embedded").embedded
    assert parse_model_name("").canonical == "embedded"
    hub = parse_model_name("hf:openai/clip-vit-base-patch32")
    assert (hub.library, hub.name) == (Library.transformers, "openai/clip-vit-base-patch32")
    assert parse_model_name("openai/clip-vit-base-patch32") == hub  # bare ids keep working
    siglip2 = parse_model_name("open_clip:hf-hub:timm/ViT-B-16-SigLIP2")
    assert (siglip2.library, siglip2.name) == (Library.open_clip, "hf-hub:timm/ViT-B-16-SigLIP2")
    tagged = parse_model_name("open_clip:ViT-B-32/laion2b_s34b_b79k")
    assert tagged.canonical == "open_clip:ViT-B-32/laion2b_s34b_b79k"
    with pytest.raises(ModelLoadError, match="names no weights"):
        parse_model_name("open_clip:ViT-B-32")


def test_a_missing_folder_or_an_unknown_family_is_a_clear_load_error(tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError, match="does not exist"):
        resolve_model_source("hf:/no/such/model")
    from transformers import BertConfig, BertModel

    BertModel(BertConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                         intermediate_size=64)).save_pretrained(tmp_path)  # fmt: skip
    with pytest.raises(ModelLoadError, match="'bert' model"):
        load_clip(str(tmp_path), "cpu")


def test_the_embedded_model_is_still_clip_with_softmax() -> None:
    clip = load_clip("embedded", "cpu")
    assert clip.family.name == "clip" and clip.scoring.rule == ScoringRule.softmax
    assert clip.model_id == "embedded:clip-tiny"
    uploads = [Upload("a.png", "0" * 64, png_bytes((200, 30, 30)))]
    result = classify_uploads(
        clip,
        EmbeddingCache(),
        uploads,
        labels=["red circle", "blue square"],
        prompt_template="a photo of a {}.",
        top_k_labels=2,
        batch_size=4,
        max_pixels=10_000_000,
    )[0]
    assert sum(score.probability for score in result.predictions) == pytest.approx(1.0, abs=1e-5)

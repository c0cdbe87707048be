"""The shipped models: they load offline through the ordinary code paths and understand the world.

Thresholds sit a few points under what the full evaluation (``python -m clipcore.lab.evaluate``,
600 images per set; figures in the model cards) measured, because these sets are small.
"""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from clipcore.lab import evaluate, world, world_alt  # noqa: E402
from clipcore.models import EMBEDDED_CLIP_DIR, EMBEDDED_DETECTOR_DIR  # noqa: E402

# The shipped CLIP (see clipcore/models/clip-tiny/README.md) measured, on 600 images per
# renderer, colour 100 %, colour x shape 96.8-99.0 %. The shipped
# detector measured recall 99-100 % and mask IoU 0.80-0.82 (here 100 % and 0.82). These sets
# are fixed (seeded), so the thresholds guard against a retrained model that is worse.
MIN_COLOUR_SHAPE = 0.92
MIN_COLOUR = 0.97
# measured 30/30 (main) and 28/30 (alt): these objects sit exactly at the image centre, where
# the model is weaker (model card, limitations)
MIN_CLEAR_OBJECTS = 0.85
MIN_RECALL_AT_5 = 0.9  # measured 98 % on these 60 scenes
MIN_DETECTOR_RECALL = 0.9
MIN_MASK_IOU = 0.75
# The domain check and the no-match decision on their test sets below: photographs 93 %
# flagged, rendered shapes 2 %; off-topic queries 96.1 % refused, in-domain ones all answered.
MIN_PHOTOS_FLAGGED = 0.85
MAX_SHAPES_FLAGGED = 0.04
MIN_OFF_TOPIC_REFUSED = 0.9
MIN_IN_DOMAIN_ANSWERED = 0.95


@pytest.fixture(scope="module")
def clip(monkeypatch_module):
    """The shipped CLIP through the service's own loading (offline: a local folder)."""
    from clipcore.clip_model import load_clip

    torch.set_num_threads(2)
    return load_clip("embedded", "cpu")


@pytest.fixture(scope="module")
def monkeypatch_module():
    mp = pytest.MonkeyPatch()
    mp.setenv("HF_HUB_OFFLINE", "1")
    mp.setenv("TRANSFORMERS_OFFLINE", "1")
    yield mp
    mp.undo()


@pytest.fixture(scope="module")
def detector(monkeypatch_module):
    from clipcore.detector import load_detector

    return load_detector("embedded", "cpu")


def test_shipped_files_and_sizes():
    for name in ("config.json", "model.safetensors", "tokenizer.json", "README.md"):
        assert (EMBEDDED_CLIP_DIR / name).is_file(), name
    assert any(
        (EMBEDDED_CLIP_DIR / n).is_file()
        for n in ("preprocessor_config.json", "processor_config.json")
    )
    for name in ("config.json", "model.safetensors", "README.md"):
        assert (EMBEDDED_DETECTOR_DIR / name).is_file(), name
    assert sum(p.stat().st_size for p in EMBEDDED_CLIP_DIR.iterdir()) <= 15 * 2**20
    assert sum(p.stat().st_size for p in EMBEDDED_DETECTOR_DIR.iterdir()) <= 10 * 2**20
    for folder in (EMBEDDED_CLIP_DIR, EMBEDDED_DETECTOR_DIR):
        card = (folder / "README.md").read_text()
        assert "Seed" in card and "2-core CPU" in card and "## Measured figures" in card
        assert "Not measured yet" not in card


def test_clip_config_matches_tokenizer(clip):
    model, processor = clip.family.model, clip.family.processor
    tok = processor.tokenizer
    assert model.config.text_config.eos_token_id == tok.eos_token_id
    assert model.config.text_config.vocab_size >= len(tok)
    size = model.config.vision_config.image_size
    # arbitrary user images are resized and cropped to the model's input size
    from PIL import Image

    pv = processor(
        images=[Image.new("RGB", (300, 180), (10, 20, 30))], return_tensors="pt"
    ).pixel_values
    assert pv.shape == (1, 3, size, size)


def test_zero_shot_on_both_renderers(clip):
    images, labels = [], []
    for renderer in ("main", "alt"):
        im, lab = evaluate.zero_shot_set(renderer, seed=4242, count=45)
        images += im
        labels += lab
    acc = evaluate.zero_shot_accuracy(clip, images, labels)
    assert acc["colour"] >= MIN_COLOUR, acc
    assert acc["colour_shape"] >= MIN_COLOUR_SHAPE, acc


@pytest.mark.parametrize("mod", [world, world_alt], ids=["main", "alt"])
def test_every_class_is_recognised(clip, mod):
    """Clear pictures of the 30 kinds: most get their own prompt, every colour is right."""
    labels = world.zero_shot_labels()
    images = [
        mod.render_object(c, s, scale=0.55, rotation=17.0 * i, seed=i).image
        for i, (c, s) in enumerate(labels)
    ]
    acc = evaluate.zero_shot_accuracy(clip, images, labels)
    assert acc["colour"] == 1.0, acc
    assert acc["colour_shape"] >= MIN_CLEAR_OBJECTS, acc


def test_text_to_image_retrieval(clip):
    scenes = evaluate.scene_set("main", seed=4243, count=60)
    rec = evaluate.retrieval_recall(clip, scenes)
    assert rec["R@5"] >= MIN_RECALL_AT_5, rec
    assert rec["R@1"] <= rec["R@5"]


def test_text_embedding_is_pooled_at_eos(clip):
    """Padding does not change a caption's embedding (pooling uses the first eos)."""
    model, processor = clip.family.model, clip.family.processor
    tok = processor.tokenizer
    short = tok(["a red circle"], return_tensors="pt")
    padded = tok(
        ["a red circle", "a photo of two blue stars and a green square"],
        padding=True,
        return_tensors="pt",
    )
    with torch.no_grad():
        a = model.get_text_features(**short).pooler_output[0]
        b = model.get_text_features(**padded).pooler_output[0]
    assert torch.allclose(a, b, atol=1e-4)


def test_detector_proposes_the_objects(detector):
    scenes = world.generate_scenes(4244, 20) + world_alt.generate_scenes(4244, 10)
    m = evaluate.detector_metrics(detector, scenes, top_n=10)
    assert m["recall"] >= MIN_DETECTOR_RECALL, m
    assert m["mask_iou"] >= MIN_MASK_IOU, m


def test_detector_regions_api(detector):
    from clipcore.detector import Region, propose_regions

    scene = world.render_object("green", "star", size=160, scale=0.5, center=(0.3, 0.6))
    (regions,) = propose_regions(detector, [scene.image], top_n=3, score_threshold=0.0)
    assert 1 <= len(regions) <= 3 and all(isinstance(r, Region) for r in regions)
    assert regions == sorted(regions, key=lambda r: -r.score)
    best = regions[0]
    assert best.mask.shape == (160, 160)
    iou = evaluate._box_iou(
        torch.tensor([scene.objects[0].box]).numpy(), torch.tensor([best.box]).numpy()
    )[0, 0]
    assert iou > 0.6
    assert propose_regions(detector, [scene.image], top_n=3, score_threshold=1.01) == [[]]


def test_asking_for_fewer_regions_gives_the_best_of_the_full_list(detector):
    """propose_regions asks torchvision for top_n detections only (their masks are large)."""
    from clipcore.detector import propose_regions

    scene = world.generate_scenes(77, 1)[0]
    (every,) = propose_regions(detector, [scene.image], top_n=50, score_threshold=0.0)
    (best,) = propose_regions(detector, [scene.image], top_n=3, score_threshold=0.0)
    assert len(every) > 3
    assert [(r.box, r.score) for r in best] == [(r.box, r.score) for r in every[:3]]
    assert detector.roi_heads.detections_per_img == 50  # put back as it was


# --- robustness and honesty (clipcore.lab.robustness, clipcore.lab.honesty) ------------------
# Floors a few points under what these seeded sets measured with the shipped model; the card
# has the same families on 600 images per cell.
ROBUST_FLOORS = {  # measured on these sets (alt / third): in the comments
    "clean": 0.92,  # 100 / 96.7
    "cast-bg": 0.92,  # 96.7 / 98.3
    "tinted-bg": 0.92,  # 100 / 96.7
    "near-size": 0.92,  # 98.3 / 100
    "jpeg-15": 0.55,  # 66.7 / 73.3: the model's weakest family
    "exposure": 0.92,  # 100 / 98.3
    "cast": 0.92,  # 100 / 96.7
    "blur": 0.92,  # 100 / 96.7
    "noise": 0.92,  # 100 / 98.3
    "small": 0.55,  # 76.7 / 63.3: objects 4-13 px wide at the 96 px input
}


def test_every_nuisance_family_on_the_independent_renderers(clip):
    from clipcore.lab import robustness

    results = robustness.measure(
        clip, 60, renderers=("alt", "third"), families=tuple(ROBUST_FLOORS), seed=21_000, log=None
    )
    low = {
        (family, renderer): results[family][renderer]["colour_shape"]
        for family, floor in ROBUST_FLOORS.items()
        for renderer in ("alt", "third")
        if results[family][renderer]["colour_shape"] < floor
    }
    assert not low, low


def test_photographs_are_out_of_domain_and_rendered_shapes_are_not(clip):
    from clipcore.encode import embed_images
    from clipcore.lab import world_third
    from clipcore.lab.photos import photographs

    assert clip.domain is not None, "the embedded model ships its domain reference"
    views = [image for _, image in photographs(crops=3, seed=1)]
    photo_checks = clip.domain.check(embed_images(clip, views))
    flagged = sum(not c.in_domain for c in photo_checks) / len(photo_checks)
    assert flagged >= MIN_PHOTOS_FLAGGED, flagged
    rng = np.random.default_rng(70_000)
    shapes = [
        m.render_scene(rng, size=128).image for m in (world_alt, world_third) for _ in range(100)
    ]
    shape_checks = clip.domain.check(embed_images(clip, shapes))
    wrongly = sum(not c.in_domain for c in shape_checks) / len(shape_checks)
    assert wrongly <= MAX_SHAPES_FLAGGED, wrongly


def test_off_topic_queries_are_refused_and_in_domain_ones_answered(clip):
    from clipcore.lab import honesty
    from clipcore.schemas import RerankMode

    collections = [
        honesty.build_collection(clip, None, renderer, 100 + i)
        for i, renderer in enumerate(("alt", "third", "alt", "third"))
    ]
    rows = honesty.no_match_study(clip, collections, RerankMode.none)
    (curve,) = honesty.curves(rows, [honesty.DEFAULT_Z])
    assert curve["off_topic_refused"] >= MIN_OFF_TOPIC_REFUSED, curve
    assert curve["in_domain_answered"] >= MIN_IN_DOMAIN_ANSWERED, curve

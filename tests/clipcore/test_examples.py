"""The page's example pictures are what ``python -m clipcore.lab.examples`` renders."""

from __future__ import annotations

import json

import numpy as np
from PIL import Image

from clipcore.lab.examples import EXAMPLES, OUT, manifest, render
from clipcore.model_card import DOMAIN_FILE
from clipcore.models import EMBEDDED_CLIP_DIR


def test_the_committed_examples_are_a_fresh_render() -> None:
    assert json.loads((OUT / "examples.json").read_text()) == manifest()
    for example in EXAMPLES:
        committed = np.asarray(Image.open(OUT / example.file).convert("RGB"))
        assert np.array_equal(committed, np.asarray(render(example))), example.file
        assert (OUT / example.file).stat().st_size < 8 * 1024, "keep the page's examples small"


def test_every_example_shows_only_what_the_demo_model_knows() -> None:
    domain = json.loads((EMBEDDED_CLIP_DIR / DOMAIN_FILE).read_text())
    for example in EXAMPLES:
        assert example.expected in example.labels
        # The page's labels box splits on commas and new lines (one label per item).
        assert not any("," in label or "\n" in label for label in example.labels), example.name
        for colour, shape in example.shows:
            assert colour in domain["colours"] and shape in domain["shapes"], example.name


def test_the_demo_model_gives_each_example_its_expected_label() -> None:
    """What the page promises a newcomer: one click, a correct answer (also checked e2e)."""
    from clipcore.classify import build_zero_shot_classifier
    from clipcore.clip_model import load_clip
    from clipcore.encode import embed_images

    clip = load_clip("embedded", "cpu")
    for example in EXAMPLES:
        image = Image.open(OUT / example.file).convert("RGB")
        labels = build_zero_shot_classifier(clip, example.labels, [example.prompt_template])
        probabilities = clip.scoring.probabilities(embed_images(clip, [image]), labels)
        top = int(probabilities[0].argmax())
        assert example.labels[top] == example.expected, example.name
        assert float(probabilities[0, top]) > 0.8, example.name

"""The robustness study runs on the shipped model and reports a share for every cell."""

from __future__ import annotations

import json

import numpy as np

from clipcore.lab import robustness
from clipcore.models import EMBEDDED_CLIP_DIR


def test_runs_on_the_shipped_model(tmp_path):
    md, js = tmp_path / "table.md", tmp_path / "figures.json"
    args = ["--model", str(EMBEDDED_CLIP_DIR), "--count", "3", "--markdown", str(md)]
    assert robustness.main([*args, "--json", str(js)]) == 0
    results = json.loads(js.read_text())
    for family in robustness.FAMILIES:
        for renderer in robustness.RENDERERS:
            cell = results[family][renderer]
            assert set(cell) == {"colour", "shape", "colour_shape"}
            assert all(0.0 <= v <= 1.0 for v in cell.values())
    text = md.read_text()
    assert all(f"| {f} |" in text for f in robustness.FAMILIES)


def test_families_are_what_they_say():
    clean = robustness.family_set("clean", "third", 4)
    jpeg = robustness.family_set("jpeg-15", "third", 4, clean=clean)
    assert jpeg[1] == clean[1]  # the post-processed families are the clean images, changed
    assert not np.array_equal(np.asarray(jpeg[0][0]), np.asarray(clean[0][0]))
    near, _ = robustness.family_set("near-size", "main", 6)
    assert all(48 <= im.width <= 64 and im.width == im.height for im in near)
    near, _ = robustness.family_set("near-size", "alt", 6, input_size=96)
    assert all(96 <= im.width <= 128 and im.width == im.height for im in near)
    rng = np.random.default_rng(0)
    casts = [robustness._scene_kwargs("cast-bg", "alt", rng)["background"] for _ in range(300)]
    spread = np.array([max(c) - min(c) for c in casts])
    assert spread.max() <= 40 and np.mean(spread >= 20) > 0.6  # a faint cast, mostly visible
    tinted = robustness._scene_kwargs("tinted-bg", "third", rng)
    assert tinted["background"] in robustness.TEXTURED["third"] and len(tinted["tint"]) == 3

"""clipq plan, in-process: a folder in, a bundle out, and what it decided on stdout."""

from __future__ import annotations

import ast
import io
import json
import subprocess
from pathlib import Path

import numpy as np
from PIL import Image

from clipq.cli import main


def write_photos(folder: Path, count: int) -> list[str]:
    folder.mkdir()
    rng = np.random.default_rng(0)
    names = []
    for i in range(count):
        pixels = rng.integers(0, 255, (60, 80, 3), dtype=np.uint8)
        image = Image.fromarray(pixels).resize((640, 480), Image.Resampling.BICUBIC)
        buffer = io.BytesIO()
        image.save(buffer, format="JPEG", quality=90)
        names.append(f"frame_{i:03d}.jpg")
        (folder / names[-1]).write_bytes(buffer.getvalue())
    (folder / "notes.txt").write_text("not an image: a folder's other files are skipped")
    return names


def test_plan_writes_a_runnable_bundle(capsys, tmp_path: Path, random_clip_dir: Path) -> None:
    names = write_photos(tmp_path / "photos", 10)
    out = tmp_path / "plan"
    code = main(
        ["plan", str(tmp_path / "photos"), "--out", str(out), "-k", "3", "--quiet",
         "--model", str(random_clip_dir)]
    )  # fmt: skip
    printed = capsys.readouterr()
    assert code == 0, printed.err
    assert "matcher:" in printed.out and "of 45 exhaustive" in printed.out
    result = json.loads((out / "plan.json").read_text())
    assert [image["filename"] for image in result["images"]] == names
    pairs = {tuple(line.split(" ")) for line in (out / "pairs.txt").read_text().splitlines()}
    assert pairs == {(p["image0"], p["image1"]) for p in result["shortlist"]["pairs"]}
    assert 3 * 10 / 2 <= len(pairs) <= 3 * 10
    if (out / "run_hloc.py").exists():  # where a matcher of the dataset's scenes has hloc
        ast.parse((out / "run_hloc.py").read_text())
    for script in ("run_colmap.sh", "run_glomap.sh"):
        assert (out / script).stat().st_mode & 0o111
        subprocess.run(["bash", "-n", str(out / script)], check=True)


def test_plan_needs_two_images(capsys, tmp_path: Path) -> None:
    write_photos(tmp_path / "photos", 1)
    assert main(["plan", str(tmp_path / "photos"), "--out", str(tmp_path / "plan")]) == 2
    assert "two or more images" in capsys.readouterr().err

"""The clipq command line, in-process, in its three output formats."""

from __future__ import annotations

import csv
import io
import json
import re
from pathlib import Path

import numpy as np
import pytest

from clipq.cli import main
from clipq.cli.imports import part_rows_of
from tests.support import png_bytes


@pytest.fixture
def images(tmp_path: Path) -> list[Path]:
    paths = [tmp_path / "office.png", tmp_path / "street.png"]
    paths[0].write_bytes(png_bytes((200, 200, 200)))
    paths[1].write_bytes(png_bytes((40, 170, 60)))
    return paths


def run(capsys, *args: str) -> tuple[int, str, str]:
    code = main(["scenes", "--quiet", *args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_text_output_one_line_per_image(capsys, images, random_clip_dir) -> None:
    code, out, err = run(capsys, "--model", str(random_clip_dir), *map(str, images))
    assert code == 0, err
    lines = out.splitlines()
    pattern = r"^(office|street)\.png\s+[a-z_]+ \(\d+\.\d%\)  → \S+"
    assert re.match(pattern, lines[0]) and re.match(pattern, lines[1])
    assert "2 images:" in out and "overall:" in out


def test_all_scores_and_csv(capsys, images, random_clip_dir) -> None:
    code, out, _ = run(
        capsys, "--model", str(random_clip_dir), "--output", "csv", "--all", *map(str, images)
    )
    rows = list(csv.DictReader(io.StringIO(out)))
    assert code == 0 and [r["filename"] for r in rows] == ["office.png", "street.png"]
    scene_columns = ["indoor_small", "indoor_large", "outdoor", "close_up", "far_away"]
    for row in rows:
        assert sum(float(row[c]) for c in [*scene_columns, "glass_shiny"]) == pytest.approx(
            1, abs=1e-3
        )
        assert float(row["confidence"]) == pytest.approx(float(row[row["scene"]]), abs=1e-4)


def test_json_output_and_speed(capsys, images, random_clip_dir) -> None:
    code, out, _ = run(
        capsys, "--model", str(random_clip_dir), "-o", "json", "--speed", "fast", *map(str, images)
    )
    document = json.loads(out)
    assert code == 0 and document["speed"] == "fast"
    assert document["summary"]["total_images"] == 2
    assert len(document["images"]) == 2


def test_unreadable_files_get_an_error_line_and_exit_1(
    capsys, images, random_clip_dir, tmp_path
) -> None:
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"not an image at all")
    code, out, err = run(
        capsys, "--model", str(random_clip_dir), str(images[0]), str(broken), "missing.png"
    )
    assert code == 1
    assert out.startswith("office.png")
    errors = err.strip().splitlines()
    assert len(errors) == 2
    assert "broken.png" in errors[0] and "missing.png" in errors[1]


def test_a_photograph_is_said_to_be_out_of_the_models_domain(capsys, tmp_path: Path) -> None:
    """The embedded demo model and a real photograph: the line and the summary say so."""
    from clipcore.lab.photos import photograph

    photo, shape = tmp_path / "coffee.jpg", tmp_path / "red-circle.png"
    photograph("coffee").save(photo)
    shape.write_bytes(
        (Path(__file__).parents[2] / "api/static/examples/red-circle.png").read_bytes()
    )
    code, out, err = run(capsys, str(photo), str(shape))
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0].startswith("coffee.jpg") and "out of the model's domain" in lines[0]
    assert lines[1].startswith("red-circle.png") and "out of the model's domain" not in lines[1]
    assert "warning: 1 of 2 images look like nothing the loaded model knows" in out


def test_import_parts_are_48_mb_unless_a_resumed_file_had_others(tmp_path) -> None:
    npy = tmp_path / "img_emb_0.npy"
    np.save(npy, np.zeros((10, 512), np.float16))
    assert part_rows_of(npy, set()) == 49_152  # 48 MB of 512-d float16
    np.save(npy, np.zeros((10, 1024), np.float16))
    assert part_rows_of(npy, set()) == 24_576
    # parts an older run sent keep their size, or the resumed ranges would overlap them
    done = {"img_emb_1.npy:0-100", "img_emb_0.npy:32768-65536", "img_emb_0.npy:0-32768"}
    assert part_rows_of(npy, done) == 32_768

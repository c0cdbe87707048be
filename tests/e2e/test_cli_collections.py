"""clipq ingest / search / evaluate against the running service, as a user runs them."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
from PIL import Image

from clipq.cli.cifar10 import write_cifar10_like
from tests.e2e.conftest import Service

CLIPQ = str(Path(sys.executable).parent / "clipq")


def clipq(service: Service, *args: str, stdin: str = "") -> subprocess.CompletedProcess:
    command = [CLIPQ, args[0], "--server", service.base_url, "-q", *args[1:]]
    return subprocess.run(command, input=stdin, capture_output=True, text=True, timeout=300)


def test_cifar10_ingest_interactive_search_with_grid_and_evaluate(
    service: Service, tmp_path: Path
) -> None:
    rng = np.random.default_rng(1)
    images = rng.integers(0, 255, size=(12, 32, 32, 3), dtype=np.uint8)
    write_cifar10_like(tmp_path / "cifar", images, [0, 1, 2] * 4, ["airplane", "cat", "ship"])

    done = clipq(service, "ingest", "-c", "cifar-demo", "--cifar10", str(tmp_path / "cifar"))
    assert done.returncode == 0, done.stderr
    assert "cifar-demo: 12 added, 0 duplicates, 0 failed" in done.stdout

    grid = tmp_path / "grid.png"
    done = clipq(
        service, "search", "-c", "cifar-demo", "-k", "3", "--rerank", "crops",
        "--min-score", "-1", "--grid", str(grid),
        stdin="a photo of a cat\n\nexit\nnever reached\n",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert [f"{rank}. img_" in done.stdout for rank in (1, 2, 3, 4)] == [True] * 3 + [False]
    assert done.stdout.count("query> ") == 3  # the blank line re-prompts; "exit" stops
    assert "wrote" in done.stdout and Image.open(grid).size[0] >= 3 * 150

    done = clipq(service, "search", "-c", "cifar-demo", "--min-score", "1", "--query", "x")
    assert done.stdout.startswith("No match")

    picture = tmp_path / "mine.png"
    Image.fromarray(images[4]).save(picture)
    first_id = service.http.get("/v1/collections").json()
    cifar = next(c for c in first_id if c["name"] == "cifar-demo")["id"]
    an_id = service.http.get(f"/v1/collections/{cifar}/images").json()["images"][0]["id"]
    done = clipq(
        service, "search", "-c", "cifar-demo", "-k", "2",
        "--like", str(picture), "--like", an_id, "--like", "neither",
    )  # fmt: skip
    assert done.returncode == 1 and "neither: neither an image file nor an image id" in done.stderr
    assert "like mine.png:" in done.stdout and f"like image {an_id}:" in done.stdout
    assert done.stdout.count("  1. img_") == 2 and done.stdout.count("  2. img_") == 2

    done = clipq(service, "evaluate", "-c", "cifar-demo", "--ks", "1,5")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == "cifar-demo: 12 images, 3 queries"
    assert lines[1].split() == ["rerank", "R@1", "R@5", "MRR"]
    assert [line.split()[0] for line in lines[2:4]] == ["none", "crops"]


def test_ingest_reports_unreadable_files_and_exits_1(service: Service, tmp_path: Path) -> None:
    good, bad = tmp_path / "good.png", tmp_path / "bad.png"
    Image.new("RGB", (20, 20), (9, 9, 9)).save(good)
    bad.write_text("not an image")
    done = clipq(
        service, "ingest", "-c", "files", "--label", "grey", str(good), str(bad), "nope.png"
    )
    assert done.returncode == 1
    assert "files: 1 added, 0 duplicates, 1 failed" in done.stdout
    assert "bad.png" in done.stderr and "nope.png" in done.stderr


def test_unknown_collection_is_one_error_line(service: Service) -> None:
    done = clipq(service, "evaluate", "-c", "no-such-collection")
    assert done.returncode == 2
    assert done.stderr.strip() == "error: no collection 'no-such-collection'"

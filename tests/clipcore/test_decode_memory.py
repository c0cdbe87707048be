"""Decoding a batch of ~40 Mpx PNGs holds about one full-size picture at a time, not the batch.

Pillow allocates pixels in C, where tracemalloc does not look, so each case runs in a
fresh process and reads its RSS high-water mark before and after.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parents[2]
SIDE = 6324  # 40.0 M pixels, within the default limit
IMAGES = 4
# A decoded RGB picture takes 4 bytes a pixel in Pillow: 153 MiB here. Holding two of them
# at most leaves room for the allocator; holding the batch (before: all four, and the
# processor's copies of them) is over 1.3 GiB.
BOUND_MIB = 2 * SIDE * SIDE * 4 / 2**20

CHILD = """
import json, os, resource, sys, threading, time
from clipcore.batching import Upload, prepare_batch
from clipcore.clip_model import load_clip
from clipcore.detector import load_detector
from clipcore.ingest import CropSettings, prepare_images

path, count, png = sys.argv[1], int(sys.argv[2]), open(sys.argv[3], "rb").read()
stop_mib = float(sys.argv[4])
clip = load_clip("embedded", "cpu")
detector = load_detector("embedded")
uploads = [Upload(f"{i}.png", f"sha{i}", png) for i in range(count)]
peak = lambda: resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
before = peak()

def watch():  # code that holds the whole batch would take GiBs (ingest: 15): stop it early
    while True:
        status = open("/proc/self/status").read().split("VmRSS:")[1]
        if int(status.split()[0]) / 1024 - before > stop_mib:
            print(json.dumps({"added_mib": peak() - before, "stopped": True}), flush=True)
            os._exit(0)
        time.sleep(0.005)

threading.Thread(target=watch, daemon=True).start()
if path == "prepare_batch":
    ok = len(prepare_batch(clip, uploads, 0, 40_000_000).indices)
else:
    results = prepare_images(
        clip, detector, uploads, crops=CropSettings(), batch_size=32, max_pixels=40_000_000
    )
    ok = sum(hasattr(item, "embedding") for item in results)
print(json.dumps({"added_mib": peak() - before, "ok": ok}), flush=True)
"""


@pytest.fixture(scope="module")
def flat_png(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 6,324 × 6,324 PNG of one colour: 40 M pixels in ~130 KB."""
    path = tmp_path_factory.mktemp("bomb") / "flat.png"
    Image.new("RGB", (SIDE, SIDE), (40, 160, 90)).save(path, format="PNG")
    assert path.stat().st_size < 200_000
    return path


@pytest.mark.parametrize("path", ["prepare_batch", "prepare_images"])
def test_a_batch_of_40_mpx_pngs_holds_one_full_size_picture_at_a_time(
    path: str, flat_png: Path
) -> None:
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
    }
    done = subprocess.run(
        [sys.executable, "-c", CHILD, path, str(IMAGES), str(flat_png), str(4 * BOUND_MIB)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    measured = json.loads(done.stdout.strip().splitlines()[-1])
    assert measured["added_mib"] < BOUND_MIB, measured
    assert measured["ok"] == IMAGES

"""Peak memory of decoding the worst-case upload: as many ~40 Mpx PNGs as one request holds.

    python -m bench.decode_memory [--quick] [--before DIR]

A 6,324 × 6,324 PNG of flat colour is 40 M pixels (just within ``CLIPQ_MAX_IMAGE_PIXELS``)
in ~130 KB, so one ``CLIPQ_MAX_UPLOAD_BYTES`` (64 MiB) request holds ~500 of them, capped
by ``CLIPQ_MAX_FILES_PER_JOB`` (500). Each row is one fresh process that loads the embedded
models, then decodes and pre-processes N of those PNGs at the default batch size (32)
through the code a worker runs: ``embed_uploads`` (classify and scenes) or ``prepare_images``
(ingest, with the embedded detector). Its peak is the process's RSS high-water mark
(``ru_maxrss``); "added" is that peak minus the high-water mark before the images.

``--before DIR`` runs the same rows against the clipcore in ``DIR`` as well (e.g. the
previous commit: ``git archive HEAD~1 clipcore | tar -x -C /tmp/before``), on fewer images:
there every image of a batch is decoded at full size, and a guard ends a process whose
RSS passes ``--guard-gib`` rather than let it take the machine.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from PIL import Image

from bench.common import ROOT, machine, table

SIDE = 6324  # 6,324² = 39,992,976 pixels, within the default limit of 40,000,000
MAX_UPLOAD_BYTES = 64 * 1024 * 1024
MAX_FILES_PER_JOB = 500
BATCH_SIZE = 32
MAX_PIXELS = 40_000_000
DISTINCT = 4  # different colours; the rest of a request repeats them (decoding costs the same)


def flat_pngs(folder: Path) -> list[Path]:
    """``DISTINCT`` flat-colour 6,324² PNGs written to ``folder`` (reused when present)."""
    paths = []
    for number in range(DISTINCT):
        path = folder / f"flat-{SIDE}-{number}.png"
        if not path.exists():
            colour = (40 + 50 * number, 200 - 40 * number, 90)
            Image.new("RGB", (SIDE, SIDE), colour).save(path, format="PNG")
        paths.append(path)
    return paths


def images_per_request(png_bytes: int) -> int:
    """How many such PNGs one request carries: the byte limit, then the file-count limit."""
    return min(MAX_UPLOAD_BYTES // png_bytes, MAX_FILES_PER_JOB)


def peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def guard(limit_gib: float) -> None:
    """End this process, with a JSON line saying so, once its RSS passes ``limit_gib``."""

    def watch() -> None:
        while True:
            status = Path("/proc/self/status").read_text()
            rss_kib = next(int(x.split()[1]) for x in status.splitlines() if x[:6] == "VmRSS:")
            if rss_kib / 2**20 > limit_gib:
                print(json.dumps({"exceeded_gib": limit_gib, "peak_mib": peak_mib()}), flush=True)
                os._exit(3)
            time.sleep(0.02)

    threading.Thread(target=watch, daemon=True).start()


def measure_one(path: str, count: int, files: list[Path], code: str | None) -> dict[str, float]:
    """In this process: load the embedded models, run ``count`` PNGs through ``path``."""
    if code:
        sys.path.insert(0, code)  # the clipcore to measure; nothing of it is imported yet
    import torch

    from clipcore.batching import Upload, embed_uploads
    from clipcore.clip_model import load_clip
    from clipcore.detector import load_detector
    from clipcore.ingest import CropSettings, prepare_images

    clip = load_clip("embedded", "cpu")
    detector = load_detector("embedded")
    datas = [file.read_bytes() for file in files]
    uploads = [Upload(f"{i}.png", f"sha{i}", datas[i % len(datas)]) for i in range(count)]
    baseline = peak_mib()
    started = time.perf_counter()
    if path == "embed_uploads":
        results = embed_uploads(clip, uploads, batch_size=BATCH_SIZE, max_pixels=MAX_PIXELS)
        ok = sum(isinstance(item, torch.Tensor) for item in results)
    else:
        prepared = prepare_images(
            clip,
            detector,
            uploads,
            crops=CropSettings(),
            batch_size=BATCH_SIZE,
            max_pixels=MAX_PIXELS,
        )
        ok = sum(hasattr(item, "embedding") for item in prepared)
    seconds = time.perf_counter() - started
    return {"baseline_mib": baseline, "peak_mib": peak_mib(), "seconds": seconds, "ok": ok}


def run_one(
    path: str, count: int, files: list[Path], code: str | None, guard_gib: float
) -> dict[str, object]:
    command = [sys.executable, "-m", "bench.decode_memory", "--one", path, str(count)]
    command += ["--guard-gib", str(guard_gib), "--files", *map(str, files)]
    if code:
        command += ["--code", code]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
    lines = done.stdout.strip().splitlines()
    if not lines:
        raise RuntimeError(f"{path} × {count} gave nothing:\n{done.stderr[-3000:]}")
    return {"path": path, "images": count, "code": code or "this checkout"} | json.loads(lines[-1])


def row(result: dict) -> list[object]:
    count = int(result["images"])
    if "exceeded_gib" in result:
        peak = f"> {result['exceeded_gib']:.0f} GiB (stopped)"
        return [result["code"], result["path"], count, peak, "", "", ""]
    added = result["peak_mib"] - result["baseline_mib"]
    seconds = result["seconds"]
    return [
        result["code"],
        result["path"],
        count,
        f"{result['peak_mib']:,.0f}",
        f"{added:,.0f}",
        f"{seconds:.1f}",
        f"{1000 * seconds / count:.0f}",
    ]


def main(quick: bool = False, before: str | None = None, guard_gib: float = 8.0) -> list[dict]:
    folder = Path(tempfile.gettempdir()) / "clipq-bench-decode"
    folder.mkdir(exist_ok=True)
    files = flat_pngs(folder)
    size = max(file.stat().st_size for file in files)
    worst = images_per_request(size)
    print(
        f"{SIDE}×{SIDE} flat PNG: {size / 1024:.0f} KiB, {SIDE * SIDE / 1e6:.1f} M pixels; "
        f"{MAX_UPLOAD_BYTES // size} fit in {MAX_UPLOAD_BYTES >> 20} MiB, "
        f"capped at {MAX_FILES_PER_JOB} files: {worst} per request"
    )
    counts = [8, 32, 64] if quick else [8, 32, 128, worst]
    runs = [(path, n, None) for path in ("embed_uploads", "prepare_images") for n in counts]
    if before:
        small = [2, 4, 8] if quick else [4, 8, 16]
        runs += [(path, n, before) for path in ("embed_uploads", "prepare_images") for n in small]
    results = []
    for path, count, code in runs:
        results.append(run_one(path, count, files, code, guard_gib))
        print(" ", *row(results[-1]), flush=True)
    print(f"\n== decode memory: N × {SIDE}² flat PNGs, batch {BATCH_SIZE}, embedded models ==")
    header = ["code", "path", "images", "peak RSS MiB", "added MiB", "seconds", "ms/image"]
    print(table([row(r) for r in results], header))
    return results


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer images")
    parser.add_argument("--before", help="also measure the clipcore in this folder")
    parser.add_argument("--guard-gib", type=float, default=8.0, help="stop a run past this RSS")
    parser.add_argument("--one", nargs=2, metavar=("PATH", "COUNT"), help=argparse.SUPPRESS)
    parser.add_argument("--files", nargs="*", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--code", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        guard(args.guard_gib)
        print(json.dumps(measure_one(args.one[0], int(args.one[1]), args.files, args.code)))
    else:
        print(machine())
        main(args.quick, args.before, args.guard_gib)

"""Benchmark 4: text→image search latency and worker memory by collection size.

    python -m bench.retrieval_scaling [--quick]

For 10 k, 100 k and 1 M stored embeddings (512 dimensions, unit vectors clustered around
2,000 centres as a collection's are), a fresh process builds the
:class:`clipcore.retrieval.CollectionIndex` a worker holds, both ways: ``exact`` (fp32
rows, one matrix-vector product and a top-k per query) and ``approximate`` (the FAISS
index of :mod:`clipcore.vector_index`, with the service's default nprobe and refine), and
times :func:`clipcore.retrieval.search` (top 10) for held-out queries, with the recall@10
of the approximate answers against the exact ones. Memory is what the index holds
(``CollectionIndex.nbytes``). The curve is drawn to
``bench/out/retrieval_scaling.png``.
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import time
from pathlib import Path

from PIL import Image, ImageDraw

from bench.common import OUT, ROOT, machine, median, percentile, table

DIM = 512
QUERIES = 40
MODES = ("exact", "approximate")


def measure_one(size: int, mode: str) -> dict[str, float]:
    """In this process: build an index of ``size`` rows, time searches, read memory."""

    import numpy as np
    import torch

    from bench.ann_index import clustered
    from clipcore.retrieval import CollectionIndex, search
    from clipcore.vector_index import IndexPolicy
    from clipq.settings import Settings

    torch.set_num_threads(2)
    rng = np.random.default_rng(size)
    centres = rng.standard_normal((2_000, DIM)).astype(np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    queries = torch.from_numpy(clustered(rng, centres, QUERIES + 3))
    rows = torch.from_numpy(clustered(rng, centres, size))
    truth = (queries @ rows.T).topk(10, dim=1).indices.tolist()
    defaults = Settings()
    policy = IndexPolicy(
        exact_below=1 if mode == "approximate" else 2**62,
        nprobe=defaults.index_nprobe,
        refine=defaults.index_refine,
    )
    index = CollectionIndex(policy=policy)
    started = time.perf_counter()
    index.extend([f"img{i}" for i in range(size)], rows, torch.empty(0, 0), torch.empty(0), 1)
    build = time.perf_counter() - started
    del rows
    times, recall = [], []
    for number, query in enumerate(queries):
        started = time.perf_counter()
        hits = search(index, query, top_k=10)
        if number >= 3:  # the first few warm caches and thread pools
            times.append((time.perf_counter() - started) * 1000)
        recall.append(len({h.row for h in hits} & set(truth[number])) / 10)
    return {
        "size": size,
        "mode": mode,
        "build_s": build,
        "p50_ms": median(times),
        "p95_ms": percentile(times, 95),
        "recall@10": float(np.mean(recall)),
        "index_mib": index.nbytes / 2**20,
        "bytes_per_image": index.nbytes / size,
    }


def main(folder: Path | None = None, quick: bool = False) -> list[dict[str, float]]:
    sizes = [10_000, 100_000] if quick else [10_000, 100_000, 1_000_000]
    results = []
    for size in sizes:
        for mode in MODES:
            command = [sys.executable, "-m", "bench.retrieval_scaling", "--one", str(size), mode]
            output = subprocess.run(command, cwd=ROOT, check=True, capture_output=True, text=True)
            results.append(json.loads(output.stdout.strip().splitlines()[-1]))
    exact = {r["size"]: r for r in results if r["mode"] == "exact"}
    rows = [
        [
            f"{int(r['size']):,}",
            r["mode"],
            r["build_s"],
            r["p50_ms"],
            r["p95_ms"],
            r["recall@10"],
            r["bytes_per_image"],
            exact[r["size"]]["p50_ms"] / r["p50_ms"],
        ]
        for r in results
    ]
    print("\n== 4. retrieval scaling: top 10, 512-d, one query at a time ==")
    header = ["embeddings", "mode", "build s", "p50 ms", "p95 ms", "recall@10", "B/image"]
    print(table(rows, [*header, "speed-up vs exact"]))
    OUT.mkdir(parents=True, exist_ok=True)
    plot(results, OUT / "retrieval_scaling.png")
    print(f"plot: {(OUT / 'retrieval_scaling.png').relative_to(ROOT)}")
    return results


def plot(results: list[dict[str, float]], path: Path) -> None:
    """Two log-log panels, search latency and memory against collection size (Pillow only)."""
    width, height, margin = 1000, 420, 70
    image = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(image)
    sizes = [r["size"] for r in results]
    blue, red = (31, 119, 180), (214, 39, 40)
    panels = [
        ("search p50 (ms)", [("exact", "p50_ms", blue), ("approximate", "p50_ms", red)]),
        ("index (MiB)", [("exact", "index_mib", blue), ("approximate", "index_mib", red)]),
    ]
    panel_width = (width - margin) // 2
    for number, (title, series) in enumerate(panels):
        left = margin + number * panel_width
        box = (left, 40, left + panel_width - margin, height - margin)
        values = [r[key] for _, key, _ in series for r in results if r[key] > 0]
        y_range = _decades(min(values), max(values))
        x_range = _decades(min(sizes), max(sizes))
        draw.rectangle(box, outline="black")
        draw.text((box[0], 15), title + " vs stored embeddings (log-log)", fill="black")
        size_ticks(draw, box, x_range)
        for exponent in range(int(y_range[0]), int(y_range[1]) + 1):
            y = _scale(10**exponent, y_range, box[3], box[1])
            draw.line((box[0] - 5, y, box[0], y), fill="black")
            draw.text((box[0] - 45, y - 6), f"{10**exponent:g}", fill="black")
        for row, (label, key, colour) in enumerate(series):
            points = [
                (
                    _scale(r["size"], x_range, box[0], box[2]),
                    _scale(r[key], y_range, box[3], box[1]),
                )
                for r in results
                if r["mode"] == label
            ]
            draw.line(points, fill=colour, width=3)
            for x, y in points:
                draw.ellipse((x - 4, y - 4, x + 4, y + 4), fill=colour)
            draw.text((box[0] + 10, box[1] + 10 + 15 * row), label, fill=colour)
    draw.text((margin, height - 25), machine()[:150], fill="gray")
    image.save(path)


def size_ticks(draw: ImageDraw.ImageDraw, box: tuple, x_range: tuple[float, float]) -> None:
    """The decades of collection size under a panel's x axis."""
    for exponent in range(int(x_range[0]), int(x_range[1]) + 1):
        x = _scale(10**exponent, x_range, box[0], box[2])
        draw.line((x, box[3], x, box[3] + 5), fill="black")
        draw.text((x - 12, box[3] + 8), f"1e{exponent}", fill="black")


def _decades(low: float, high: float) -> tuple[float, float]:
    bottom, top = math.floor(math.log10(low)), math.ceil(math.log10(high) - 1e-9)
    return bottom, max(top, bottom + 1)


def _scale(value: float, decades: tuple[float, float], start: float, end: float) -> float:
    fraction = (math.log10(value) - decades[0]) / (decades[1] - decades[0])
    return start + fraction * (end - start)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="10 k and 100 k only")
    parser.add_argument("--one", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(measure_one(int(args.one[0]), args.one[1])))
    else:
        print(machine())
        main(quick=args.quick)

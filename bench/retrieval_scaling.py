"""Benchmark 4: exact text→image search latency and worker memory by collection size.

    python -m bench.retrieval_scaling [--quick]

For 10 k, 100 k and 1 M stored embeddings (synthetic unit vectors, 512 dimensions), a
fresh process builds the :class:`clipcore.retrieval.CollectionIndex` a worker holds (fp32
rows, as ``worker.collections`` keeps them) and times :func:`clipcore.retrieval.search`
(top 10, exact: one matrix-vector product and a top-k) for random unit queries. Memory is
that process's resident set before and after the index is built. The curve is drawn to
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

from bench.common import OUT, ROOT, machine, median, percentile, rss_mib, table

DIM = 512
QUERIES = 40


def measure_one(size: int) -> dict[str, float]:
    """In this process: build an index of ``size`` rows, time searches, read memory."""
    import os

    import torch

    from clipcore.retrieval import CollectionIndex, search

    torch.manual_seed(size)
    baseline = rss_mib(os.getpid())
    index = CollectionIndex()
    rows = torch.randn(size, DIM)
    rows /= rows.norm(dim=1, keepdim=True)
    index.extend([f"img{i}" for i in range(size)], rows, torch.empty(0, 0), torch.empty(0), 1)
    del rows
    loaded = rss_mib(os.getpid())
    queries = torch.randn(QUERIES + 3, DIM)
    queries /= queries.norm(dim=1, keepdim=True)
    times = []
    for number, query in enumerate(queries):
        started = time.perf_counter()
        search(index, query, top_k=10)
        if number >= 3:  # the first few warm caches and thread pools
            times.append((time.perf_counter() - started) * 1000)
    return {
        "size": size,
        "p50_ms": median(times),
        "p95_ms": percentile(times, 95),
        "index_mib": index.nbytes / 2**20,
        "rss_mib": loaded,
        "rss_baseline_mib": baseline,
    }


def main(folder: Path | None = None, quick: bool = False) -> list[dict[str, float]]:
    sizes = [10_000, 100_000] if quick else [10_000, 100_000, 1_000_000]
    results = []
    for size in sizes:
        command = [sys.executable, "-m", "bench.retrieval_scaling", "--one", str(size)]
        output = subprocess.run(command, cwd=ROOT, check=True, capture_output=True, text=True)
        results.append(json.loads(output.stdout.strip().splitlines()[-1]))
    rows = [
        [
            f"{int(r['size']):,}",
            r["p50_ms"],
            r["p95_ms"],
            r["index_mib"],
            r["rss_mib"],
            r["rss_mib"] - r["rss_baseline_mib"],
        ]
        for r in results
    ]
    print("\n== 4. retrieval scaling: exact search, top 10, 512-d fp32, one query at a time ==")
    print(table(rows, ["embeddings", "p50 ms", "p95 ms", "index MiB", "RSS MiB", "RSS added"]))
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
    blue, red, green, purple = (31, 119, 180), (214, 39, 40), (44, 160, 44), (148, 103, 189)
    panels = [
        ("search latency (ms)", [("p50", "p50_ms", blue), ("p95", "p95_ms", red)]),
        ("memory (MiB)", [("process RSS", "rss_mib", green), ("index", "index_mib", purple)]),
    ]
    panel_width = (width - margin) // 2
    for number, (title, series) in enumerate(panels):
        left = margin + number * panel_width
        box = (left, 40, left + panel_width - margin, height - margin)
        values = [r[key] for _, key, _ in series for r in results]
        y_range = _decades(min(values), max(values))
        x_range = _decades(min(sizes), max(sizes))
        draw.rectangle(box, outline="black")
        draw.text((box[0], 15), title + " vs stored embeddings (log-log)", fill="black")
        for exponent in range(int(x_range[0]), int(x_range[1]) + 1):
            x = _scale(10**exponent, x_range, box[0], box[2])
            draw.line((x, box[3], x, box[3] + 5), fill="black")
            draw.text((x - 12, box[3] + 8), f"1e{exponent}", fill="black")
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
            ]
            draw.line(points, fill=colour, width=3)
            for x, y in points:
                draw.ellipse((x - 4, y - 4, x + 4, y + 4), fill=colour)
            draw.text((box[0] + 10, box[1] + 10 + 15 * row), label, fill=colour)
    draw.text((margin, height - 25), machine()[:150], fill="gray")
    image.save(path)


def _decades(low: float, high: float) -> tuple[float, float]:
    bottom, top = math.floor(math.log10(low)), math.ceil(math.log10(high) - 1e-9)
    return bottom, max(top, bottom + 1)


def _scale(value: float, decades: tuple[float, float], start: float, end: float) -> float:
    fraction = (math.log10(value) - decades[0]) / (decades[1] - decades[0])
    return start + fraction * (end - start)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="10 k and 100 k only")
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(measure_one(args.one)))
    else:
        print(machine())
        main(quick=args.quick)

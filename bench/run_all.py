"""Every benchmark, one after another, on one ViT-B/32-sized model: what `make bench` runs.

    python -m bench.run_all [--quick]

Each benchmark starts its own service (API + one worker on a redis-server of its own)
and prints its table; the figures also go to ``bench/out/results.json``.
"""

from __future__ import annotations

import argparse
import json
import time

from bench import cpu_options, latency, memory, retrieval_scaling, seed_way, service_vs_raw
from bench.common import OUT, machine, vit_b32_clip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, for debugging")
    args = parser.parse_args()
    started = time.perf_counter()
    where = machine()
    print(where)
    folder = vit_b32_clip()
    results = {"machine": where}
    for name, bench in (
        ("service_vs_raw", service_vs_raw),
        ("seed_way", seed_way),
        ("latency", latency),
        ("retrieval_scaling", retrieval_scaling),
        ("memory", memory),
        ("cpu_options", cpu_options),
    ):
        results[name] = bench.main(folder, quick=args.quick)
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    elapsed = time.perf_counter() - started
    print(f"\nall benchmarks: {elapsed:.0f} s; figures in bench/out/results.json")
    print(machine())


if __name__ == "__main__":
    main()

"""Benchmark 5: resident memory of the API process and of a worker with the model loaded.

    python -m bench.memory

Read from ``/proc`` after one job has run. RSS counts every page a process maps; PSS
counts a page shared by n processes as 1/n (the worker's pool child is forked from its
main process and shares pages with it), so the PSS column adds up across processes.
"""

from __future__ import annotations

from pathlib import Path

from bench.common import (
    machine,
    maps_torch,
    pss_mib,
    rss_mib,
    service,
    service_pids,
    table,
    vit_b32_clip,
    warm_up,
)


def main(folder: Path, quick: bool = False) -> dict[str, float]:
    with service(folder) as running:
        warm_up(running)
        pids = service_pids(running)
        rows, figures = [], {}
        for name in ("api", "worker main", "worker pool"):
            pid = pids[name]
            rss, pss = rss_mib(pid), pss_mib(pid)
            figures[f"{name} rss"], figures[f"{name} pss"] = rss, pss
            rows.append([name, rss, pss, "yes" if maps_torch(pid) else "no"])
        worker_pss = figures["worker main pss"] + figures["worker pool pss"]
        rows.append(["worker, both processes", "", worker_pss, ""])
    print("\n== 5. memory (MiB), after one job, ViT-B/32-sized model in fp32 ==")
    print(table(rows, ["process", "RSS", "PSS", "torch loaded"]))
    return figures | {"worker pss": worker_pss}


if __name__ == "__main__":
    print(machine())
    main(vit_b32_clip())

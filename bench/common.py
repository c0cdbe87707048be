"""What the benchmarks share: a ViT-B/32-sized CLIP, test photos, the service, memory readings.

The model is ``CLIPConfig()``'s defaults (ViT-B/32 vision tower, 12-layer text tower,
49,408-token embedding table, 151 M parameters) with random weights: it costs what the
real one costs, and loads through the same ``from_pretrained`` path from a folder. The
tokenizer is the small BPE of ``tests/support.py`` (token ids beyond it are never used).
"""

from __future__ import annotations

import argparse
import asyncio
import io
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # `python bench/x.py` as well as `python -m bench.x`
    sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402
import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

from tests.e2e.conftest import Service, private_redis, running_service, service_env  # noqa: E402

OUT = ROOT / "bench" / "out"
BATCH_SIZE = 32
LABELS = ["cat", "dog", "car", "tree", "house", "person", "bird", "boat", "flower", "mountain"]
FINAL = {"succeeded", "failed", "cancelled"}


def vit_b32_clip(folder: Path | None = None) -> Path:
    """A random ViT-B/32-sized CLIP saved in ``folder`` (default: a reused temporary folder)."""
    return _random_sized_clip(folder or Path(tempfile.gettempdir()) / "clipq-bench-vit-b32", {})


# openai/clip-vit-large-patch14's shapes
VIT_L14 = {
    "vision_config": {
        "hidden_size": 1024,
        "intermediate_size": 4096,
        "num_hidden_layers": 24,
        "num_attention_heads": 16,
        "patch_size": 14,
    },
    "text_config": {"hidden_size": 768, "intermediate_size": 3072, "num_attention_heads": 12},
    "projection_dim": 768,
}


def vit_l14_clip(folder: Path | None = None) -> Path:
    """A random CLIP of ViT-L/14's shapes (428 M parameters), like :func:`vit_b32_clip`."""
    return _random_sized_clip(
        folder or Path(tempfile.gettempdir()) / "clipq-bench-vit-l14", VIT_L14
    )


def _random_sized_clip(folder: Path, shape: dict) -> Path:
    marker = folder / "ready"
    if marker.exists():
        return folder
    import torch
    from transformers import CLIPConfig, CLIPModel, CLIPTokenizer

    from tests.support import build_random_clip

    build_random_clip(folder, image_size=224)  # tokenizer and a 224-px image processor
    tokenizer = CLIPTokenizer.from_pretrained(folder)
    config = CLIPConfig(
        text_config={
            **shape.get("text_config", {}),
            "eos_token_id": tokenizer.eos_token_id,
            "bos_token_id": tokenizer.bos_token_id,
            "pad_token_id": tokenizer.pad_token_id,
        },
        vision_config=shape.get("vision_config"),
        projection_dim=shape.get("projection_dim", 512),
    )
    torch.manual_seed(0)
    CLIPModel(config).save_pretrained(folder)  # replaces the tiny model's weights and config
    marker.write_text("ok\n")
    return folder


def photos(count: int, seed: int, size: tuple[int, int] = (320, 256)) -> list[bytes]:
    """``count`` distinct JPEG "photos" (smooth random colour fields), deterministic by seed."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(count):
        small = rng.integers(0, 256, (size[1] // 16, size[0] // 16, 3), dtype=np.uint8)
        image = Image.fromarray(small).resize(size, Image.Resampling.BICUBIC)
        buffer = io.BytesIO()
        image.save(buffer, format="JPEG", quality=90)
        out.append(buffer.getvalue())
    return out


@contextmanager
def service(model: Path, **overrides: str) -> Iterator[Service]:
    """The API and one worker (``--concurrency 1``) on a redis-server of their own."""
    with (
        tempfile.TemporaryDirectory(prefix="clipq-bench-") as tmp,
        private_redis(Path(tmp) / "redis", appendfsync="everysec") as server,  # as compose
    ):
        settings = {
            "CLIPQ_BATCH_SIZE": str(BATCH_SIZE),
            "CLIPQ_MAX_QUEUED_JOBS": "100000",
            # torch, as the raw figures each bench compares with; bench.cpu_runtimes sets others
            "CLIPQ_CLIP_RUNTIME": "torch",
            **overrides,
        }
        env = service_env(server.url, str(model), **settings)
        with running_service(env, Path(tmp) / "logs") as running:
            yield running


def submit_form(kind: str, images: Sequence[bytes], prefix: str) -> tuple[list, dict]:
    files = [("images", (f"{prefix}{i}.jpg", data, "image/jpeg")) for i, data in enumerate(images)]
    data = {"labels": LABELS} if kind == "classify" else {}
    return files, data


async def run_job(
    client: httpx.AsyncClient, kind: str, images: Sequence[bytes], prefix: str
) -> dict:
    """Submit a job and long-poll it to its end; the final Job."""
    files, data = submit_form(kind, images, prefix)
    response = await client.post(f"/v1/{kind}", files=files, data=data)
    response.raise_for_status()
    job = response.json()
    while job["status"] not in FINAL:
        job = (await client.get(f"/v1/jobs/{job['id']}", params={"wait": 30})).json()
    if job["status"] != "succeeded":
        raise RuntimeError(f"job {job['id']} ended {job['status']}: {job.get('error')}")
    return job


def through_service(
    base_url: str, kind: str, jobs: Sequence[Sequence[bytes]], clients: int
) -> float:
    """Seconds for ``clients`` concurrent clients to run ``jobs`` (each submits, waits, repeats)."""

    async def main() -> float:
        queue: asyncio.Queue[tuple[int, Sequence[bytes]]] = asyncio.Queue()
        for number, images in enumerate(jobs):
            queue.put_nowait((number, images))
        limits = httpx.Limits(max_connections=clients * 2)
        async with httpx.AsyncClient(base_url=base_url, timeout=120, limits=limits) as client:

            async def worker() -> None:
                while not queue.empty():
                    number, images = queue.get_nowait()
                    await run_job(client, kind, images, f"j{number}-")

            started = time.perf_counter()
            await asyncio.gather(*(worker() for _ in range(clients)))
            return time.perf_counter() - started

    return asyncio.run(main())


def warm_up(running: Service, kind: str = "classify") -> None:
    """One small job: the worker has run a forward pass and cached the label embeddings."""
    through_service(running.base_url, kind, [photos(2, seed=999)], clients=1)


# --- memory --------------------------------------------------------------------------


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def pss_mib(pid: int) -> float:
    """Proportional set size: shared pages (a forked worker's) counted once across processes."""
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
        if line.startswith("Pss:"):
            return int(line.split()[1]) / 1024
    return 0.0


def children(pid: int) -> list[int]:
    found = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        text = (task / "children").read_text().split()
        found.extend(int(child) for child in text)
    return found


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def service_pids(running: Service) -> dict[str, int]:
    """The processes of a running service: API, worker (main), worker pool child, Redis."""
    api = children(os.getpid())
    pids = {"bench client": os.getpid()}
    for pid in api:
        command = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        if "api.server" in command:
            pids["api"] = pid
        elif "celery" in command:
            pids["worker main"] = pid
            for number, child in enumerate(children(pid)):
                pids[f"worker pool{number or ''}"] = child
        elif "redis-server" in command:
            pids["redis"] = pid
    return pids


def cpu_split(pids: dict[str, int]) -> dict[str, float]:
    return {name: cpu_seconds(pid) for name, pid in pids.items()}


def batch_counts(running: Service) -> tuple[float, float]:
    """(forward passes, images embedded) so far, from the service's /metrics."""
    text = running.http.get("/metrics").text
    values = {}
    for name in ("clipq_batch_size_count", "clipq_images_embedded_total"):
        found = re.search(rf"^{name} (\S+)$", text, re.MULTILINE)
        values[name] = float(found.group(1)) if found else 0.0
    return values["clipq_batch_size_count"], values["clipq_images_embedded_total"]


@dataclass
class Phase:
    """What one measured phase cost: wall time, CPU per process, forward passes."""

    seconds: float
    cpu: dict[str, float]
    batches: float
    images: float

    @property
    def mean_batch(self) -> float:
        return self.images / self.batches if self.batches else 0.0


def measure(running: Service, kind: str, jobs: Sequence[Sequence[bytes]], clients: int) -> Phase:
    pids = service_pids(running)
    cpu, counts = cpu_split(pids), batch_counts(running)
    seconds = through_service(running.base_url, kind, jobs, clients)
    after, counts_after = cpu_split(pids), batch_counts(running)
    return Phase(
        seconds,
        {name: after[name] - cpu[name] for name in pids},
        counts_after[0] - counts[0],
        counts_after[1] - counts[1],
    )


def cpu_table(phases: dict[str, Phase]) -> str:
    """CPU seconds per process in each phase, and each as a share of the phase's wall time."""
    names = list(next(iter(phases.values())).cpu)
    rows = [
        [name, *[f"{p.cpu[name]:.2f} s ({p.cpu[name] / p.seconds:.0%})" for p in phases.values()]]
        for name in names
    ]
    rows.append(["wall", *[f"{p.seconds:.2f} s" for p in phases.values()]])
    rows.append(
        ["forward passes", *[f"{p.batches:.0f} (mean {p.mean_batch:.1f})" for p in phases.values()]]
    )
    return table(rows, ["CPU time", *phases])


def maps_torch(pid: int) -> bool:
    """Whether the process has torch's library mapped (i.e. imported torch)."""
    return "libtorch" in Path(f"/proc/{pid}/maps").read_text()


# --- reporting -----------------------------------------------------------------------


def percentile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))]


def median(values: Sequence[float]) -> float:
    return statistics.median(values)


def table(rows: Sequence[Sequence[object]], header: Sequence[str]) -> str:
    cells = [[str(c) for c in header], *[[_cell(c) for c in row] for row in rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    lines = ["  ".join(c.rjust(w) for c, w in zip(row, widths, strict=True)) for row in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _cell(value: object) -> str:
    if isinstance(value, float):
        return f"{value:,.3f}" if abs(value) < 10 else f"{value:,.1f}"
    return str(value)


def machine() -> str:
    """One line about where the figures came from, and whether the CPU was shared."""
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    memory = int(Path("/proc/meminfo").read_text().split()[1]) / 1024 / 1024
    import torch

    busy = subprocess.run(["pgrep", "-f", "clipcore.lab.train"], capture_output=True, text=True)
    note = "a training run shared the CPU" if busy.stdout.strip() else "no training run alongside"
    return (
        f"{cpu}, {os.cpu_count()} cores, {memory:.0f} GiB RAM, torch {torch.__version__} "
        f"({torch.get_num_threads()} threads), Python {platform.python_version()}; {note}"
    )


def run_alone(main: Callable[..., object], doc: str, quick_help: str = "small sizes") -> None:
    """A benchmark run on its own: ``python -m bench.<name> [--quick]``."""
    parser = argparse.ArgumentParser(description=doc.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help=quick_help)
    args = parser.parse_args()
    print(machine())
    main(vit_b32_clip(), quick=args.quick)

"""Benchmark: ingest by reference from local webdataset shards, against the raw model.

    python -m bench.ingest_by_reference [--quick] [--scale N] [--threads-per-worker N]

For the embedded CLIP (ONNX Runtime, what a CPU worker runs by default) and a ViT-B/32-sized
one (torch), in the same run:

* raw: the model alone, forward passes of pre-processed pixels (as bench.service_vs_raw),
  and the in-process pipeline an ingest runs (decode, pre-process, embed, thumbnail:
  ``clipcore.ingest.prepare_images`` without crops), both measured before and after;
* the service importing the same shards (``POST /v1/collections/{id}/imports``, no crops)
  with one worker and with two: images/s, and per worker against raw;
* what passes through the API process (its read + written bytes) and into Redis (its
  network input, and its memory growth) per ingested image;
* two workers, one killed (SIGKILL, with its pool process) while its shard is half read:
  the import finishes elsewhere, and the collection's images are exactly the shards'
  (count and SHA-256 set), with no row twice.

``--threads-per-worker N`` runs only the ViT-B/32 throughput, each worker's torch (and the
raw model) on N threads (OMP_NUM_THREADS): workers given cores of their own, which shows how
ingest scales with workers until the cores run out. ``--scale N`` runs only the last part,
on N images (small JPEGs, 160 x 128) with the embedded model, then searches the
collection: the 100,000-image run of the README.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import os
import signal
import tarfile
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from bench.common import BATCH_SIZE, machine, table, vit_b32_clip
from tests.e2e.conftest import Service, private_redis, running_service, service_env

SHARD_DIR = Path(tempfile.gettempdir()) / "clipq-bench-shards"
APPEND_EVERY = 256  # worker.sources.APPEND_EVERY: a shard's progress moves by these


@dataclass
class Shards:
    pattern: str
    count: int
    hashes: set[str]
    image_bytes: int


def write_shards(count: int, per_shard: int, size: tuple[int, int], seed: int = 0) -> Shards:
    """``count`` distinct JPEG photos in img2dataset's layout (jpg + txt + json per sample),
    ``per_shard`` a shard; reused when already written (the hashes are read back)."""
    folder = SHARD_DIR / f"{count}-{per_shard}-{size[0]}x{size[1]}-{seed}"
    shards = (count + per_shard - 1) // per_shard
    width = max(5, len(str(shards - 1)))
    pattern = str(folder / f"{{{0:0{width}d}..{shards - 1:0{width}d}}}.tar")
    done = folder / "hashes.txt"
    if done.exists():  # its first line: the mean JPEG's bytes (0 where it was not written)
        tokens = done.read_text().split()
        size = int(tokens[0]) if len(tokens) > count else 0
        return Shards(pattern, count, set(tokens[-count:]), size)
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    hashes: set[str] = set()
    written = 0
    for shard in range(shards):
        with tarfile.open(folder / f"{shard:0{width}d}.tar", "w") as tar:
            for index in range(shard * per_shard, min(count, (shard + 1) * per_shard)):
                data = _photo(rng, size)
                hashes.add(hashlib.sha256(data).hexdigest())
                written += len(data)
                key = f"{index:09d}"
                _add(tar, f"{key}.jpg", data)
                _add(tar, f"{key}.txt", f"photo {index}".encode())
                _add(
                    tar, f"{key}.json", f'{{"key": "{key}", "labels": ["l{index % 10}"]}}'.encode()
                )
    assert len(hashes) == count, "two photos came out the same"
    done.write_text("\n".join([str(written // count), *sorted(hashes)]))
    return Shards(pattern, count, hashes, written // count)


def _photo(rng: np.random.Generator, size: tuple[int, int]) -> bytes:
    small = rng.integers(0, 256, (size[1] // 16, size[0] // 16, 3), dtype=np.uint8)
    image = Image.fromarray(small).resize(size, Image.Resampling.BICUBIC)
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


def _add(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    tar.addfile(info, io.BytesIO(data))


# --- raw --------------------------------------------------------------------------------


def raw_rates(
    model: str, runtime: str, photos: list[bytes], threads: int | None = None
) -> tuple[float, float]:
    """(forward passes alone, the ingest pipeline in-process) in images/s, torch on
    ``threads`` threads (default: its own choice, every core)."""
    import torch

    from clipcore.batching import Upload
    from clipcore.clip_model import load_clip
    from clipcore.detector import load_detector
    from clipcore.encode import embed_pixels, preprocess_images
    from clipcore.images import decode_image
    from clipcore.ingest import CropSettings, prepare_images

    default_threads = torch.get_num_threads()
    torch.set_num_threads(threads or default_threads)
    clip = load_clip(model, "cpu", runtime=runtime, onnx_dir=_onnx_dir())
    images = [decode_image(d, "x.jpg", max_pixels=10**8) for d in photos[:BATCH_SIZE]]
    pixels = preprocess_images(clip, images)
    embed_pixels(clip, pixels)  # warm-up
    rounds = max(2, len(photos) // BATCH_SIZE)
    started = time.perf_counter()
    for _ in range(rounds):
        embed_pixels(clip, pixels)
    forward = rounds * BATCH_SIZE / (time.perf_counter() - started)
    detector = load_detector("embedded", "cpu")  # not run: no crops
    uploads = [Upload(f"{i}.jpg", str(i), d) for i, d in enumerate(photos)]
    prepare_images(clip, detector, uploads[:BATCH_SIZE], crops=CropSettings(per_image=0),
                   batch_size=BATCH_SIZE, max_pixels=10**8)  # fmt: skip
    started = time.perf_counter()
    prepare_images(clip, detector, uploads, crops=CropSettings(per_image=0), batch_size=BATCH_SIZE,
                   max_pixels=10**8)  # fmt: skip
    pipeline = len(photos) / (time.perf_counter() - started)
    torch.set_num_threads(default_threads)
    return forward, pipeline


def _onnx_dir() -> str:
    return str(Path(tempfile.gettempdir()) / "clipq-bench-onnx")


# --- the service ------------------------------------------------------------------------


@contextmanager
def ingest_service(
    model: str, runtime: str, workers: int, roots: Path, threads: int | None = None
) -> Iterator[Service]:
    with (
        tempfile.TemporaryDirectory(prefix="clipq-bench-") as tmp,
        private_redis(Path(tmp) / "redis", appendfsync="everysec") as server,  # as compose
    ):
        env = service_env(
            server.url,
            model,
            CLIPQ_BATCH_SIZE=str(BATCH_SIZE),
            CLIPQ_CLIP_RUNTIME=runtime,
            CLIPQ_DETECTOR_MODEL="embedded",  # no crops: never run, and nothing to download
            CLIPQ_ONNX_DIR=_onnx_dir(),
            CLIPQ_INGEST_ROOTS=str(roots),
            CLIPQ_JOB_LEASE_SECONDS="5",
            CLIPQ_MAX_IMAGES_PER_TENANT="10000000",
            CLIPQ_TASK_SOFT_TIME_LIMIT="3600",
            CLIPQ_TASK_TIME_LIMIT="3660",
        )
        if threads:  # torch's intra-op threads in each worker (read when torch starts)
            env |= {"OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
        with running_service(env, Path(tmp) / "logs", workers=workers) as running:
            yield running


@dataclass
class Run:
    seconds: float
    images: int
    api_bytes: float  # per image: read + written by the API process
    redis_in: float  # per image: Redis' network input
    redis_memory: float  # per image: Redis' memory growth
    result: dict
    collection_id: str
    attempts: list[int]


def import_shards(running: Service, shards: Shards, kill_after: int | None = None) -> Run:
    """Import the shards into a new collection and wait; with ``kill_after``, SIGKILL the
    worker of the first shard to have read that many samples (and its pool process)."""
    # a key's collection names are unique: each import a new one
    name = f"bench {uuid.uuid4().hex[:8]}"
    collection = running.http.post("/v1/collections", json={"name": name}).json()
    api = _api_pid(running)
    redis_before = _redis_numbers(running)
    api_before = _io_bytes(api)
    started = time.perf_counter()
    body = {"source": {"kind": "webdataset", "shards": [shards.pattern]}, "crops": False}
    response = running.http.post(f"/v1/collections/{collection['id']}/imports", json=body)
    assert response.status_code == 202, response.text
    job_id = response.json()["id"]
    if kill_after is not None:
        _kill_a_worker(running, job_id, kill_after)
    job = running.wait_for(job_id, timeout=24 * 3600)
    seconds = time.perf_counter() - started
    assert job["status"] == "succeeded", job
    api_after = _io_bytes(api)
    redis_after = _redis_numbers(running)
    images = job["result"]["added"]
    shown = running.http.get(
        f"/v1/collections/{collection['id']}/imports/{job_id}", params={"limit": 10000}
    ).json()
    return Run(
        seconds,
        images,
        (api_after - api_before) / max(images, 1),
        (redis_after[0] - redis_before[0]) / max(images, 1),
        (redis_after[1] - redis_before[1]) / max(images, 1),
        job["result"],
        collection["id"],
        [s["attempts"] for s in shown["shards"]],
    )


def _kill_a_worker(running: Service, job_id: str, after: int) -> None:
    deadline = time.monotonic() + 600
    while True:
        assert time.monotonic() < deadline, "no shard got going"
        shards = int(running.redis.hget(f"clipq:job:{job_id}", "shards") or 0)
        for shard in range(shards):
            key = f"clipq:job:{job_id}-{shard}"
            done, lease = running.redis.hmget(key, ["progress_done", "lease"])
            if lease and int(done or 0) >= after:
                child = int(lease.decode().split(":")[1])
                main = _parent_of(child)
                os.kill(main, signal.SIGKILL)
                os.kill(child, signal.SIGKILL)
                print(
                    f"  killed worker {main} (pool {child}) at {int(done)} samples of shard {shard}"
                )
                return
        time.sleep(0.05)


def check_exact(running: Service, run: Run, shards: Shards) -> str:
    """The collection holds exactly the shards' images: count, hashes, no row twice."""
    key = f"clipq:coll:{{{run.collection_id}}}"
    hashes = {h.decode() for h in running.redis.hkeys(f"{key}:sha")}
    rows = running.redis.lrange(f"{key}:rows", 0, -1)
    count = int(running.redis.hget(key, "image_count") or 0)
    ok = count == len(rows) == len(set(rows)) == shards.count and hashes == shards.hashes
    missing, extra = len(shards.hashes - hashes), len(hashes - shards.hashes)
    return (
        f"{count} images, {len(set(rows))} distinct rows of {len(rows)}, "
        f"{missing} missing, {extra} unexpected: {'exact' if ok else 'NOT EXACT'}"
    )


def _parent_of(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])


def _api_pid(running: Service) -> int:
    from bench.common import service_pids

    return service_pids(running)["api"]


def _io_bytes(pid: int) -> int:
    fields = dict(line.split(": ") for line in Path(f"/proc/{pid}/io").read_text().splitlines())
    return int(fields["rchar"]) + int(fields["wchar"])


def _redis_numbers(running: Service) -> tuple[int, int]:
    stats, memory = running.redis.info("stats"), running.redis.info("memory")
    return int(stats["total_net_input_bytes"]), int(memory["used_memory"])


# --- the runs ---------------------------------------------------------------------------


def throughput(
    name: str, model: str, runtime: str, count: int, threads: int | None = None
) -> list[list[object]]:
    shards = write_shards(count, per_shard=max(APPEND_EVERY, count // 8), size=(320, 256))
    photos = _first_photos(shards, min(count, 512))
    before = raw_rates(model, runtime, photos, threads)
    print(f"{name}: raw {before[0]:.1f} img/s forward, {before[1]:.1f} img/s decode+embed+thumb")
    runs = []
    for workers in (1, 2):
        with ingest_service(model, runtime, workers, SHARD_DIR, threads) as running:
            _warm(running, shards)
            runs.append((workers, import_shards(running, shards)))
            print(f"  {workers} worker(s): {runs[-1][1].images / runs[-1][1].seconds:.1f} img/s")
    after = raw_rates(model, runtime, photos, threads)
    print(f"{name}: raw after {after[0]:.1f} / {after[1]:.1f} img/s")
    # the mean of before and after, so that drift on a shared machine shows in neither alone
    forward, pipeline = (before[0] + after[0]) / 2, (before[1] + after[1]) / 2
    rows = []
    for workers, run in runs:
        rate = run.images / run.seconds
        rows.append([
            name, runtime, workers, run.images, f"{run.seconds:.1f}", f"{rate:.1f}",
            f"{forward:.0f}", f"{rate / workers / forward:.2f}", f"{pipeline:.0f}",
            f"{rate / workers / pipeline:.2f}", f"{run.api_bytes:.1f}", f"{run.redis_in:.0f}",
            f"{run.redis_memory:.0f}", shards.image_bytes,
        ])  # fmt: skip
    return rows


def _warm(running: Service, shards: Shards) -> None:
    """A first import of one small shard: every worker has its model loaded and warm."""
    small = write_shards(64, 64, size=(320, 256), seed=99)
    import_shards(running, small)


def _first_photos(shards: Shards, count: int) -> list[bytes]:
    first = sorted(Path(shards.pattern).parent.glob("*.tar"))[0]
    photos = []
    with tarfile.open(first) as tar:
        for member in tar:
            if member.name.endswith(".jpg") and len(photos) < count:
                handle = tar.extractfile(member)
                assert handle is not None
                photos.append(handle.read())
    return photos


def killed(model: str, runtime: str, count: int, size: tuple[int, int], search: bool) -> None:
    per_shard = max(APPEND_EVERY * 4, min(10_000, count // 16))
    started = time.perf_counter()
    shards = write_shards(count, per_shard=per_shard, size=size)
    print(f"{count} images in shards of {per_shard} ({shards.image_bytes} B a JPEG) made or "
          f"found in {time.perf_counter() - started:.0f} s: {shards.pattern}")  # fmt: skip
    with ingest_service(model, runtime, 2, SHARD_DIR) as running:
        _warm(running, shards)
        run = import_shards(running, shards, kill_after=APPEND_EVERY * 2)
        print(
            f"  imported in {run.seconds:.0f} s ({run.images / run.seconds:.1f} img/s, two "
            f"workers then one); shards with 2 attempts: {sum(a > 1 for a in run.attempts)}; "
            f"result {run.result}"
        )
        print("  " + check_exact(running, run, shards))
        print(
            f"  per image: {run.api_bytes:.1f} B through the API process, {run.redis_in:.0f} B "
            f"into Redis, {run.redis_memory:.0f} B of Redis memory (the JPEGs: "
            f"{shards.image_bytes} B)"
        )
        if search:
            started = time.perf_counter()
            response = running.http.post(
                f"/v1/collections/{run.collection_id}/search",
                json={"query": "a photo", "min_score": -1, "top_k": 5},
            )
            job = running.wait_for(response.json()["id"], timeout=600)
            print(
                f"  search: {job['status']}, {len(job['result']['hits'])} hits in "
                f"{time.perf_counter() - started:.1f} s (first search: the index is built)"
            )
            started = time.perf_counter()
            response = running.http.post(
                f"/v1/collections/{run.collection_id}/search",
                json={"query": "a red photo", "min_score": -1, "top_k": 5},
            )
            job = running.wait_for(response.json()["id"], timeout=600)
            print(f"  search again: {job['status']} in {time.perf_counter() - started:.2f} s")


HEADER = [
    "model",
    "runtime",
    "workers",
    "images",
    "s",
    "img/s",
    "raw fwd img/s",
    "per worker ÷ raw fwd",
    "raw pipeline img/s",
    "per worker ÷ raw pipeline",
    "API B/img",
    "Redis in B/img",
    "Redis mem B/img",
    "JPEG B",
]


def main(quick: bool = False, scale: int = 0, threads_per_worker: int = 0) -> None:
    print(machine())
    if scale:
        killed("embedded", "onnx", scale, (160, 128), search=True)
        return
    if threads_per_worker:
        name = f"ViT-B/32, {threads_per_worker} thread(s) a worker"
        count = 256 if quick else 512
        print(table(throughput(name, str(vit_b32_clip()), "torch", count, threads_per_worker),
                    HEADER))  # fmt: skip
        return
    rows = throughput("embedded", "embedded", "onnx", 1024 if quick else 4096)
    rows += throughput("ViT-B/32", str(vit_b32_clip()), "torch", 256 if quick else 768)
    print(table(rows, HEADER))
    killed("embedded", "onnx", 2048 if quick else 8192, (320, 256), search=False)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes")
    parser.add_argument("--scale", type=int, default=0, help="only the killed-worker run, at N")
    parser.add_argument(
        "--threads-per-worker", type=int, default=0,
        help="only the ViT-B/32 throughput, each worker and the raw model on N threads",
    )  # fmt: skip
    arguments = parser.parse_args()
    main(arguments.quick, arguments.scale, arguments.threads_per_worker)

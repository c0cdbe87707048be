"""Benchmark: collections at scale, from 10 k to 10 M images of 512 dimensions.

    python -m bench.collections_at_scale [--sizes 10000,...,10000000] [--service 1000000,...]

``library``: for each size, a fresh process writes the embeddings into the files a
collection keeps them in (:mod:`clipq.store.vector_files`), computes the exact top 10 of
held-out queries by scanning them, then builds what a worker builds: below the cross-over
an exact fp32 matrix, past it the approximate index (:mod:`clipcore.vector_index`: trained
on a sample, codes only, re-scoring from the memory-mapped files), timing training, adding
and extending, and single-query latency (p50 / p95, 2 threads) with recall@10 against the
exact answer. ``service``: the same embeddings written as clip-retrieval's ``img_emb``
files and imported by ``clipq import`` through the API (``POST …/embeddings``, a real
worker with CLIPQ_VECTOR_DIR), at the rate the client sees; the time until the worker has
indexed them (the ``clipq.index`` task, once the import is quiet); then find-similar
searches by image id, HTTP request to result, with their recall@10; and memory per image
in Redis (``used_memory``) and in the worker (its pool process's RSS).

The embeddings are synthetic but shaped like a collection's (:func:`bench.ann_index.clustered`:
unit vectors around 2,000 centres), generated part by part from fixed seeds, so any part
can be drawn again without holding 20 GB. Curves go to ``bench/out/collections_at_scale.png``.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
import time
from bisect import bisect_right
from dataclasses import replace
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from bench.ann_index import clustered
from bench.common import OUT, ROOT, machine, median, percentile, rss_mib, table
from bench.retrieval_scaling import _decades, _scale, size_ticks

DIM = 512
PART = 32_768  # rows generated at a time
FILE_ROWS = 1 << 20  # rows per img_emb file (a multiple of PART)
QUERIES = 100
TOP_K = 10
EXACT_BELOW = 100_000  # the service's default cross-over (CLIPQ_INDEX_EXACT_BELOW)
REFINES = (50, 25)  # candidates a hit, measured beside the default (CLIPQ_INDEX_REFINE)


def centres() -> np.ndarray:
    rng = np.random.default_rng(7)
    found = rng.standard_normal((2_000, DIM)).astype(np.float32)
    return found / np.linalg.norm(found, axis=1, keepdims=True)


def part(start: int, end: int, where: np.ndarray) -> np.ndarray:
    """Rows ``start``..``end`` of every benchmark collection, float16 (``start`` a part's)."""
    return clustered(np.random.default_rng([11, start]), where, end - start).astype(np.float16)


def parts(size: int):
    where = centres()
    for start in range(0, size, PART):
        yield start, part(start, min(start + PART, size), where)


def held_out_queries(count: int = QUERIES) -> np.ndarray:
    return clustered(np.random.default_rng(99), centres(), count)


class TopK:
    """The exact top k of each query over rows seen part by part."""

    def __init__(self, queries: np.ndarray, exclude: np.ndarray | None = None) -> None:
        self.queries, self.exclude = queries, exclude
        self.scores = np.full((len(queries), TOP_K), -np.inf, np.float32)
        self.rows = np.zeros((len(queries), TOP_K), np.int64)

    def add(self, start: int, rows: np.ndarray) -> None:
        scores = self.queries @ rows.astype(np.float32).T
        if self.exclude is not None:  # a query that is a stored row leaves itself out
            inside = (self.exclude >= start) & (self.exclude < start + len(rows))
            scores[inside, self.exclude[inside] - start] = -np.inf
        every = np.concatenate([self.scores, scores], axis=1)
        numbers = np.concatenate(
            [self.rows, np.broadcast_to(np.arange(start, start + len(rows)), scores.shape)], axis=1
        )
        order = np.argsort(-every, axis=1)[:, :TOP_K]
        self.scores = np.take_along_axis(every, order, 1)
        self.rows = np.take_along_axis(numbers, order, 1)

    def recall(self, found: list[list[int]], queries: slice = slice(None)) -> float:
        truth = self.rows[queries]
        return float(
            np.mean([len(set(f) & set(t)) / TOP_K for f, t in zip(found, truth, strict=True)])
        )


# --- the library, one size in a process of its own -------------------------------------


def library_one(size: int) -> dict[str, float]:
    import torch

    from clipcore.vector_index import ApproximateIndex, IndexPolicy
    from clipq.store.vector_files import VectorFiles

    torch.set_num_threads(2)
    # A set of queries for each setting measured: one set's candidates, once read, would
    # be cached for the next and flatter it.
    settings = 1 + len(REFINES)
    queries = held_out_queries(QUERIES * settings)
    truth = TopK(queries)
    with tempfile.TemporaryDirectory(prefix="clipq-scale-") as tmp:
        files = VectorFiles(Path(tmp))
        write_s = 0.0
        for start, rows in parts(size):
            truth.add(start, rows)
            began = time.perf_counter()
            files.write("c", "emb", start, rows)
            write_s += time.perf_counter() - began
        rss_before = rss_mib_self()
        result: dict[str, float] = {"size": size, "write_rows_per_s": size / write_s}
        if size < EXACT_BELOW:
            matrix = torch.from_numpy(files.read("c", "emb", 0, size, DIM, "float16")).float()
            result |= {"mode": 0, "train_s": 0.0, "add_s": 0.0, "extend_us_per_row": 0.0}

            def search(query: np.ndarray) -> list[int]:
                return (matrix @ torch.from_numpy(query)).topk(TOP_K).indices.tolist()

            index_bytes = matrix.numel() * 4
        else:

            def read(a: int, b: int) -> np.ndarray:
                return files.read("c", "emb", a, b, DIM, "float16").astype(np.float32)

            reading: list[float] = []  # ms each re-scoring spends reading its candidates

            def source(rows: np.ndarray) -> np.ndarray:
                began = time.perf_counter()
                taken = files.take("c", "emb", rows, DIM, "float16").astype(np.float32)
                reading.append((time.perf_counter() - began) * 1000)
                return taken

            policy = IndexPolicy(exact_below=EXACT_BELOW)
            began = time.perf_counter()
            index = ApproximateIndex.trained(read, size, DIM, policy, source)
            train_s = time.perf_counter() - began
            for start in range(0, size, 262_144):
                index.add(read(start, min(start + 262_144, size)))
            add_s = time.perf_counter() - began - train_s
            result |= {"mode": 1, "train_s": train_s, "add_s": add_s}

            def search(query: np.ndarray) -> list[int]:
                return index.search(query[None], TOP_K)[1][0].tolist()

            index_bytes = index.nbytes
            saved = Path(tmp) / "index.faiss"
            index.save(saved)
            result["index_disk_mib"] = saved.stat().st_size / 2**20
        times, found = timed(search, queries[:QUERIES])
        if size >= EXACT_BELOW:
            result["read_p95_ms"] = percentile(reading[-QUERIES:], 95)
            for number, refine in enumerate(REFINES, 1):  # fewer reads, lower recall
                index.policy = replace(policy, refine=refine)
                some = slice(QUERIES * number, QUERIES * (number + 1))
                some_times, some_found = timed(search, queries[some])
                result[f"refine{refine}"] = {
                    "p50_ms": median(some_times),
                    "p95_ms": percentile(some_times, 95),
                    "recall@10": truth.recall(some_found, some),
                }
            index.policy = policy
        if size >= EXACT_BELOW:  # incremental: rows arriving after the index was built
            extra = part(size, size + 10_000, centres()).astype(np.float32)
            began = time.perf_counter()
            index.add(extra)
            result["extend_us_per_row"] = (time.perf_counter() - began) / len(extra) * 1e6
        result |= {
            "p50_ms": median(times),
            "p95_ms": percentile(times, 95),
            "recall@10": truth.recall(found, slice(0, QUERIES)),
            "index_bytes_per_image": index_bytes / size,
            "worker_rss_bytes_per_image": (rss_mib_self() - rss_before) * 2**20 / size,
            "vector_file_bytes_per_image": DIM * 2,
        }
    return result


def timed(search, queries: np.ndarray) -> tuple[list[float], list[list[int]]]:
    """Milliseconds and hits of each query, after five that warm caches and thread pools."""
    times, found = [], []
    for number, query in enumerate(np.concatenate([queries[:5], queries])):
        began = time.perf_counter()
        hits = search(query)
        if number >= 5:
            times.append((time.perf_counter() - began) * 1000)
            found.append(hits)
    return times, found


def rss_mib_self() -> float:
    import os

    return rss_mib(os.getpid())


# --- through the service ---------------------------------------------------------------


def service_one(size: int, shards: int = 1) -> dict[str, float]:
    """Write ``size`` embeddings as clip-retrieval writes them, import them with ``clipq
    import`` (the real client: parts of 48 MB, three in the service at once), wait for
    the index the worker builds once the import is quiet, then time find-similar by image id;
    with ``shards``, searched by that many shard workers besides the general one."""
    from bench.common import service, vit_b32_clip
    from clipq.store.collections import Collections

    picks = np.random.default_rng(5).choice(size, QUERIES, replace=False)
    where = centres()
    queries = np.concatenate(
        [part(r - r % PART, r - r % PART + PART, where)[r % PART][None] for r in picks]
    ).astype(np.float32)
    truth = TopK(queries, exclude=picks)
    with tempfile.TemporaryDirectory(prefix="clipq-scale-service-") as tmp:
        written = write_clip_retrieval_output(Path(tmp) / "out", size, truth)
        overrides = {
            "CLIPQ_SHARDS": str(shards),
            "CLIPQ_DETECTOR_MODEL": "embedded",  # imports detect nothing; no download
            "CLIPQ_VECTOR_DIR": f"{tmp}/vectors",
            "CLIPQ_INDEX_DIR": f"{tmp}/indexes",
            "CLIPQ_MAX_IMAGES_PER_TENANT": str(size + 1),
        }
        with service(vit_b32_clip(), **overrides) as running, _Shards(shards, running) as _:
            http = running.http
            collection = http.post("/v1/collections", json={"name": "scale"}).json()["id"]
            redis_before = running.redis.info("memory")["used_memory"]
            rss_before = {pid: rss_mib(pid) for pid in pool_pids(running)}
            command = [str(Path(sys.executable).parent / "clipq"), "import", "-q", "-c", "scale"]
            began = time.perf_counter()
            subprocess.run(
                [*command, "--server", running.base_url, str(Path(tmp) / "out")], check=True
            )
            import_s = time.perf_counter() - began
            redis_after = running.redis.info("memory")["used_memory"]
            index_s = wait_indexed(Path(running.logs), collection, shards, size) - began
            index_s -= import_s
            # generated row <-> collection row, through the parts' names and first rows
            url = f"/v1/collections/{collection}/embeddings"
            placed = PartMap(http.get(url).json()["parts"])
            ids = [
                http.get(
                    f"/v1/collections/{collection}/images",
                    params={"offset": placed.row(int(g)), "limit": 1},
                ).json()["images"][0]["id"]
                for g in picks
            ]
            times, found = [], []
            for number, image_id in enumerate(ids[:3] + ids):  # three warm the caches
                began = time.perf_counter()
                response = http.post(
                    f"/v1/collections/{collection}/images/{image_id}/similar",
                    json={"top_k": TOP_K},
                )
                job = http.get(f"/v1/jobs/{response.json()['id']}", params={"wait": 30}).json()
                elapsed = (time.perf_counter() - began) * 1000
                if job["status"] != "succeeded":
                    raise RuntimeError(job["error"])
                if number >= 3:
                    times.append(elapsed)
                    found.append([hit["image_id"] for hit in job["result"]["hits"]])
            worker_rss = {pid: rss_mib(pid) - before for pid, before in rss_before.items()}
            hit_ids = list({i for hits in found for i in hits})
            hit_rows = Collections(running.redis).rows_of(collection, hit_ids)
            row_of_id = {  # the generated rows of the hits
                image_id: placed.generated(row)
                for image_id, row in zip(hit_ids, hit_rows, strict=True)
            }
            disk = sum(
                p.stat().st_size
                for p in Path(tmp).rglob("*")
                if p.is_file() and "out" not in p.parts
            )
    return {
        "size": size,
        "import_per_s": size / import_s,
        "import_s": import_s,
        "index_s": index_s,
        "npy_bytes": written,
        "p50_ms": median(times),
        "p95_ms": percentile(times, 95),
        "recall@10": truth.recall([[row_of_id[i] for i in hits] for hits in found]),
        "redis_bytes_per_image": (redis_after - redis_before) / size,
        "shards": shards,
        # the worker that grew most, and all of them (sharded: the shards hold the index)
        "worker_rss_bytes_per_image": max(worker_rss.values()) * 2**20 / size,
        "workers_rss_bytes_per_image": sum(worker_rss.values()) * 2**20 / size,
        "disk_bytes_per_image": disk / size,
    }


class PartMap:
    """Generated rows <-> collection rows, from the imported parts (``img_emb_N.npy:a-b``)
    and the first row each landed at."""

    def __init__(self, parts: list[dict]) -> None:
        spans = []
        for placed in parts:
            file, _, rows = placed["part"].rpartition(":")
            first = int(file.removeprefix("img_emb_").removesuffix(".npy")) * FILE_ROWS
            spans.append((first + int(rows.split("-")[0]), placed["first_row"], placed["rows"]))
        self.by_generated = sorted(spans)
        self.by_row = sorted(spans, key=lambda span: span[1])
        self.firsts = [span[1] for span in self.by_row]

    def row(self, generated: int) -> int:
        start, first, _ = self.by_generated[bisect_right(self.by_generated, (generated, 1e18)) - 1]
        return first + generated - start

    def generated(self, row: int) -> int:
        start, first, _ = self.by_row[bisect_right(self.firsts, row) - 1]
        return start + row - first


def write_clip_retrieval_output(folder: Path, size: int, truth: TopK) -> int:
    """``img_emb/img_emb_N.npy`` of ``FILE_ROWS`` float16 rows each, as clip-inference
    writes them (no metadata: names come from the parts), adding every part to ``truth``."""
    (folder / "img_emb").mkdir(parents=True)
    files: dict[int, np.ndarray] = {}
    for start, rows in parts(size):
        number = start // FILE_ROWS
        if number not in files:
            files = {  # one file open at a time
                number: np.lib.format.open_memmap(
                    folder / "img_emb" / f"img_emb_{number}.npy",
                    mode="w+",
                    dtype=np.float16,
                    shape=(min(FILE_ROWS, size - number * FILE_ROWS), DIM),
                )
            }
        within = start - number * FILE_ROWS
        files[number][within : within + len(rows)] = rows
        truth.add(start, rows)
    files.clear()
    return sum(p.stat().st_size for p in (folder / "img_emb").iterdir())


def wait_indexed(logs: Path, collection: str, shards: int, size: int) -> float:
    """When (perf_counter) the workers holding the collection (the general one, or each
    shard's) had brought their indexes up to all ``size`` images, as their logs say."""
    names = ["worker0.log"] if shards == 1 else [f"shard{n}.log" for n in range(shards)]
    held = re.compile(rf"collection {collection}(?:, shard \d+ of \d+)?: (\d+) images held")
    deadline = time.monotonic() + 3600
    while True:
        counts = [held.findall((logs / name).read_text()) for name in names]
        if sum(int(found[-1]) for found in counts if found) == size:
            return time.perf_counter()
        if time.monotonic() > deadline:
            raise RuntimeError("the collection was not indexed within an hour")
        time.sleep(0.5)


def pool_pids(running) -> list[int]:
    """The inference workers' pool processes (where the indexes live)."""
    import os

    from bench.common import children

    found = []
    for pid in children(os.getpid()):
        command = Path(f"/proc/{pid}/cmdline").read_bytes()
        if b"worker.celery_app" in command:
            found += children(pid) or [pid]
    return found


class _Shards:
    """``count`` shard workers (none for 1) beside a running service, stopped on exit."""

    def __init__(self, count: int, running) -> None:
        self.count, self.running, self.processes = count, running, []

    def __enter__(self) -> _Shards:
        from tests.e2e.conftest import _start_celery

        if self.count == 1:
            return self
        for number in range(self.count):
            arguments = ["worker.celery_app", "worker", "--concurrency", "1"]
            env = {**self.running.env, "CLIPQ_WORKER_SHARD": str(number)}
            log = Path(self.running.logs) / f"shard{number}.log"
            queue = ["-Q", f"clipq.shard.{number}"]
            self.processes.append(_start_celery([*arguments, *queue], env, log, f"s{number}"))
        deadline = time.monotonic() + 300
        while self.running.http.get("/v1/models").json().get("workers", 0) < self.count + 1:
            if time.monotonic() > deadline:
                raise RuntimeError("the shard workers did not start")
            time.sleep(0.5)
        return self

    def __exit__(self, *_: object) -> None:
        from tests.e2e.conftest import stop

        for process in self.processes:
            stop(process)


# --- report ----------------------------------------------------------------------------


def main(
    sizes: list[int], service_sizes: list[int], shard_sizes: list[int]
) -> dict[str, list[dict]]:
    library = [r for r in (run_one("library", size) for size in sizes) if r]
    rows = [
        [
            f"{int(r['size']):,}",
            "approximate" if r["mode"] else "exact",
            r["train_s"],
            r["add_s"],
            r["extend_us_per_row"],
            r["p50_ms"],
            r["p95_ms"],
            r["recall@10"],
            r["index_bytes_per_image"],
            r.get("index_disk_mib", 0.0),
        ]
        for r in library
    ]
    print("\n== collections at scale: the index (512-d, top 10, one query at a time) ==")
    header = ["images", "mode", "train s", "add s", "extend µs/row", "p50 ms", "p95 ms"]
    print(table(rows, [*header, "recall@10", "index B/image", "index file MiB"]))
    rows = [
        [f"{int(r['size']):,}", refine, m["p50_ms"], m["p95_ms"], m["recall@10"]]
        for r in library
        if r["mode"]
        for refine, m in [("100 (default)", r), *((n, r[f"refine{n}"]) for n in REFINES)]
    ]
    print("\n== candidates re-scored a hit (refine), the same index ==")
    print(table(rows, ["images", "refine", "p50 ms", "p95 ms", "recall@10"]))
    service_results = [r for r in (run_one("service", size) for size in service_sizes) if r]
    sharded = [r for r in (run_one("shards", size) for size in shard_sizes) if r]
    if service_results:
        rows = [
            [
                f"{int(r['size']):,}",
                r["import_per_s"],
                r["index_s"],
                r["p50_ms"],
                r["p95_ms"],
                r["recall@10"],
                r["redis_bytes_per_image"],
                r["worker_rss_bytes_per_image"],
                r["disk_bytes_per_image"],
            ]
            for r in service_results
        ]
        print("\n== through the service: bulk import, then find-similar by id (HTTP → result) ==")
        header = ["images", "import /s", "indexed s later", "p50 ms", "p95 ms", "recall@10"]
        print(table(rows, [*header, "Redis B/image", "worker B/image", "disk B/image"]))
    if sharded:
        one = {r["size"]: r for r in service_results}
        rows = [
            [f"{int(r['size']):,}", where, r["p50_ms"], r["p95_ms"], r["recall@10"],
             r["worker_rss_bytes_per_image"], r["workers_rss_bytes_per_image"]]
            for s in sharded
            for where, r in (("one worker", one.get(s["size"])), ("two shards", s))
            if r
        ]  # fmt: skip
        print("\n== two shards on two workers against one worker holding everything ==")
        header = ["images", "served by", "p50 ms", "p95 ms", "recall@10"]
        print(table(rows, [*header, "largest worker B/image", "all workers B/image"]))
    if library or service_results:
        OUT.mkdir(parents=True, exist_ok=True)
        plot(library, service_results, OUT / "collections_at_scale.png")
        print(f"plot: {(OUT / 'collections_at_scale.png').relative_to(ROOT)}")
    return {"library": library, "service": service_results, "shards": sharded}


def run_one(kind: str, size: int) -> dict | None:
    """One measurement in a fresh process; None (and why, printed) if it failed."""
    command = [sys.executable, "-m", "bench.collections_at_scale", "--one", kind, str(size)]
    output = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
    if output.returncode:
        print(f"  {kind} {size:,} failed:\n{output.stderr[-2000:]}", flush=True)
        return None
    result = json.loads(output.stdout.strip().splitlines()[-1])
    print(f"  {kind} {size:,}: {json.dumps(result)}", flush=True)
    return result


def plot(library: list[dict], service: list[dict], path: Path) -> None:
    """Latency (p50 and p95, log) and recall@10 against collection size (log)."""
    width, height, margin = 1000, 420, 70
    image = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(image)
    blue, red, green = (31, 119, 180), (214, 39, 40), (44, 160, 44)
    sizes = [r["size"] for r in library + service]
    x_range = _decades(min(sizes), max(sizes))
    panels = [
        ("search latency (ms, log)", "log", [("index p50", library, "p50_ms", blue),
                                             ("index p95", library, "p95_ms", red),
                                             ("service p95", service, "p95_ms", green)]),
        ("recall@10 vs exact", "linear", [("index", library, "recall@10", blue),
                                          ("service", service, "recall@10", green)]),
    ]  # fmt: skip
    panel_width = (width - margin) // 2
    for number, (title, kind, series) in enumerate(panels):
        left = margin + number * panel_width
        box = (left, 40, left + panel_width - margin, height - margin)
        values = [r[key] for _, rows, key, _ in series for r in rows]
        draw.rectangle(box, outline="black")
        draw.text((box[0], 15), title + " vs images in the collection", fill="black")
        size_ticks(draw, box, x_range)
        y_of = _axis(kind, values, box[3], box[1])
        if kind == "log":
            y_range = _decades(min(values), max(values))
            ticks = [10**e for e in range(int(y_range[0]), int(y_range[1]) + 1)]
        else:
            low = min(0.9, min(values))
            ticks = [low + (1 - low) * i / 4 for i in range(5)]
        for tick in ticks:
            draw.line((box[0] - 5, y_of(tick), box[0], y_of(tick)), fill="black")
            draw.text((box[0] - 45, y_of(tick) - 6), f"{tick:g}", fill="black")
        for row, (label, rows, key, colour) in enumerate(series):
            points = [(_scale(r["size"], x_range, box[0], box[2]), y_of(r[key])) for r in rows]
            if len(points) > 1:
                draw.line(points, fill=colour, width=3)
            for x, y in points:
                draw.ellipse((x - 4, y - 4, x + 4, y + 4), fill=colour)
            draw.text((box[0] + 10, box[1] + 10 + 15 * row), label, fill=colour)
    draw.text((margin, height - 25), machine()[:150], fill="gray")
    image.save(path)


def _axis(kind: str, values: list[float], bottom: float, top: float):
    """Value -> y pixel: log decades, or linear from min(0.9, lowest) to 1 (recall)."""
    if kind == "log":
        decades = _decades(min(values), max(values))
        return lambda v: _scale(v, decades, bottom, top)
    low = min(0.9, min(values))
    return lambda v: bottom + (v - low) / (1 - low) * (top - bottom)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="10000,100000,1000000,10000000")
    parser.add_argument("--service", default="1000000", help="sizes through the service")
    parser.add_argument("--shards", default="1000000", help="sizes through two shards")
    parser.add_argument("--one", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        kind, size = args.one[0], int(args.one[1])
        if kind == "library":
            print(json.dumps(library_one(size)))
        else:
            print(json.dumps(service_one(size, shards=2 if kind == "shards" else 1)))
    else:
        print(machine())
        listed = lambda text: [int(s) for s in text.split(",") if s]  # noqa: E731
        main(listed(args.sizes), listed(args.service), listed(args.shards))

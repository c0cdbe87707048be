"""Benchmark: which FAISS index a collection should use, by size (exact or approximate).

    python -m bench.ann_index [--quick] [--sizes 10000,100000,1000000] [--dim 512]

For each collection size and each kind of index, one run on the same data measures:
build seconds (training and adding), bytes per image the index holds in memory (its
serialised size over its vectors), single-query latency (top 10, p50 / p95, the torch
threads of a worker), and Recall@10 against the exact answer. Latency and memory are also
printed as ratios to the exact index of the same run.

The embeddings are synthetic but shaped like a collection's: unit vectors drawn around
2,000 centres (images cluster by content; uniform random vectors have no near neighbours
at all, which no collection looks like), with queries drawn the same way but never stored.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from bench.common import machine, median, percentile, table
from clipcore.vector_index import nlist_for

DIM = 512
QUERIES = 200
TOP_K = 10
CENTRES = 2_000
# faiss index_factory strings; {nlist} is filled from the size (about sqrt(n)), {m} from
# the dimension (4-bit fast-scan PQ, dim / 8 sub-quantisers: dim / 16 bytes a vector).
# "+fp16" / "+sq8": the PQ's candidates (REFINE x k) re-scored from fp16 / 8-bit vectors.
KINDS = {
    "exact": "Flat",
    "ivf-sq8": "IVF{nlist},SQ8",
    "ivf-pq-fastscan": "IVF{nlist},PQ{m}x4fs",
    "ivf-pq-fastscan+fp16": "IVF{nlist},PQ{m}x4fs,Refine(SQfp16)",
    # 4 x the sub-quantisers (dim / 4 bytes): where a cluster holds thousands of images
    "ivf-pq2-fastscan+fp16": "IVF{nlist},PQ{m2}x4fs,Refine(SQfp16)",
    "ivf-pq-fastscan+sq8": "IVF{nlist},PQ{m}x4fs,Refine(SQ8)",
    "hnsw32": "HNSW32,Flat",
}
REFINE = 50  # 10 gave recall@10 0.62 at 1 M; 50 gives 0.998 for 0.25 ms more
HNSW_UP_TO = 100_000  # its build is O(n log n) with a large constant: minutes past this
NPROBE = 32
EF_SEARCH = 64


def clustered(rng: np.random.Generator, centres: np.ndarray, count: int) -> np.ndarray:
    """``count`` unit vectors, each near one of the centres (cosine about 0.75 to it)."""
    picks = rng.integers(len(centres), size=count)
    vectors = centres[picks] + rng.standard_normal((count, centres.shape[1]), np.float32) * 0.04
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors.astype(np.float32)


def build(kind: str, vectors: np.ndarray, refine: int = 50):
    import faiss

    size, dim = vectors.shape
    key = KINDS[kind].format(nlist=nlist_for(size), m=dim // 8, m2=dim // 2)
    index = faiss.index_factory(dim, key, faiss.METRIC_INNER_PRODUCT)
    started = time.perf_counter()
    if not index.is_trained:
        sample = vectors[np.random.default_rng(0).permutation(size)[: 40 * nlist_for(size)]]
        index.train(sample)
    index.add(vectors)
    seconds = time.perf_counter() - started
    if "IVF" in KINDS[kind]:
        faiss.extract_index_ivf(index).nprobe = NPROBE
    if "Refine" in KINDS[kind]:
        index.k_factor = refine
    if kind.startswith("hnsw"):
        index.hnsw.efSearch = EF_SEARCH
    return index, seconds


def measure(index, queries: np.ndarray, truth: np.ndarray) -> dict[str, float]:
    import faiss

    times, found = [], []
    for number, query in enumerate(queries):
        started = time.perf_counter()
        _, rows = index.search(query[None], TOP_K)
        if number >= 5:  # the first few warm caches
            times.append((time.perf_counter() - started) * 1000)
        found.append(len(set(rows[0].tolist()) & set(truth[number].tolist())) / TOP_K)
    return {
        "p50_ms": median(times),
        "p95_ms": percentile(times, 95),
        "recall@10": float(np.mean(found)),
        "bytes_per_image": len(faiss.serialize_index(index)) / index.ntotal,
    }


def main(
    sizes: list[int],
    dim: int = DIM,
    threads: int = 2,
    centres_count: int = CENTRES,
    refine: int = REFINE,
    kinds: list[str] | None = None,
) -> list[dict]:
    import faiss

    faiss.omp_set_num_threads(threads)
    rng = np.random.default_rng(15)
    centres = rng.standard_normal((centres_count, dim)).astype(np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    queries = clustered(rng, centres, QUERIES)
    results = []
    for size in sizes:
        vectors = clustered(rng, centres, size)
        exact = None
        for kind in ["exact", *(k for k in kinds or KINDS if k != "exact")]:
            if kind.startswith("hnsw") and size > HNSW_UP_TO:
                continue
            index, seconds = build(kind, vectors, refine)
            if exact is None:
                _, truth = index.search(queries, TOP_K)
            row = {"size": size, "kind": kind, "build_s": seconds, **measure(index, queries, truth)}
            exact = exact or row
            row["latency_vs_exact"] = row["p50_ms"] / exact["p50_ms"]
            row["memory_vs_exact"] = row["bytes_per_image"] / exact["bytes_per_image"]
            results.append(row)
            print(f"  {size:>9,} {kind:<18} built in {seconds:.1f} s", flush=True)
            del index
    columns = ["size", "kind", "build_s", "p50_ms", "p95_ms", "recall@10", "bytes_per_image"]
    columns += ["latency_vs_exact", "memory_vs_exact"]
    print(
        f"\n== FAISS index kinds: top {TOP_K}, {dim}-d, {centres_count} centres, nprobe "
        f"{NPROBE}, refine x{refine}, efSearch {EF_SEARCH}, {threads} threads =="
    )
    print(table([[r[c] for c in columns] for r in results], columns))
    print(machine())
    return results


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="python -m bench.ann_index", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="10 k and 100 k only")
    parser.add_argument("--sizes", default="10000,100000,1000000")
    parser.add_argument("--dim", type=int, default=DIM)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument(
        "--centres",
        type=int,
        default=CENTRES,
        help="clusters the vectors are drawn around (fewer: denser clusters, as 10 M images "
        "around 2,000 centres are)",
    )
    parser.add_argument("--refine", type=int, default=REFINE)
    parser.add_argument("--kinds", help="comma-separated subset of " + ",".join(KINDS))
    args = parser.parse_args()
    sizes = [10_000, 100_000] if args.quick else [int(s) for s in args.sizes.split(",")]
    kinds = args.kinds.split(",") if args.kinds else None
    main(sizes, args.dim, args.threads, args.centres, args.refine, kinds)

"""Do reconstruction plans shortlist the right pairs and flag the right images? Held-out study.

``python -m clipcore.lab.plan_eval`` renders multi-view captures whose footprints are known
exactly (:mod:`clipcore.lab.multiview`, a renderer the embedded CLIP never saw), embeds them,
and measures :func:`clipcore.plans.shortlist.pair_shortlist` against the truth: the recall
of the pairs that overlap at least 30 % and the number of pairs, for the CLIP kNN shortlist
at several k, against exhaustive matching, a sequential window in file-name order and a
random shortlist of the same budget, and (ordered captures) retrieval+sequential; and the
share of images whose k nearest neighbours all come from their own site. Then it measures
:func:`clipcore.plans.hygiene.hygiene_report` on images with known labels: each flag's
precision and recall, the near-duplicate groups, the EXIF read-back, with the failing
images' measured values. ``--quick`` runs a small version (the smoke test's).
"""

from __future__ import annotations

import argparse
import io
import math
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
from PIL import Image
from tqdm import tqdm

from clipcore.clip_model import LoadedClip, load_clip
from clipcore.encode import embed_images
from clipcore.lab import multiview
from clipcore.lab.multiview import FLAGS, OVERLAP_MIN, HygieneSet, MultiviewDataset
from clipcore.plans.hygiene import coarse_unit, hygiene_report, thumbnail
from clipcore.plans.schemas import HygieneFlag, HygieneReport, ShortlistStrategy
from clipcore.plans.shortlist import nearest_neighbours, pair_shortlist

GOAL_RECALL = 0.95  # of the overlapping pairs ...
GOAL_BUDGET = 0.10  # ... with at most this share of exhaustive pairs (500 images)
GOAL_SAME_SITE = 0.99  # share of images whose top-k holds no pair across sites
GOAL_FLAG = 0.95  # precision and recall of each hygiene flag

Pair = tuple[int, int]


# ----------------------------------------------------------------------------- plumbing


def table(rows: Sequence[Sequence[object]], header: Sequence[str]) -> str:
    """Plain right-aligned columns (as ``bench.common.table``)."""
    cells = [[str(c) for c in header], *[[_cell(c) for c in row] for row in rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    lines = ["  ".join(c.rjust(w) for c, w in zip(row, widths, strict=True)) for row in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _cell(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.3f}" if abs(value) < 10 else f"{value:,.0f}"
    return str(value)


def embed_jpegs(clip: LoadedClip, blobs: Sequence[bytes], desc: str, batch: int = 64):
    """L2-normalised embeddings (n, d) float32 of encoded images, with a progress bar."""
    chunks = []
    with tqdm(total=len(blobs), desc=desc, unit="img", leave=False) as bar:
        for start in range(0, len(blobs), batch):
            images = [
                Image.open(io.BytesIO(b)).convert("RGB") for b in blobs[start : start + batch]
            ]
            chunks.append(embed_images(clip, images).numpy())
            bar.update(len(images))
    return np.concatenate(chunks).astype(np.float32)


# ----------------------------------------------------------------------------- shortlists


@dataclass
class Measure:
    """One shortlist on one dataset."""

    pairs: int
    recall: float  # of pairs overlapping >= OVERLAP_MIN
    recall_half: float  # of pairs overlapping >= 0.5
    ceiling: float  # the best recall any shortlist of this many pairs could reach
    three: float  # share of images with >= 3 overlapping partners shortlisted (or all they have)
    connected: float  # share of images in their site's largest component of found pairs
    same_site: float | None = None  # share of images whose top-k is all of their own site
    same_site_possible: float | None = None  # share whose site has at least k other views
    window: int | None = None  # of a sequential shortlist sized to a budget


@dataclass
class Truth:
    positives: set[Pair]
    strong: set[Pair]  # overlap >= 0.5
    sites: np.ndarray
    n: int

    @property
    def exhaustive(self) -> int:
        return self.n * (self.n - 1) // 2


def truth_of(dataset: MultiviewDataset) -> Truth:
    return Truth(
        dataset.overlapping_pairs(OVERLAP_MIN),
        dataset.overlapping_pairs(0.5),
        dataset.sites,
        len(dataset.views),
    )


def measure(pairs: set[Pair], truth: Truth) -> Measure:
    def recall(of: set[Pair]) -> float:
        return len(pairs & of) / len(of) if of else 1.0

    ceiling = min(1.0, len(pairs) / len(truth.positives)) if truth.positives else 1.0
    found = pairs & truth.positives
    return Measure(
        len(pairs),
        recall(truth.positives),
        recall(truth.strong),
        ceiling,
        _with_partners(found, truth, 3),
        _largest_components(found, truth),
    )


def _degrees(pairs: set[Pair], n: int) -> np.ndarray:
    flat = np.array(sorted(pairs), dtype=np.int64).reshape(-1)
    return np.bincount(flat, minlength=n)


def _with_partners(found: set[Pair], truth: Truth, m: int) -> float:
    """Share of images with at least m truly overlapping partners among the found pairs (or
    all of theirs, when they have fewer): what registering an image needs."""
    need = np.minimum(_degrees(truth.positives, truth.n), m)
    return float((_degrees(found, truth.n) >= need).mean())


def _largest_components(found: set[Pair], truth: Truth) -> float:
    """Share of images in their site's largest connected component of truly overlapping
    found pairs: a proxy for how much of a site one reconstruction could register."""
    parent = list(range(truth.n))

    def root(a: int) -> int:
        while parent[a] != a:
            parent[a] = parent[parent[a]]
            a = parent[a]
        return a

    for i, j in found:
        parent[root(i)] = root(j)
    largest: dict[int, int] = {}
    sizes: dict[int, int] = {}
    for i in range(truth.n):
        sizes[root(i)] = sizes.get(root(i), 0) + 1
    for r, size in sizes.items():
        site = int(truth.sites[r])
        largest[site] = max(largest.get(site, 0), size)
    return sum(largest.values()) / truth.n


def shortlisted(
    embeddings: np.ndarray, names: Sequence[str], strategy: ShortlistStrategy, k: int, window: int
) -> set[Pair]:
    """The shortlist's pairs, as (i < j) rows of ``names``."""
    index = {name: i for i, name in enumerate(names)}
    shortlist = pair_shortlist(
        embeddings, names, strategy=strategy, pairs_per_image=k, window=window
    )
    out = set()
    for pair in shortlist.pairs:
        i, j = index[pair.image0], index[pair.image1]
        out.add((min(i, j), max(i, j)))
    return out


def sequential_pairs(n: int, window: int) -> int:
    return sum(min(window, n - 1 - i) for i in range(n))


def window_for(n: int, budget: int) -> int:
    """The smallest sequential window whose pairs reach ``budget``."""
    window = 1
    while window < n - 1 and sequential_pairs(n, window) < budget:
        window += 1
    return window


def random_pairs(rng: np.random.Generator, n: int, count: int) -> set[Pair]:
    flat = rng.choice(n * (n - 1) // 2, size=min(count, n * (n - 1) // 2), replace=False)
    rows, cols = np.triu_indices(n, 1)
    return set(zip(rows[flat].tolist(), cols[flat].tolist(), strict=True))


def oracle_pairs(overlaps: np.ndarray, k: int) -> set[Pair]:
    """Each image's k most overlapping others, symmetrised: what a perfect embedding's k-NN
    shortlist would propose (its recall is the ceiling of k-NN at that k)."""
    scores = overlaps.copy()
    np.fill_diagonal(scores, -1.0)
    top = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    return {(min(i, int(j)), max(i, int(j))) for i, row in enumerate(top) for j in row}


def same_site_share(embeddings: np.ndarray, sites: np.ndarray, k: int) -> float:
    neighbours, _ = nearest_neighbours(embeddings, k)
    return float((sites[neighbours] == sites[:, None]).all(axis=1).mean())


def study_dataset(
    dataset: MultiviewDataset,
    embeddings: np.ndarray,
    ks: Sequence[int],
    windows: Sequence[int],
    seed: int,
) -> dict[tuple[str, str], Measure]:
    """Every strategy on one dataset: key (strategy, setting)."""
    truth = truth_of(dataset)
    names, n = dataset.names, truth.n
    rng = np.random.default_rng([seed, 53])
    everything = {(i, j) for i in range(n) for j in range(i + 1, n)}
    out = {("exhaustive", "-"): measure(everything, truth)}
    for k in ks:
        found = shortlisted(embeddings, names, ShortlistStrategy.retrieval, k, 0)
        m = measure(found, truth)
        m.same_site = same_site_share(embeddings, truth.sites, k)
        m.same_site_possible = float((np.bincount(truth.sites)[truth.sites] > k).mean())
        out[("retrieval", f"k={k}")] = m
        w = window_for(n, m.pairs)
        seq = measure(shortlisted(embeddings, names, ShortlistStrategy.sequential, 0, w), truth)
        seq.window = w
        out[("sequential", f"k={k} budget")] = seq
        out[("random", f"k={k} budget")] = measure(random_pairs(rng, n, m.pairs), truth)
        out[("oracle kNN", f"k={k}")] = measure(oracle_pairs(dataset.overlaps(), k), truth)
        if dataset.ordered:
            for w in windows:
                both = shortlisted(embeddings, names, ShortlistStrategy.retrieval_sequential, k, w)
                out[("retrieval+sequential", f"k={k} w={w}")] = measure(both, truth)
    if dataset.ordered:
        for w in windows:
            fixed = shortlisted(embeddings, names, ShortlistStrategy.sequential, 0, w)
            out[("sequential", f"w={w}")] = measure(fixed, truth)
    return out


def misses(dataset: MultiviewDataset, embeddings: np.ndarray, k: int) -> tuple[float, float, float]:
    """Of the overlapping pairs the k-NN shortlist misses: the median overlap, the median
    rank of the partner among each image's neighbours (the better of the two), and the
    median number of overlapping partners of the images involved."""
    truth = truth_of(dataset)
    found = shortlisted(embeddings, dataset.names, ShortlistStrategy.retrieval, k, 0)
    missed = sorted(truth.positives - found)
    if not missed:
        return math.nan, math.nan, math.nan
    o = dataset.overlaps()
    sims = embeddings @ embeddings.T
    np.fill_diagonal(sims, np.inf)
    ranks = (-sims).argsort(axis=1).argsort(axis=1)  # 0: itself
    degree = (o >= OVERLAP_MIN).sum(1) - 1
    return (
        float(np.median([o[i, j] for i, j in missed])),
        float(np.median([min(ranks[i, j], ranks[j, i]) for i, j in missed])),
        float(np.median([max(degree[i], degree[j]) for i, j in missed])),
    )


@dataclass
class Config:
    n: int
    sites: int
    ordered: bool

    @property
    def label(self) -> str:
        return f"{self.n} img / {self.sites} sites, {'ordered' if self.ordered else 'unordered'}"


def shortlist_study(
    clip: LoadedClip,
    configs: Sequence[Config],
    seeds: Sequence[int],
    ks: Sequence[int],
    windows: Sequence[int],
    render: Callable[[int, Config], MultiviewDataset],
) -> None:
    diagnosis_k = 20 if 20 in ks else ks[len(ks) // 2]
    for config in configs:
        results: dict[tuple[str, str], list[Measure]] = {}
        stats = []
        for seed in seeds:
            t0 = time.perf_counter()
            dataset = render(seed, config)
            t1 = time.perf_counter()
            embeddings = embed_jpegs(clip, [v.jpeg for v in dataset.views], f"seed {seed}")
            t2 = time.perf_counter()
            truth = truth_of(dataset)
            degree = np.bincount(np.array(sorted(truth.positives)).ravel(), minlength=truth.n)
            miss = misses(dataset, embeddings, diagnosis_k)
            stats.append(
                [seed, len(truth.positives), float(degree.mean()), int(degree.max()),
                 float(np.mean([v.objects for v in dataset.views])),
                 miss[0], miss[1], miss[2], t1 - t0, truth.n / (t2 - t1)]
            )  # fmt: skip
            for key, m in study_dataset(dataset, embeddings, ks, windows, seed).items():
                results.setdefault(key, []).append(m)
        print(f"\n## {config.label}, seeds {','.join(map(str, seeds))}")
        header = ["seed", "overlapping pairs", "partners/img", "max", "objects/view"]
        header += [f"missed@k={diagnosis_k}: overlap", "rank", "partners"]
        print(table(stats, [*header, "render s", "embed img/s"]))
        print()
        print(table(_rows(results, config.n), _HEADER))


_HEADER = [
    "strategy",
    "setting",
    "pairs",
    "of exhaustive",
    "recall",
    "min recall",
    "recall (≥50 %)",
    "≥3 partners",
    "largest comp.",
    "top-k same site",
    "(possible)",
    "ceiling",
]


def _rows(results: dict[tuple[str, str], list[Measure]], n: int) -> list[list[object]]:
    rows: list[list[object]] = []
    for (strategy, setting), ms in results.items():
        pairs = statistics.mean(m.pairs for m in ms)
        same = [m.same_site for m in ms if m.same_site is not None]
        possible = [m.same_site_possible for m in ms if m.same_site_possible is not None]
        windows = [m.window for m in ms if m.window is not None]
        if windows:
            setting += f" (w={min(windows)}-{max(windows)})"
        rows.append(
            [
                strategy,
                setting,
                round(pairs),
                pairs / (n * (n - 1) / 2),
                statistics.mean(m.recall for m in ms),
                min(m.recall for m in ms),
                statistics.mean(m.recall_half for m in ms),
                statistics.mean(m.three for m in ms),
                statistics.mean(m.connected for m in ms),
                statistics.mean(same) if same else "",
                statistics.mean(possible) if possible else "",
                statistics.mean(m.ceiling for m in ms),
            ]
        )
    order = ["exhaustive", "retrieval", "retrieval+sequential", "sequential", "random"]
    order.append("oracle kNN")
    rows.sort(key=lambda r: order.index(str(r[0])))
    return rows


# ----------------------------------------------------------------------------- hygiene


@dataclass
class FlagCount:
    tp: int = 0
    fp: int = 0
    fn: int = 0
    wrong: list[str] = field(default_factory=list)  # "FP name" / "FN name"

    def precision(self) -> float:
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else 1.0

    def recall(self) -> float:
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else 1.0


def score_flags(truth: HygieneSet, report: HygieneReport) -> dict[str, FlagCount]:
    """Per flag; near_duplicate three ways: group membership (``duplicate_group`` set on
    every member, the keeper too), the flag itself (on all members but the keeper: a group
    of m should have m - 1), and baseline pairs wrongly grouped."""
    by_name = {h.filename: h for h in report.images}
    counts = {flag: FlagCount() for flag in FLAGS}
    member, flagged, baseline = FlagCount(), FlagCount(), FlagCount()
    for image in truth.images:
        got = by_name[image.name]
        for flag in FLAGS:
            if flag == "near_duplicate":
                continue
            _count(counts[flag], flag in image.labels, HygieneFlag(flag) in got.flags, image.name)
        _count(
            member, image.duplicate_group is not None, got.duplicate_group is not None, image.name
        )
    groups: dict[int, list[str]] = {}
    for image in truth.images:
        if image.duplicate_group is not None:
            groups.setdefault(image.duplicate_group, []).append(image.name)
    true_members = {name for names in groups.values() for name in names}
    for names in groups.values():
        hits = sum(HygieneFlag.near_duplicate in by_name[x].flags for x in names)
        flagged.tp += min(hits, len(names) - 1)
        flagged.fn += max(0, len(names) - 1 - hits)
        flagged.fp += max(0, hits - (len(names) - 1))
    for image in truth.images:
        if (
            image.name not in true_members
            and HygieneFlag.near_duplicate in by_name[image.name].flags
        ):
            flagged.fp += 1
            flagged.wrong.append(f"FP {image.name}")
    for a, b in truth.distinct_pairs():
        ga, gb = by_name[a].duplicate_group, by_name[b].duplicate_group
        if ga is not None and ga == gb:
            baseline.fp += 1
            baseline.wrong.append(f"FP {a}+{b}")
        else:
            baseline.tp += 1
    counts["near_duplicate"] = member
    counts["near_duplicate (flag)"] = flagged
    counts["overlapping distinct pairs kept apart"] = baseline
    return counts


def _count(c: FlagCount, truth: bool, got: bool, name: str) -> None:
    if truth and got:
        c.tp += 1
    elif got:
        c.fp += 1
        c.wrong.append(f"FP {name}")
    elif truth:
        c.fn += 1
        c.wrong.append(f"FN {name}")


def exif_accuracy(truth: HygieneSet, report: HygieneReport) -> tuple[float, float, int]:
    """Shares of all images, and of tagged ones, whose four EXIF fields read back exactly
    (and None where nothing was written); and the number tagged."""
    by_name = {h.filename: h for h in report.images}
    right, tagged_right, tagged = 0, 0, 0
    for image in truth.images:
        got = by_name[image.name]
        e = image.exif
        expected: tuple[object, ...] = (None, None, None, None)
        if e is not None:
            equivalent = None if e.focal_length_35mm is None else float(e.focal_length_35mm)
            expected = (e.make, e.model, e.focal_length_mm, equivalent)
        read = (got.camera_make, got.camera_model, got.focal_length_mm, got.focal_length_35mm)
        ok = all(
            (a is None and b is None) or (a is not None and b is not None and _same(a, b))
            for a, b in zip(expected, read, strict=True)
        )
        right += ok
        if e is not None:
            tagged += 1
            tagged_right += ok
    return right / len(truth.images), tagged_right / max(tagged, 1), tagged


def _same(a: object, b: object) -> bool:
    if isinstance(a, float) or isinstance(b, float):
        return abs(float(a) - float(b)) < 1e-3  # type: ignore[arg-type]
    return a == b


def separation(
    truth: HygieneSet, report: HygieneReport, embeddings: np.ndarray
) -> list[list[object]]:
    """The measured values each flag thresholds, by true class: where the classes sit."""
    by_name = {h.filename: h for h in report.images}
    rows: list[list[object]] = []

    def add(what: str, label: str, values: list[float]) -> None:
        if values:
            q = np.percentile(values, [0, 5, 50, 95, 100])
            rows.append([what, label, len(values), *(float(v) for v in q)])

    sharp = [
        by_name[i.name].relative_sharpness or 0.0 for i in truth.images if "blurry" not in i.labels
    ]
    blurry = [
        by_name[i.name].relative_sharpness or 0.0 for i in truth.images if "blurry" in i.labels
    ]
    add("relative sharpness", "sharp", sharp)
    exposed = {"blurry", "overexposed", "underexposed"}
    fine = [
        by_name[i.name].relative_sharpness or 0.0 for i in truth.images if not i.labels & exposed
    ]
    add("relative sharpness", "sharp, well exposed", fine)
    under = [
        by_name[i.name].relative_sharpness or 0.0
        for i in truth.images
        if "underexposed" in i.labels
    ]
    add("relative sharpness", "underexposed (sharp)", under)
    add("relative sharpness", "blurry", blurry)
    low_res = [
        by_name[i.name].relative_sharpness or 0.0
        for i in truth.images
        if "low_resolution" in i.labels
    ]
    add("relative sharpness", "low-res (sharp)", low_res)
    for flag, attr in (("overexposed", "clipped_highlights"), ("underexposed", "clipped_shadows")):
        add(
            attr,
            flag,
            [getattr(by_name[i.name], attr) or 0.0 for i in truth.images if flag in i.labels],
        )
        add(
            attr,
            "others",
            [getattr(by_name[i.name], attr) or 0.0 for i in truth.images if flag not in i.labels],
        )
    thumbs = {
        i.name: coarse_unit(thumbnail(Image.open(io.BytesIO(i.data)).convert("RGB")))
        for i in truth.images
    }
    dup_pairs, base_pairs = [], []
    groups: dict[int, list[str]] = {}
    for i in truth.images:
        if i.duplicate_group is not None:
            groups.setdefault(i.duplicate_group, []).append(i.name)
    for names in groups.values():
        dup_pairs += [float(thumbs[a] @ thumbs[b]) for a in names for b in names if a < b]
    base_pairs = [float(thumbs[a] @ thumbs[b]) for a, b in truth.distinct_pairs()]
    add("thumbnail correlation", "duplicate pairs", dup_pairs)
    add("thumbnail correlation", "distinct, overlapping", base_pairs)
    # duplicates are looked for among embedding neighbours only: the partner's rank (1: first)
    index = {i.name: row for row, i in enumerate(truth.images)}
    sims = embeddings @ embeddings.T
    np.fill_diagonal(sims, np.inf)
    ranks = (-sims).argsort(axis=1).argsort(axis=1)
    dup_ranks = [
        float(min(ranks[index[a], index[b]], ranks[index[b], index[a]]))
        for names in groups.values()
        for a in names
        for b in names
        if a < b
    ]
    add("embedding rank of partner", "duplicate pairs", dup_ranks)
    return rows


def describe(image: multiview.HygieneImage, report: HygieneReport) -> str:
    got = next(h for h in report.images if h.filename == image.name)
    labels = sorted(image.labels) or ["clean"]
    return (
        f"{image.name} truth={labels} got={[f.value for f in got.flags]} "
        f"{image.size[0]}x{image.size[1]} sigma={image.blur:.2f} "
        f"rel.sharp={got.relative_sharpness} sharp={got.sharpness} "
        f"hi={got.clipped_highlights} lo={got.clipped_shadows} "
        f"group={image.duplicate_group}->{got.duplicate_group}"
    )


def hygiene_study(
    clip: LoadedClip, seeds: Sequence[int], n: int, canvas: tuple[int, int], show: int
) -> None:
    totals: dict[str, FlagCount] = {}
    exif_rows = []
    separations: list[list[object]] = []
    failing: list[str] = []
    for seed in seeds:
        truth = multiview.hygiene_dataset(seed, n, canvas_size=canvas)
        embeddings = embed_jpegs(clip, [i.data for i in truth.images], f"hygiene {seed}")
        report = hygiene_report([(i.name, i.data) for i in truth.images], embeddings)
        by_name = {i.name: i for i in truth.images}
        for flag, c in score_flags(truth, report).items():
            t = totals.setdefault(flag, FlagCount())
            t.tp, t.fp, t.fn = t.tp + c.tp, t.fp + c.fp, t.fn + c.fn
            for wrong in c.wrong:
                kind, name = wrong.split(" ", 1)
                first = name.split("+")[0]
                failing.append(f"  {flag} {kind}: {describe(by_name[first], report)}")
        exif_rows.append([seed, *exif_accuracy(truth, report)])
        separations += [[seed, *row] for row in separation(truth, report, embeddings)]
    print(f"\n## Hygiene: seeds {','.join(map(str, seeds))}, {n} images each")
    rows = [
        [flag, c.tp + c.fn, c.tp, c.fp, c.fn, c.precision(), c.recall(),
         "yes" if min(c.precision(), c.recall()) >= GOAL_FLAG else "NO"]
        for flag, c in totals.items()
    ]  # fmt: skip
    print(table(rows, ["flag", "true", "tp", "fp", "fn", "precision", "recall", "goal"]))
    print("\nEXIF read-back")
    print(table(exif_rows, ["seed", "all images right", "tagged images right", "tagged"]))
    print("\nmeasured values by true class (percentiles)")
    print(
        table(separations, ["seed", "measure", "class", "n", "min", "p5", "median", "p95", "max"])
    )
    if failing:
        print(f"\nfailing images (first {show} of {len(failing)})")
        print("\n".join(failing[:show]))


# ----------------------------------------------------------------------------- main


def _ints(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x]


def _configs(text: str, ordered: Sequence[bool]) -> list[Config]:
    out = []
    for item in text.split(","):
        n, sites = item.split("x")
        out += [Config(int(n), int(sites), o) for o in ordered]
    return out


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--clip", default="embedded")
    parser.add_argument("--datasets", default="100x3,250x5,500x5,500x10", help="IMAGESxSITES,...")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--ks", default="5,10,15,20,30,40,60,80")
    parser.add_argument("--windows", default="5,10", help="sequential windows (ordered sets)")
    parser.add_argument("--order", choices=["both", "unordered", "ordered"], default="both")
    parser.add_argument("--hygiene-images", type=int, default=200)
    parser.add_argument("--hygiene-seeds", default="0,1,2")
    parser.add_argument("--show-failing", type=int, default=25)
    parser.add_argument("--skip-hygiene", action="store_true")
    parser.add_argument("--skip-shortlist", action="store_true")
    parser.add_argument("--quick", action="store_true", help="small sets, small canvases")
    args = parser.parse_args(argv)
    ordered = {"both": [False, True], "unordered": [False], "ordered": [True]}[args.order]
    canvas = multiview.CANVAS_SIZE
    if args.quick:
        args.datasets, args.seeds, args.ks, args.windows = "16x2", "0", "3,6", "3"
        args.hygiene_images, args.hygiene_seeds, canvas = 30, "0", (900, 675)
    view = multiview.VIEW_SIZE if not args.quick else (240, 180)
    clip = load_clip(args.clip, "cpu")
    t0 = time.perf_counter()

    def render(seed: int, config: Config) -> MultiviewDataset:
        return multiview.multiview_dataset(
            seed, config.n, config.sites, config.ordered, canvas_size=canvas, view_size=view
        )

    print(f"# Plan evaluation ({clip.model_id}); pairs overlapping ≥ {OVERLAP_MIN:.0%} count")
    print(
        f"goals: recall ≥ {GOAL_RECALL:.0%} with ≤ {GOAL_BUDGET:.0%} of exhaustive pairs (500 "
        f"images); top-k of one site for ≥ {GOAL_SAME_SITE:.0%} of images; flags ≥ {GOAL_FLAG:.0%}"
    )
    if not args.skip_shortlist:
        configs = _configs(args.datasets, ordered)
        shortlist_study(
            clip, configs, _ints(args.seeds), _ints(args.ks), _ints(args.windows), render
        )
    if not args.skip_hygiene:
        hygiene_study(
            clip, _ints(args.hygiene_seeds), args.hygiene_images, canvas, args.show_failing
        )
    print(f"\n({time.perf_counter() - t0:.0f} s)")


if __name__ == "__main__":
    main()

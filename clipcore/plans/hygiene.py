"""Dataset hygiene for reconstruction: what each image is worth to structure from motion.

Per image: sharpness (variance of the Laplacian of the grey picture at 512 px on the long
side, judged against the dataset's own median, since what is sharp depends on the scene),
exposure (shares of clipped highlights and crushed shadows), resolution, and the EXIF
fields COLMAP takes as intrinsics priors (focal length, camera make and model). Across the
dataset: groups of near-duplicates (frames too alike to add baseline), found among embedding
neighbours and confirmed on small grey thumbnails. Each image gets a suggested action:
``drop`` (undecodable, hopelessly blurred, or a duplicate of a sharper frame), ``review``
(some blur, bad exposure, low resolution) or ``keep``.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from PIL import Image

from clipcore.errors import ClipqError
from clipcore.images import WorkingSize, decode_reduced
from clipcore.plans.schemas import (
    Action,
    DuplicateGroup,
    HygieneFlag,
    HygieneReport,
    HygieneThresholds,
    ImageHygiene,
)
from clipcore.plans.shortlist import nearest_neighbours

MEASURED_SIZE = WorkingSize(longest_side=512)
THUMBNAIL_SIZE = (64, 48)  # 4:3 grey; correlated at half this size, where noise and jitter vanish
# Near-duplicates are also aligned: a frame moved along a repetitive texture (planks, tiles)
# can correlate as well as a duplicate, but phase correlation finds its shift.
MAX_DUPLICATE_SHIFT = 0.03  # of the thumbnail's width or height
DUPLICATE_CANDIDATES = 8  # embedding neighbours of each image checked for duplication
HIGHLIGHT, SHADOW = 250, 5  # of 255
MAX_PIXELS = 100_000_000  # the upload limits have been checked before; this only guards

# EXIF tags (TIFF/EXIF 2.3): in IFD0, and in the Exif sub-IFD.
_MAKE, _MODEL, _EXIF_IFD = 0x010F, 0x0110, 0x8769
_FOCAL_LENGTH, _FOCAL_LENGTH_35MM = 0x920A, 0xA405


@dataclass
class Measured:
    hygiene: ImageHygiene
    thumbnail: np.ndarray | None  # grey THUMBNAIL_SIZE levels (rows, columns); None if unreadable


def measure_image(filename: str, data: bytes) -> Measured:
    """One image's own measures (its relative sharpness and action come later)."""
    try:
        decoded = decode_reduced(data, filename, max_pixels=MAX_PIXELS, working=MEASURED_SIZE)
    except ClipqError as exc:
        return unreadable(filename, str(exc))
    grey = np.asarray(decoded.image.convert("L"), dtype=np.float32)
    hygiene = ImageHygiene(
        filename=filename,
        width=decoded.width,
        height=decoded.height,
        sharpness=round(laplacian_variance(grey), 3),
        clipped_highlights=round(float((grey >= HIGHLIGHT).mean()), 4),
        clipped_shadows=round(float((grey <= SHADOW).mean()), 4),
        **exif_fields(data),
    )
    return Measured(hygiene, thumbnail(decoded.image))


def measure_thumbnail(filename: str, data: bytes | None, width: int, height: int) -> Measured:
    """What a collection's thumbnail tells of its image: exposure and near-duplication (the
    sharpness of a thumbnail says nothing of the original's, so it is not measured)."""
    hygiene = ImageHygiene(filename=filename, width=width, height=height)
    if data is None:  # an embedding imported without a picture
        return Measured(hygiene, None)
    try:
        with Image.open(io.BytesIO(data)) as picture:
            image = picture.convert("RGB")
    except (OSError, ValueError, SyntaxError):
        return Measured(hygiene, None)
    grey = np.asarray(image.convert("L"), dtype=np.float32)
    hygiene.clipped_highlights = round(float((grey >= HIGHLIGHT).mean()), 4)
    hygiene.clipped_shadows = round(float((grey <= SHADOW).mean()), 4)
    return Measured(hygiene, thumbnail(image))


def unreadable(filename: str, reason: str) -> Measured:
    hygiene = ImageHygiene(
        filename=filename, flags=[HygieneFlag.undecodable], action=Action.drop, reasons=[reason]
    )
    return Measured(hygiene, None)


def laplacian_variance(grey: np.ndarray) -> float:
    """Variance of the 4-neighbour Laplacian (the usual blur measure; OpenCV's CV_64F one)."""
    if grey.shape[0] < 3 or grey.shape[1] < 3:
        return 0.0
    centre = grey[1:-1, 1:-1]
    laplacian = grey[:-2, 1:-1] + grey[2:, 1:-1] + grey[1:-1, :-2] + grey[1:-1, 2:] - 4 * centre
    return float(laplacian.var())


def thumbnail(image: Image.Image) -> np.ndarray:
    small = image.convert("L").resize(THUMBNAIL_SIZE, Image.Resampling.BOX)
    return np.asarray(small, dtype=np.float32)


def coarse_unit(levels: np.ndarray) -> np.ndarray:
    """The thumbnail at half size, zero-mean and unit-norm (for correlation)."""
    rows, columns = levels.shape
    vector = levels.reshape(rows // 2, 2, columns // 2, 2).mean(axis=(1, 3)).ravel()
    vector = vector - vector.mean()
    norm = float(np.linalg.norm(vector))
    return vector / norm if norm > 0 else vector


def relative_shift(a: np.ndarray, b: np.ndarray) -> float:
    """How far ``b`` is moved against ``a`` (phase correlation), as a share of the side."""
    cross = np.fft.rfft2(a - a.mean()) * np.conj(np.fft.rfft2(b - b.mean()))
    peak = np.fft.irfft2(cross / (np.abs(cross) + 1e-9), s=a.shape)
    dy, dx = np.unravel_index(int(np.argmax(peak)), a.shape)
    rows, columns = a.shape
    dy, dx = min(dy, rows - dy), min(dx, columns - dx)  # the peak wraps around
    return max(dy / rows, dx / columns)


def exif_fields(data: bytes) -> dict[str, float | str | None]:
    """Focal length (mm and 35 mm equivalent) and camera make/model, where EXIF has them."""
    try:
        with Image.open(io.BytesIO(data)) as image:
            exif = image.getexif()
            sub = exif.get_ifd(_EXIF_IFD)
    except (OSError, ValueError, SyntaxError):
        return {}
    return {
        "focal_length_mm": _positive(sub.get(_FOCAL_LENGTH)),
        "focal_length_35mm": _positive(sub.get(_FOCAL_LENGTH_35MM)),
        "camera_make": _text(exif.get(_MAKE)),
        "camera_model": _text(exif.get(_MODEL)),
    }


def _positive(value: object) -> float | None:
    try:
        number = float(value)  # type: ignore[arg-type]  # IFDRational, int or junk
    except (TypeError, ValueError, ZeroDivisionError):
        return None
    return round(number, 3) if np.isfinite(number) and number > 0 else None


def _text(value: object) -> str | None:
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    if not isinstance(value, str):
        return None
    cleaned = value.replace("\x00", "").strip()
    return cleaned[:100] or None


def hygiene_report(
    images: Sequence[tuple[str, bytes]],
    embeddings: np.ndarray,
    thresholds: HygieneThresholds | None = None,
) -> HygieneReport:
    """Measure ``images`` (name, bytes) and judge them; ``embeddings`` (rows aligned with
    ``images``, L2-normalised; those of undecodable images are ignored) propose duplicates."""
    return judge([measure_image(name, data) for name, data in images], embeddings, thresholds)


def judge(
    measured: Sequence[Measured], embeddings: np.ndarray, thresholds: HygieneThresholds | None
) -> HygieneReport:
    """The report from measures already taken: flags, duplicate groups, actions."""
    limits = thresholds or HygieneThresholds()
    decodable = [m.hygiene for m in measured if m.thumbnail is not None]
    # Clipped pixels have no edges: a crushed or blown-out image measures as blurred, so it
    # neither sets the dataset's sharpness nor is judged by it (its exposure flag says why).
    sharpness = [h.sharpness for h in decodable if h.sharpness is not None and _exposed(h, limits)]
    median = float(np.median(sharpness)) if sharpness else 0.0
    for hygiene in decodable:
        _judge_image(hygiene, median, limits)
    groups = duplicate_groups(measured, embeddings, limits.duplicate_similarity)
    for group in groups:
        for name in group.images:
            if name == group.keep:
                continue
            hygiene = next(m.hygiene for m in measured if m.hygiene.filename == name)
            hygiene.duplicate_group = group.id
            hygiene.flags.append(HygieneFlag.near_duplicate)
            hygiene.reasons.append(f"a near-duplicate of {group.keep}, which is sharper")
            hygiene.action = Action.drop
        keeper = next(m.hygiene for m in measured if m.hygiene.filename == group.keep)
        keeper.duplicate_group = group.id
    return HygieneReport(
        thresholds=limits, images=[m.hygiene for m in measured], duplicate_groups=groups
    )


def _exposed(hygiene: ImageHygiene, limits: HygieneThresholds) -> bool:
    """Whether the image is well exposed: neither clipped share above the limit."""
    clipped = max(hygiene.clipped_highlights or 0, hygiene.clipped_shadows or 0)
    return clipped <= limits.clipped_share


def _judge_image(hygiene: ImageHygiene, median: float, limits: HygieneThresholds) -> None:
    drop, review = [], []
    if hygiene.sharpness is not None and median > 0 and _exposed(hygiene, limits):
        hygiene.relative_sharpness = round(hygiene.sharpness / median, 4)
        share = f"{hygiene.relative_sharpness:.0%} of the dataset's median sharpness"
        if hygiene.relative_sharpness < limits.blur_drop:
            drop.append(f"blurred: {share}")
        elif hygiene.relative_sharpness < limits.blur_review:
            review.append(f"blurred: {share}")
        if hygiene.relative_sharpness < limits.blur_review:
            hygiene.flags.append(HygieneFlag.blurry)
    if (hygiene.clipped_highlights or 0) > limits.clipped_share:
        hygiene.flags.append(HygieneFlag.overexposed)
        review.append(f"overexposed: {hygiene.clipped_highlights:.0%} of pixels clipped white")
    if (hygiene.clipped_shadows or 0) > limits.clipped_share:
        hygiene.flags.append(HygieneFlag.underexposed)
        review.append(f"underexposed: {hygiene.clipped_shadows:.0%} of pixels crushed black")
    if hygiene.width and hygiene.height and min(hygiene.width, hygiene.height) < limits.min_side:
        hygiene.flags.append(HygieneFlag.low_resolution)
        review.append(f"low resolution: {hygiene.width}×{hygiene.height}")
    hygiene.reasons = drop + review
    hygiene.action = Action.drop if drop else Action.review if review else Action.keep


def duplicate_groups(
    measured: Sequence[Measured], embeddings: np.ndarray, min_correlation: float
) -> list[DuplicateGroup]:
    """Connected groups of images whose thumbnails correlate ≥ ``min_correlation`` and are
    aligned, among each image's embedding neighbours; each group keeps its sharpest image."""
    usable = [i for i, m in enumerate(measured) if m.thumbnail is not None]
    if len(usable) < 2:
        return []
    vectors = np.asarray(embeddings, dtype=np.float32)[usable]
    neighbours, _ = nearest_neighbours(vectors, DUPLICATE_CANDIDATES)
    parent = list(range(len(usable)))

    def root(a: int) -> int:
        while parent[a] != a:
            parent[a] = parent[parent[a]]
            a = parent[a]
        return a

    levels = [measured[i].thumbnail for i in usable]
    coarse = [coarse_unit(level) for level in levels if level is not None]
    for a, row in enumerate(neighbours):
        for b in map(int, row):
            if float(coarse[a] @ coarse[b]) < min_correlation:
                continue
            level_a, level_b = levels[a], levels[b]
            assert level_a is not None and level_b is not None
            if relative_shift(level_a, level_b) <= MAX_DUPLICATE_SHIFT:
                parent[root(a)] = root(b)
    members: dict[int, list[int]] = {}
    for a in range(len(usable)):
        members.setdefault(root(a), []).append(usable[a])
    groups: list[DuplicateGroup] = []
    for indices in (m for m in members.values() if len(m) > 1):
        names = [measured[i].hygiene.filename for i in sorted(indices)]
        sharpest = max(sorted(indices), key=lambda i: measured[i].hygiene.sharpness or 0.0)
        groups.append(
            DuplicateGroup(id=len(groups), images=names, keep=measured[sharpest].hygiene.filename)
        )
    return groups

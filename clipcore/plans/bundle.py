"""A plan's ready-to-run artefacts, as text files and as one deterministic zip archive.

:func:`plan_files` turns a finished plan (scene summary, pair shortlist, hygiene report)
into the files an engineer runs next to the images:

* ``pairs.txt`` — the shortlist in hloc's format (``name0 name1`` per line), read the same
  way by COLMAP's ``matches_importer --match_type pairs`` and deep-image-matching's
  ``custom_pairs``; only pairs between images that hygiene did not drop;
* ``images.txt`` — the images to use, one per line (COLMAP's ``--image_list_path``, hloc's
  ``image_list``);
* ``run_hloc.py`` — hloc's ``extract_features`` + ``match_features`` (``match_dense`` for
  detector-free matchers) on ``pairs.txt``, then ``reconstruction.main``;
* ``run_colmap.sh`` / ``run_glomap.sh`` — ``colmap feature_extractor``, ``colmap
  matches_importer`` on ``pairs.txt``, then ``colmap mapper`` or ``glomap mapper``
  (``colmap global_mapper`` where COLMAP >= 4.0 has absorbed GLOMAP);
* ``dim_config.yaml`` — only where deep-image-matching has a pipeline for the matcher;
* ``README.md`` — what the plan found and how to run each script.

The API process imports this module: it is stdlib + pydantic + clipq's schema modules only.

**File names are untrusted** (a client uploaded them). They reach the scripts only through
``pairs.txt`` and ``images.txt``, which the scripts read as data; no name is ever written
into shell or Python code. hloc splits pair lines on whitespace and COLMAP skips lines
starting with ``#``, so a name with whitespace, a control or invisible character, a
leading ``#`` or a path separator cannot be written to those files faithfully: such
images are left out of both files and listed in the README with the reason
(:func:`unsafe_name_reason` lets the API refuse them up front instead).

**The taxonomy may be a client's own**, so its values are untrusted too: hloc conf names
reach Python as ``repr`` literals, COLMAP options reach the shell through
:func:`shlex.quote`, and any of its text that lands in a comment or the README is flattened
to one line and escaped.

**hloc fallback.** The overall matcher may have no hloc integration (XFeat, MASt3R, ...).
``run_hloc.py`` then runs the first option with one among the dataset's scenes, dominant
scenes first (largest first), then the other scenes present. Within a scene the slots are
tried in the order of :data:`FALLBACK_SLOTS`: the job's own speed slot, then the scene's
primary (its balanced choice), then its alternative (the taxonomy's named substitute), then
the remaining slot. A fast job takes the fastest such option and an accurate job the
slowest (slower is taken as more robust, as in :mod:`clipcore.scenes`), ties in slot order.
The script's header and the README say which option was taken and why.
"""

from __future__ import annotations

import io
import re
import shlex
import stat
import unicodedata
import zipfile
from collections import Counter
from collections.abc import Container, Iterable, Sequence
from dataclasses import dataclass

from clipcore.plans.schemas import Action, HygieneReport, ImageHygiene, PairShortlist
from clipcore.scenes import DatasetSummary
from clipcore.taxonomy import (
    ColmapConfig,
    HlocConfig,
    Matcher,
    Recommendations,
    Speed,
    Taxonomy,
)

PAIRS_FILE = "pairs.txt"
IMAGES_FILE = "images.txt"
HLOC_SCRIPT = "run_hloc.py"
COLMAP_SCRIPT = "run_colmap.sh"
GLOMAP_SCRIPT = "run_glomap.sh"
DIM_CONFIG = "dim_config.yaml"
README = "README.md"
EXECUTABLES = frozenset({HLOC_SCRIPT, COLMAP_SCRIPT, GLOMAP_SCRIPT})
DEFAULT_FOLDER = "clipq-plan"

# Zip's earliest representable time: the archive's bytes depend on the plan alone.
_ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)
_FOLDER_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")

# Slot order per job speed when the overall matcher has no hloc integration (module doc).
FALLBACK_SLOTS: dict[Speed, tuple[str, ...]] = {
    Speed.balanced: ("primary", "alternative", "accurate", "fast"),
    Speed.fast: ("fast", "primary", "alternative", "accurate"),
    Speed.accurate: ("accurate", "primary", "alternative", "fast"),
}

# COLMAP's matches_importer takes the feature-matching and two-view-geometry options
# (OptionManager::AddFeatureMatchingOptions / AddTwoViewGeometryOptions in COLMAP 4,
# AddMatchingOptions in 3.x); options of the matcher command that pairs.txt replaces
# (ExhaustiveMatching.*, SequentialMatching.*, VocabTreeMatching.*) would be refused.
_IMPORTER_PREFIXES = ("FeatureMatching.", "SiftMatching.", "AlikedMatching.", "TwoViewGeometry.")
_SINGLE_CAMERA_OPTION = "ImageReader.single_camera"

# deep-image-matching pipelines (its config.py ``confs``) for hloc's matcher confs, and for
# matchers that hloc lacks, by name. Only these get a dim_config.yaml.
_DIM_BY_HLOC_MATCHER = {
    "superpoint+lightglue": "superpoint+lightglue",
    "superglue": "superpoint+superglue",
    "superglue-fast": "superpoint+superglue",
    "disk+lightglue": "disk+lightglue",
    "aliked+lightglue": "aliked+lightglue",
    "NN-ratio": "sift+kornia_matcher",  # with hloc's 'sift' features only, checked below
    "loftr": "loftr",
    "loftr_aachen": "loftr",
    "loftr_superpoint": "loftr",
}
_DIM_BY_NAME = {"loftr": "loftr", "se2-loftr": "se2loftr", "se2loftr": "se2loftr", "roma": "roma"}
# extractor / matcher names of each pipeline, which DIM's YAML must repeat.
_DIM_PIPELINES = {
    "superpoint+lightglue": ("superpoint", "lightglue"),
    "superpoint+superglue": ("superpoint", "superglue"),
    "disk+lightglue": ("disk", "lightglue"),
    "aliked+lightglue": ("aliked", "lightglue"),
    "sift+kornia_matcher": ("sift", "kornia_matcher"),
    "loftr": ("no_extractor", "loftr"),
    "se2loftr": ("no_extractor", "se2loftr"),
    "roma": ("no_extractor", "roma"),
}

# EXIF: one camera "dominates" above this share of the images that name one.
DOMINANT_CAMERA_SHARE = 0.8


# --- file names ------------------------------------------------------------------------

# Categories that cannot sit in a space-separated, line-based list, or that hide what a
# name really is: controls, format (invisible, bidi overrides), surrogates, unassigned,
# private use, separators.
_BAD_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zs", "Zl", "Zp"})


def unsafe_name_reason(name: str) -> str | None:
    """Why ``name`` cannot go into ``pairs.txt`` / ``images.txt`` as it is, or None.

    hloc splits pair lines on whitespace and COLMAP trims them, skips lines starting with
    ``#`` and splits on spaces; a separator would make the name a path.
    """
    if not name:
        return "it is empty"
    for char in name:
        if char.isspace() or unicodedata.category(char) in _BAD_CATEGORIES:
            kind = "whitespace" if char.isspace() else "a control or invisible character"
            return f"it contains {kind} (U+{ord(char):04X}), which the pair lists cannot hold"
    if name.startswith("#"):
        return "it starts with '#', which COLMAP reads as a comment line"
    if "/" in name or "\\" in name or name in {".", ".."}:
        return "it is a path, not a plain file name"
    return None


# --- what the plan uses ----------------------------------------------------------------


@dataclass(frozen=True)
class HlocChoice:
    """The matcher whose hloc confs run_hloc.py runs; ``scene``/``slot`` set for a fallback."""

    matcher: Matcher
    hloc: HlocConfig
    scene: str | None = None
    slot: str | None = None


@dataclass(frozen=True)
class _Plan:
    summary: DatasetSummary
    shortlist: PairShortlist
    hygiene: HygieneReport
    model: str
    taxonomy: Taxonomy
    speed: Speed
    images: list[str]  # in order: the images to use
    pairs: list[tuple[str, str]]
    dropped: list[ImageHygiene]
    review: list[ImageHygiene]
    unsafe: dict[str, str]  # name -> why it was left out
    hloc: HlocChoice | None
    dim_pipeline: str | None
    single_camera: bool


def hloc_choice(summary: DatasetSummary, taxonomy: Taxonomy, speed: Speed) -> HlocChoice | None:
    """The overall matcher if hloc runs it, else the fallback of the module docstring."""
    overall = summary.overall.matcher
    if overall.pipeline is not None and overall.pipeline.hloc is not None:
        return HlocChoice(overall, overall.pipeline.hloc)
    speed = Speed(speed)
    scenes = list(dict.fromkeys([*summary.dominant_scenes, *summary.scene_distribution]))
    for scene in scenes:
        if scene not in taxonomy.scene_names:
            continue  # a summary made with another taxonomy: nothing to look up
        for slot, matcher in _fallback_options(taxonomy.scene(scene).recommendations, speed):
            if matcher.pipeline is not None and matcher.pipeline.hloc is not None:
                return HlocChoice(matcher, matcher.pipeline.hloc, scene, slot)
    return None


def _fallback_options(recommendations: Recommendations, speed: Speed) -> list[tuple[str, Matcher]]:
    """A scene's four options in fallback order: FALLBACK_SLOTS, then by speed if asked."""
    options = [(slot, getattr(recommendations, slot)) for slot in FALLBACK_SLOTS[speed]]
    if speed is Speed.balanced:
        return options
    # sorted() is stable: options of equal speed keep the slot order.
    sign = 1 if speed is Speed.fast else -1
    return sorted(options, key=lambda option: sign * option[1].speed.rank)


def _fallback_order(speed: Speed) -> str:
    order = ", ".join(FALLBACK_SLOTS[speed])
    return {Speed.balanced: order, Speed.fast: f"faster first, then {order}"}.get(
        speed, f"slower first, then {order}"
    )


def dim_pipeline(matcher: Matcher) -> str | None:
    """deep-image-matching's pipeline name for ``matcher``, or None where it has none."""
    hloc = matcher.pipeline.hloc if matcher.pipeline is not None else None
    # DIM's SIFT pipeline stands in for hloc's NN-ratio only when the features are SIFT.
    if (
        hloc is not None
        and hloc.matcher in _DIM_BY_HLOC_MATCHER
        and (hloc.matcher != "NN-ratio" or hloc.features == "sift")
    ):
        return _DIM_BY_HLOC_MATCHER[hloc.matcher]
    return _DIM_BY_NAME.get(matcher.name.strip().lower())


def _plan(
    summary: DatasetSummary,
    shortlist: PairShortlist,
    hygiene: HygieneReport,
    model: str,
    taxonomy: Taxonomy,
    speed: Speed,
) -> _Plan:
    dropped = [i for i in hygiene.images if i.action is Action.drop]
    drop_names = {i.filename for i in dropped}
    # Every image hygiene kept, then any name only the shortlist knows, in order seen.
    candidates = [i.filename for i in hygiene.images if i.action is not Action.drop]
    candidates += [name for p in shortlist.pairs for name in (p.image0, p.image1)]
    unsafe: dict[str, str] = {}
    images: list[str] = []
    for name in dict.fromkeys(candidates):
        if name in drop_names:
            continue  # a pair naming a dropped image
        reason = unsafe_name_reason(name)
        if reason is None:
            images.append(name)
        else:
            unsafe[name] = reason
    used = set(images)
    pairs: list[tuple[str, str]] = []
    seen: set[frozenset[str]] = set()
    for pair in shortlist.pairs:
        key = frozenset((pair.image0, pair.image1))
        if pair.image0 in used and pair.image1 in used and len(key) == 2 and key not in seen:
            seen.add(key)
            pairs.append((pair.image0, pair.image1))
    review = [i for i in hygiene.images if i.action is Action.review and i.filename in used]
    return _Plan(
        summary=summary,
        shortlist=shortlist,
        hygiene=hygiene,
        model=model,
        taxonomy=taxonomy,
        speed=Speed(speed),
        images=images,
        pairs=pairs,
        dropped=dropped,
        review=review,
        unsafe=unsafe,
        hloc=hloc_choice(summary, taxonomy, speed),
        dim_pipeline=dim_pipeline(summary.overall.matcher),
        single_camera=_one_camera(hygiene, used),
    )


def _one_camera(hygiene: HygieneReport, used: set[str]) -> bool:
    """True when EXIF says every image used comes from one camera, focal length and size."""
    kept = [i for i in hygiene.images if i.filename in used]
    if not kept:
        return False
    keys = {(i.camera_make, i.camera_model, i.focal_length_mm, i.width, i.height) for i in kept}
    make, model, focal, width, height = next(iter(keys))
    return len(keys) == 1 and bool(make or model) and None not in (focal, width, height)


# --- text from untrusted sources -------------------------------------------------------

_CONTROLS = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff]")


def _one_line(text: str, limit: int = 500) -> str:
    """Client text fit for a comment or a README line: controls and line breaks removed."""
    flat = " ".join(_CONTROLS.sub(" ", text).split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


_MD_SPECIAL = re.compile(r"([\\`*_\[\]<>|])")


def _md(text: str) -> str:
    """Client text as inert Markdown: no emphasis, links, HTML or table cells."""
    return _MD_SPECIAL.sub(r"\\\1", _one_line(text, limit=2000))


def _code(text: str) -> str:
    """``text`` as a Markdown code span, whatever backticks it holds."""
    text = _one_line(text)
    fence = "`" * (max((len(run) for run in re.findall(r"`+", text)), default=0) + 1)
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def _name(name: str) -> str:
    """A file name for the README: as it is where safe, escaped (ascii) where not."""
    return _code(name if unsafe_name_reason(name) is None else ascii(name))


def _comment(prefix: str, text: str) -> str:
    return f"{prefix} {_one_line(text)}".rstrip()


# --- pairs.txt, images.txt -------------------------------------------------------------


def _lines(rows: Iterable[str]) -> str:
    text = "\n".join(rows)
    return text + "\n" if text else ""


# --- run_hloc.py -----------------------------------------------------------------------

_HLOC_TEMPLATE = '''\
#!/usr/bin/env python3
{header}
"""Match the plan's image pairs with hloc and reconstruct them (hloc.reconstruction).

Usage: python run_hloc.py IMAGES_DIR OUTPUT_DIR

Reads pairs.txt and images.txt next to this script; writes features.h5, matches.h5 and
the COLMAP model (sfm/) under OUTPUT_DIR. Needs hloc and pycolmap.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import NoReturn

PLAN_DIR = Path(__file__).resolve().parent
# A key of hloc.extract_features.confs; None for a detector-free matcher (match_dense).
FEATURES = {features}
# A key of hloc.match_features.confs, or of hloc.match_dense.confs when FEATURES is None.
MATCHER = {matcher}
# EXIF says one camera took every image: estimate one set of intrinsics.
SINGLE_CAMERA = {single_camera}
TITLE = {title}
INSTALL = (
    "install hloc from https://github.com/cvg/Hierarchical-Localization "
    "(git clone --recursive https://github.com/cvg/Hierarchical-Localization && "
    "python -m pip install -e ./Hierarchical-Localization) and pycolmap "
    "(python -m pip install pycolmap)"
)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        # Not TITLE: argparse %-formats a description holding "%(prog)".
        description="Run this clipq plan with hloc; the script's header names the matcher.",
    )
    parser.add_argument("images_dir", type=Path, help="the directory holding the images")
    parser.add_argument("output_dir", type=Path, help="where features, matches and sfm/ go")
    parser.add_argument(
        "--pairs", type=Path, default=PLAN_DIR / "pairs.txt", help="default: %(default)s"
    )
    parser.add_argument(
        "--image-list", type=Path, default=PLAN_DIR / "images.txt", help="default: %(default)s"
    )
    parser.add_argument(
        "--single-camera",
        action=argparse.BooleanOptionalAction,
        default=SINGLE_CAMERA,
        help="one camera for all images (pycolmap.CameraMode.SINGLE); default: %(default)s",
    )
    return parser.parse_args(argv)


def fail(message: str) -> NoReturn:
    sys.exit(f"run_hloc.py: {{message}}")


def conf(confs: dict, name: str, where: str) -> dict:
    if name not in confs:
        fail(f"this hloc has no {{where}} conf {{name!r}}; it has: {{', '.join(sorted(confs))}}")
    return confs[name]


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if not args.images_dir.is_dir():
        fail(f"{{args.images_dir}} is not a directory")
    for path in (args.pairs, args.image_list):
        if not path.is_file():
            fail(f"{{path}} does not exist")
    try:
        import pycolmap
    except ImportError:
        fail("pycolmap is not installed: " + INSTALL)
    try:
        from hloc import extract_features, match_dense, match_features, reconstruction
    except ImportError as exc:
        fail(f"hloc is not installed or incomplete ({{exc}}): " + INSTALL)

    print(f"run_hloc.py: {{TITLE}}", flush=True)
    names = [n for n in args.image_list.read_text(encoding="utf-8").splitlines() if n]
    output = args.output_dir
    output.mkdir(parents=True, exist_ok=True)
    features = output / "features.h5"
    matches = output / "matches.h5"
    if FEATURES is None:
        dense = conf(match_dense.confs, MATCHER, "match_dense")
        features, matches = match_dense.main(
            dense, args.pairs, args.images_dir, features=features, matches=matches
        )
    else:
        extractor = conf(extract_features.confs, FEATURES, "extract_features")
        matcher = conf(match_features.confs, MATCHER, "match_features")
        extract_features.main(extractor, args.images_dir, image_list=names, feature_path=features)
        match_features.main(matcher, args.pairs, features=features, matches=matches)
    # camera_mode only when asked: hloc's default is AUTO, and older hloc lacks the argument.
    single = {{"camera_mode": pycolmap.CameraMode.SINGLE}} if args.single_camera else {{}}
    model = reconstruction.main(
        output / "sfm", args.images_dir, args.pairs, features, matches, image_list=names, **single
    )
    if model is None:
        fail("hloc could not reconstruct a model from these pairs")
    print(model.summary())


if __name__ == "__main__":
    main()
'''


def _hloc_script(plan: _Plan, choice: HlocChoice) -> str:
    overall = plan.summary.overall.matcher
    title = f"{choice.matcher.name} ({_hloc_confs(choice.hloc)})"
    header = [
        _comment("#", "Reconstruction plan made by clipq: hloc on the plan's pairs.txt."),
        _comment("#", f"Matcher: {title}."),
    ]
    if choice.scene is not None:
        header.append(
            _comment(
                "#",
                f"The recommended matcher {overall.name} has no hloc integration; this runs "
                f"{choice.matcher.name}, the {choice.slot} option of scene {choice.scene}.",
            )
        )
    return _HLOC_TEMPLATE.format(
        header="\n".join(header),
        features=repr(choice.hloc.features),
        matcher=repr(choice.hloc.matcher),
        single_camera=repr(plan.single_camera),
        title=repr(_one_line(title)),
    )


def _hloc_confs(hloc: HlocConfig) -> str:
    if hloc.features is None:
        return f"match_dense conf {hloc.matcher}"
    return f"extract_features {hloc.features} + match_features {hloc.matcher}"


# --- run_colmap.sh / run_glomap.sh -----------------------------------------------------

_SHELL_HEAD = """\
#!/usr/bin/env bash
{header}
set -euo pipefail

usage() {{
  echo "usage: {script} IMAGES_DIR OUTPUT_DIR" >&2
  echo "  Reads pairs.txt and images.txt next to this script; writes database.db and" >&2
  echo "  sparse/ under OUTPUT_DIR." >&2
  echo "  DRY_RUN=1: print the commands instead of running them." >&2
  echo "  SINGLE_CAMERA=0|1: one camera for all images (default {single_camera})." >&2
}}
if [[ $# -eq 1 && ( $1 == -h || $1 == --help ) ]]; then usage; exit 0; fi
if [[ $# -ne 2 ]]; then usage; exit 2; fi

PLAN_DIR=$(CDPATH='' cd -- "$(dirname -- "${{BASH_SOURCE[0]}}")" && pwd)
IMAGES_DIR=$1
OUTPUT_DIR=$2
# Absolute, so that no path can start with '-' and read as an option.
[[ $IMAGES_DIR == /* ]] || IMAGES_DIR=$PWD/$IMAGES_DIR
[[ $OUTPUT_DIR == /* ]] || OUTPUT_DIR=$PWD/$OUTPUT_DIR
DATABASE=$OUTPUT_DIR/database.db
DRY_RUN=${{DRY_RUN:-0}}
SINGLE_CAMERA=${{SINGLE_CAMERA:-{single_camera}}}
if [[ $SINGLE_CAMERA != 0 && $SINGLE_CAMERA != 1 ]]; then
  echo "{script}: SINGLE_CAMERA must be 0 or 1" >&2
  exit 2
fi

run() {{
  if [[ $DRY_RUN == 1 ]]; then
    printf '%q' "$1"
    shift
    if [[ $# -gt 0 ]]; then printf ' %q' "$@"; fi
    printf '\\n'
  else
    "$@"
  fi
}}

if [[ $DRY_RUN != 1 ]]; then
  command -v colmap >/dev/null || {{
    echo "{script}: colmap not found on PATH; install COLMAP" \\
      "(https://colmap.github.io/install.html, e.g. conda install -c conda-forge colmap)" >&2
    exit 127
  }}
  [[ -d $IMAGES_DIR ]] || {{
    echo "{script}: IMAGES_DIR is not a directory: $IMAGES_DIR" >&2
    exit 2
  }}
fi
"""

_GLOMAP_DETECT = """
# The standalone glomap binary where installed; COLMAP >= 4.0 has it as 'colmap global_mapper'.
colmap_has_global_mapper() {
  command -v colmap >/dev/null || return 1
  local commands
  commands=$(colmap help 2>&1 || true)
  [[ $commands == *global_mapper* ]]
}
if command -v glomap >/dev/null; then
  MAPPER=(glomap mapper)
elif colmap_has_global_mapper; then
  MAPPER=(colmap global_mapper)
elif [[ $DRY_RUN == 1 ]]; then
  MAPPER=(glomap mapper)
else
  echo "run_glomap.sh: glomap not found on PATH and this colmap has no global_mapper;" \\
    "install GLOMAP (https://github.com/colmap/glomap)" \\
    "or COLMAP >= 4.0 (https://colmap.github.io/install.html)" >&2
  exit 127
fi
"""

_SHELL_STEPS = """
EXTRACT_OPTIONS=({extract_options})
MATCH_OPTIONS=({match_options})
if [[ $SINGLE_CAMERA == 1 ]]; then EXTRACT_OPTIONS+=(--{single_camera_option} 1); fi

run mkdir -p -- "$OUTPUT_DIR/sparse"
run colmap feature_extractor --database_path "$DATABASE" --image_path "$IMAGES_DIR" \\
  --image_list_path "$PLAN_DIR/images.txt" ${{EXTRACT_OPTIONS[@]+"${{EXTRACT_OPTIONS[@]}}"}}
run colmap matches_importer --database_path "$DATABASE" \\
  --match_list_path "$PLAN_DIR/pairs.txt" --match_type pairs \\
  ${{MATCH_OPTIONS[@]+"${{MATCH_OPTIONS[@]}}"}}
"""

_COLMAP_MAPPER = """\
run colmap mapper --database_path "$DATABASE" --image_path "$IMAGES_DIR" \\
  --output_path "$OUTPUT_DIR/sparse"
"""

_GLOMAP_MAPPER = """\
run "${MAPPER[@]}" --database_path "$DATABASE" --image_path "$IMAGES_DIR" \\
  --output_path "$OUTPUT_DIR/sparse"
"""


@dataclass(frozen=True)
class _ColmapSteps:
    extract: list[str]  # argv words, unquoted
    match: list[str]
    notes: list[str]  # comment lines (untrusted text flattened later)


def _colmap_steps(matcher: Matcher) -> _ColmapSteps:
    config: ColmapConfig | None = matcher.pipeline.colmap if matcher.pipeline else None
    if config is None:
        return _ColmapSteps(
            [],
            [],
            [
                f"{matcher.name} has no COLMAP integration: COLMAP's default SIFT extraction "
                "and matching run instead."
            ],
        )
    notes = [f"COLMAP steps for {matcher.name} from the taxonomy (matcher: {config.matcher})."]
    notes.append(f"pairs.txt replaces {config.matcher}: matches_importer matches those pairs.")
    extract = _option_words(config.feature_extractor, notes, skip={_SINGLE_CAMERA_OPTION})
    importer = {k: v for k, v in config.matcher_options.items() if k.startswith(_IMPORTER_PREFIXES)}
    left_out = sorted(set(config.matcher_options) - set(importer))
    if left_out:
        notes.append(f"Left out (options of {config.matcher} only): {', '.join(left_out)}.")
    return _ColmapSteps(extract, _option_words(importer, notes), notes)


def _option_words(
    options: dict[str, str], notes: list[str], skip: Container[str] = ()
) -> list[str]:
    """``--key value`` words; shlex.quote makes any value one inert word, but a NUL cannot
    live in a bash string and no COLMAP value holds a control character: those are left out.
    """
    words: list[str] = []
    for key, value in options.items():
        if key in skip:
            notes.append(f"--{key} is left to SINGLE_CAMERA (COLMAP refuses it twice).")
        elif _CONTROLS.search(value):
            notes.append(f"Left out --{key}: its value holds a control character.")
        else:
            words += [f"--{key}", value]
    return words


def _shell_words(words: Sequence[str]) -> str:
    return " ".join(shlex.quote(w) for w in words)


def _shell_script(plan: _Plan, script: str, mapper: str) -> str:
    matcher = plan.summary.overall.matcher
    steps = _colmap_steps(matcher)
    tool = "COLMAP (incremental mapper)" if mapper == "colmap" else "GLOMAP (global mapper)"
    header = [_comment("#", f"Reconstruction plan made by clipq: {tool} on the plan's pairs.txt.")]
    header += [_comment("#", note) for note in steps.notes]
    text = _SHELL_HEAD.format(
        header="\n".join(header),
        script=script,
        single_camera=int(plan.single_camera),
    )
    if mapper == "glomap":
        text += _GLOMAP_DETECT
    text += _SHELL_STEPS.format(
        extract_options=_shell_words(steps.extract),
        match_options=_shell_words(steps.match),
        single_camera_option=_SINGLE_CAMERA_OPTION,
    )
    return text + (_COLMAP_MAPPER if mapper == "colmap" else _GLOMAP_MAPPER)


# --- dim_config.yaml -------------------------------------------------------------------


def _dim_command(pipeline: str) -> str:
    return (
        f'python main.py --images "$IMAGES_DIR" --pipeline {pipeline} '
        '--strategy custom_pairs --pair_file "$PLAN_DIR/pairs.txt" '
        '--config_file "$PLAN_DIR/dim_config.yaml"'
    )


def _dim_config(plan: _Plan, pipeline: str) -> str:
    extractor, matcher = _DIM_PIPELINES[pipeline]
    name = plan.summary.overall.matcher.name
    return "\n".join(
        [
            _comment("#", f"deep-image-matching configuration for {name} (pipeline {pipeline})."),
            "# Run from a deep-image-matching checkout (github.com/3DOM-FBK/deep-image-matching),",
            "# with IMAGES_DIR and PLAN_DIR (this folder) set:",
            f"#   {_dim_command(pipeline)}",
            "# The extractor and matcher names must be those of the --pipeline.",
            "extractor:",
            f"  name: {extractor}",
            "matcher:",
            f"  name: {matcher}",
            "",
        ]
    )


# --- README.md -------------------------------------------------------------------------


def _pct(part: float, whole: float) -> str:
    return f"{100.0 * part / whole:.1f}%" if whole else "n/a"


def _readme(plan: _Plan, files: Iterable[str]) -> str:
    sections = [
        _readme_summary(plan),
        _readme_matcher(plan),
        _readme_pairs(plan),
        _readme_hygiene(plan),
        _readme_intrinsics(plan),
        _readme_run(plan, set(files)),
    ]
    return "\n\n".join(s.rstrip("\n") for s in sections) + "\n"


def _readme_summary(plan: _Plan) -> str:
    s = plan.summary
    t = plan.taxonomy
    lines = [
        "# Reconstruction plan",
        "",
        f"Made by clipq with model {_code(plan.model)}, taxonomy {_code(t.name)} "
        f"version {_code(t.version)}, speed preference {_code(plan.speed.value)}.",
        "",
        "## Dataset",
        "",
        f"{s.total_images} images; {'mixed' if s.mixed else 'a single scene'}.",
        "",
        "| scene | share | dominant | its matcher |",
        "| --- | ---: | :---: | --- |",
    ]
    dominant = {d.scene: d for d in s.recommended_matchers}
    for scene, share in s.scene_distribution.items():
        entry = dominant.get(scene)
        lines.append(
            f"| {_md(scene)} | {share:g}% | {'yes' if entry else ''} | "
            f"{_md(entry.matcher.name) if entry else ''} |"
        )
    return "\n".join(lines)


def _readme_matcher(plan: _Plan) -> str:
    overall = plan.summary.overall
    m = overall.matcher
    lines = [
        "## Matcher",
        "",
        f"**{_md(m.name)}** ({m.speed.value}). {_md(overall.reason)}",
        "",
        f"Why {_md(m.name)}: {_md(m.reason)}",
    ]
    if m.pipeline is not None:
        lines += ["", f"Project: {_code(m.pipeline.project)}"]
        if m.pipeline.notes:
            lines += ["", f"Notes: {_md(m.pipeline.notes)}"]
    lines.append("")
    choice = plan.hloc
    if choice is None:
        lines.append(
            f"No hloc integration: {_md(m.name)} has none, nor has any other option of the "
            "dataset's scenes, so the plan has no run_hloc.py."
        )
    elif choice.scene is None:
        lines.append(f"hloc runs it as {_code(_hloc_confs(choice.hloc))}.")
    else:
        lines.append(
            f"{_md(m.name)} has no hloc integration, so run_hloc.py runs "
            f"**{_md(choice.matcher.name)}** ({_code(_hloc_confs(choice.hloc))}): the "
            f"{choice.slot} option of scene {_md(choice.scene)}, the first with hloc "
            "integration among the dataset's scenes (dominant ones first, largest first), "
            f"trying each scene's options in the order the {plan.speed.value} speed "
            f"preference gives: {_fallback_order(plan.speed)}."
        )
    return "\n".join(lines)


def _readme_pairs(plan: _Plan) -> str:
    sl = plan.shortlist
    n = len(plan.images)
    full = n * (n - 1) // 2
    how = {
        "retrieval": f"each image's {sl.pairs_per_image} nearest neighbours by CLIP embedding",
        "sequential": f"each image with the next {sl.window} in file-name order",
        "retrieval+sequential": f"the {sl.pairs_per_image} nearest neighbours by CLIP "
        f"embedding, merged with a sequential window of {sl.window}",
        "exhaustive": "every pair",
    }[sl.strategy.value]
    lines = [
        "## Pairs",
        "",
        f"{len(plan.pairs)} pairs to match among {n} images ({PAIRS_FILE}), against "
        f"n(n-1)/2 = {full} exhaustively ({_pct(len(plan.pairs), full)}); the whole dataset "
        f"would take {sl.exhaustive_pairs}.",
        "",
        f"Strategy {_code(sl.strategy.value)}: {how} (k = {sl.pairs_per_image}, "
        f"window = {sl.window}).",
    ]
    paired = {name for pair in plan.pairs for name in pair}
    unpaired = [name for name in plan.images if name not in paired]
    if unpaired:
        lines += [
            "",
            f"In no pair (they cannot register): {', '.join(_name(x) for x in unpaired)}.",
        ]
    return "\n".join(lines)


def _readme_hygiene(plan: _Plan) -> str:
    counts = plan.hygiene.actions()
    lines = [
        "## Dataset hygiene",
        "",
        f"keep {counts[Action.keep]}, review {counts[Action.review]}, drop "
        f"{counts[Action.drop]}. Dropped images are in neither {IMAGES_FILE} nor "
        f"{PAIRS_FILE}; images to review are kept.",
    ]
    for title, images in (("Dropped", plan.dropped), ("To review", plan.review)):
        if images:
            lines += ["", f"### {title}", ""]
            lines += [f"- {_name(i.filename)}: {_reasons(i)}" for i in images]
    if plan.hygiene.duplicate_groups:
        lines += ["", "### Near-duplicate groups", "", "| group | images | keep |"]
        lines.append("| ---: | --- | --- |")
        for group in plan.hygiene.duplicate_groups:
            members = ", ".join(_name(x) for x in group.images)
            lines.append(f"| {group.id} | {members} | {_name(group.keep)} |")
    if plan.unsafe:
        lines += [
            "",
            "### Left out: file names the pair lists cannot hold",
            "",
            "hloc splits pair lines on whitespace and COLMAP skips lines starting with '#', "
            "so these images are in neither file. Rename them (e.g. spaces to '_') and make "
            "a new plan to use them.",
            "",
        ]
        lines += [f"- {_name(name)}: {why}" for name, why in plan.unsafe.items()]
    return "\n".join(lines)


def _reasons(image: ImageHygiene) -> str:
    flags = ", ".join(f.value for f in image.flags)
    reasons = "; ".join(_md(r) for r in image.reasons)
    return " — ".join(x for x in (flags, reasons) if x) or "no reason given"


def _readme_intrinsics(plan: _Plan) -> str:
    used = set(plan.images)
    kept = [i for i in plan.hygiene.images if i.filename in used]
    lines = ["## Intrinsics priors (EXIF)", ""]
    cameras = Counter(
        _one_line(" ".join(x for x in (i.camera_make, i.camera_model) if x))
        for i in kept
        if i.camera_make or i.camera_model
    )
    focal = Counter(i.focal_length_mm for i in kept if i.focal_length_mm)
    focal35 = Counter(i.focal_length_35mm for i in kept if i.focal_length_35mm)
    if not cameras and not focal:
        lines.append(
            "No EXIF camera or focal length in the images used: COLMAP starts from a focal "
            "length of 1.2 × the longer side (ImageReader.default_focal_length_factor) and "
            "refines it."
        )
        return "\n".join(lines)
    total = len(kept)
    if cameras:
        listed = ", ".join(f"{_md(name)} ({count})" for name, count in cameras.most_common())
        lines.append(f"Cameras named by EXIF for {sum(cameras.values())} of {total}: {listed}.")
    if focal:
        listed = ", ".join(f"{v:g} mm ({c})" for v, c in sorted(focal.items()))
        lines.append(f"Focal lengths (FocalLength): {listed}.")
    if focal35:
        listed = ", ".join(f"{v:g} mm ({c})" for v, c in sorted(focal35.items()))
        lines.append(f"35 mm equivalents (FocalLengthIn35mmFilm): {listed}.")
    lines += ["", "COLMAP and hloc (pycolmap) read these EXIF values as focal-length priors."]
    top_count = cameras.most_common(1)[0][1] if cameras else 0
    if plan.single_camera:
        lines.append(
            "Every image used names the same camera, focal length and size, so the scripts "
            "default to one shared camera (`--ImageReader.single_camera 1`; hloc "
            "`CameraMode.SINGLE`): one set of intrinsics, estimated from all images. Set "
            "SINGLE_CAMERA=0 (run_hloc.py --no-single-camera) if the zoom or lens changed."
        )
    elif cameras and top_count / sum(cameras.values()) >= DOMINANT_CAMERA_SHARE:
        lines.append(
            f"One camera dominates ({top_count} of {total} images), but not with one focal "
            "length and size throughout, so the scripts keep a camera per image. Where the "
            "images come from that camera at one fixed zoom, `--ImageReader.single_camera 1` "
            "(SINGLE_CAMERA=1; run_hloc.py --single-camera) shares one set of intrinsics "
            "and is more robust."
        )
    else:
        lines.append("Several cameras: the scripts keep a camera per image.")
    return "\n".join(lines)


def _readme_run(plan: _Plan, files: set[str]) -> str:
    lines = [
        "## How to run",
        "",
        "Each script takes the images directory and an output directory; the images keep "
        f"their uploaded names. The scripts read {PAIRS_FILE} and {IMAGES_FILE} from this "
        "folder.",
        "",
        "```sh",
    ]
    if HLOC_SCRIPT in files:
        lines.append(f"python {HLOC_SCRIPT} /path/to/images /path/to/output   # hloc")
    lines += [
        f"bash {COLMAP_SCRIPT} /path/to/images /path/to/output   # COLMAP, incremental mapper",
        f"bash {GLOMAP_SCRIPT} /path/to/images /path/to/output   # GLOMAP, global mapper",
        f"DRY_RUN=1 bash {COLMAP_SCRIPT} /path/to/images /path/to/output   # print the commands",
        "```",
        "",
    ]
    if HLOC_SCRIPT in files:
        lines.append(
            f"- {HLOC_SCRIPT}: needs hloc (github.com/cvg/Hierarchical-Localization) and "
            "pycolmap; `--help` lists its options."
        )
    lines += [
        f"- {COLMAP_SCRIPT}: `colmap feature_extractor`, `colmap matches_importer "
        "--match_type pairs`, `colmap mapper`; the model lands in OUTPUT/sparse/0.",
        f"- {GLOMAP_SCRIPT}: the same extraction and matching, then `glomap mapper`, or "
        "`colmap global_mapper` where COLMAP >= 4.0 (which absorbed GLOMAP) is installed "
        "without the standalone glomap.",
    ]
    if plan.dim_pipeline is not None:
        lines += [
            f"- {DIM_CONFIG}: deep-image-matching pipeline {_code(plan.dim_pipeline)} on "
            "the plan's pairs; from a deep-image-matching checkout, with IMAGES_DIR and "
            "PLAN_DIR (this folder) set:",
            "",
            "  ```sh",
            f"  {_dim_command(plan.dim_pipeline)}",
            "  ```",
        ]
    else:
        name = _md(plan.summary.overall.matcher.name)
        lines.append(
            f"- No {DIM_CONFIG}: deep-image-matching has no pipeline for {name} "
            "(it has SuperPoint/DISK/ALIKED + LightGlue, SuperPoint + SuperGlue, SIFT, "
            "LoFTR, SE2-LoFTR and RoMa among others)."
        )
    return "\n".join(lines)


# --- the plan's files and archive ------------------------------------------------------


def plan_files(
    summary: DatasetSummary,
    shortlist: PairShortlist,
    hygiene: HygieneReport,
    *,
    model: str,
    taxonomy: Taxonomy,
    speed: Speed,
) -> dict[str, str]:
    """The plan's artefacts: path in the archive -> text (see the module docstring).

    ``run_hloc.py`` is left out where no option of the dataset's scenes has an hloc
    integration, ``dim_config.yaml`` where deep-image-matching lacks the matcher; the
    README says why.
    """
    plan = _plan(summary, shortlist, hygiene, model, taxonomy, speed)
    files = {
        PAIRS_FILE: _lines(f"{a} {b}" for a, b in plan.pairs),
        IMAGES_FILE: _lines(plan.images),
        COLMAP_SCRIPT: _shell_script(plan, COLMAP_SCRIPT, "colmap"),
        GLOMAP_SCRIPT: _shell_script(plan, GLOMAP_SCRIPT, "glomap"),
    }
    if plan.hloc is not None:
        files[HLOC_SCRIPT] = _hloc_script(plan, plan.hloc)
    if plan.dim_pipeline is not None:
        files[DIM_CONFIG] = _dim_config(plan, plan.dim_pipeline)
    files[README] = _readme(plan, files)
    return dict(sorted(files.items()))


def plan_archive(
    summary: DatasetSummary,
    shortlist: PairShortlist,
    hygiene: HygieneReport,
    *,
    model: str,
    taxonomy: Taxonomy,
    speed: Speed,
    folder: str = DEFAULT_FOLDER,
) -> bytes:
    """:func:`plan_files` as a zip under ``folder/``: the same plan gives the same bytes.

    Entries are sorted, dated 1980-01-01 and marked Unix (scripts 0755, the rest 0644).
    """
    if not _FOLDER_RE.match(folder):
        raise ValueError(f"folder {folder!r} must be a plain name of letters, digits, . _ -")
    files = plan_files(summary, shortlist, hygiene, model=model, taxonomy=taxonomy, speed=speed)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for path, text in sorted(files.items()):
            info = zipfile.ZipInfo(f"{folder}/{path}", date_time=_ZIP_EPOCH)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.create_system = 3  # Unix, so that unzip applies the modes below
            mode = 0o755 if path in EXECUTABLES else 0o644
            info.external_attr = (stat.S_IFREG | mode) << 16
            # Lone surrogates (possible in JSON) cannot be UTF-8; escaped, never dropped.
            archive.writestr(info, text.encode("utf-8", "backslashreplace"))
    return buffer.getvalue()

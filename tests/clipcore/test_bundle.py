"""A plan's artefacts: the zip, pairs/images lists, and the scripts run for real.

The scripts run against stand-ins: a fake ``colmap`` / ``glomap`` on PATH that records its
argv, and a fake ``hloc`` / ``pycolmap`` package whose functions have hloc's real
signatures (a wrong keyword fails as it would with hloc). Nothing here needs hloc, COLMAP
or a GPU.
"""

from __future__ import annotations

import ast
import contextlib
import io
import json
import shlex
import shutil
import subprocess
import sys
import zipfile
from itertools import pairwise
from pathlib import Path
from typing import Any

import pytest

from clipcore.plans.bundle import (
    COLMAP_SCRIPT,
    DIM_CONFIG,
    GLOMAP_SCRIPT,
    HLOC_SCRIPT,
    IMAGES_FILE,
    PAIRS_FILE,
    README,
    dim_pipeline,
    hloc_choice,
    plan_archive,
    plan_files,
    unsafe_name_reason,
)
from clipcore.plans.schemas import (
    Action,
    DuplicateGroup,
    HygieneFlag,
    HygieneReport,
    HygieneThresholds,
    ImageHygiene,
    ImagePair,
    PairShortlist,
    PairSource,
    ShortlistStrategy,
)
from clipcore.scenes import DatasetSummary, summarize_dataset
from clipcore.taxonomy import Speed, Taxonomy, load_default_taxonomy, parse_taxonomy

# hloc's conf names, as read from github.com/cvg/Hierarchical-Localization:
# hloc/extract_features.py @ 0ea601c2382e735f7a02b8f14903f2f8678a591c
HLOC_EXTRACT_CONFS = {
    "superpoint_aachen",
    "superpoint_max",
    "superpoint_inloc",
    "r2d2",
    "d2net-ss",
    "sift",
    "sosnet",
    "disk",
    "dir",
    "netvlad",
    "openibl",
    "eigenplaces",
}
# hloc/match_features.py @ 026e6698a826a9d7e32d506fe13861a97bcc8cfd
HLOC_MATCH_CONFS = {
    "superpoint+lightglue",
    "disk+lightglue",
    "superglue",
    "superglue-fast",
    "NN-superpoint",
    "NN-ratio",
    "NN-mutual",
    "adalam",
}
# hloc/match_dense.py @ d6213cf643bc3b3e41840a8044b2115aeb843f76
HLOC_DENSE_CONFS = {"loftr", "loftr_aachen", "loftr_superpoint"}
# deep-image-matching's pipelines (extractor, matcher names), from
# github.com/3DOM-FBK/deep-image-matching src/deep_image_matching/config.py
# @ 5dffba2e8b6f5dae0f2a6c2c03e279f663ac70c2
DIM_CONFS = {
    "superpoint+lightglue": ("superpoint", "lightglue"),
    "superpoint+lightglue_fast": ("superpoint", "lightglue"),
    "superpoint+superglue": ("superpoint", "superglue"),
    "disk+lightglue": ("disk", "lightglue"),
    "aliked+lightglue": ("aliked", "lightglue"),
    "orb+kornia_matcher": ("orb", "kornia_matcher"),
    "sift+kornia_matcher": ("sift", "kornia_matcher"),
    "loftr": ("no_extractor", "loftr"),
    "se2loftr": ("no_extractor", "se2loftr"),
    "roma": ("no_extractor", "roma"),
    "keynetaffnethardnet+kornia_matcher": ("keynetaffnethardnet", "kornia_matcher"),
    "dedode+kornia_matcher": ("dedode", "kornia_matcher"),
}

# Fake hloc: the real signatures (same commits as above; reconstruction.main as of hloc's
# pycolmap-based version), recording each call into $FAKE_LOG.
FAKE_HLOC = {
    "hloc/__init__.py": "",
    "hloc/_confs.py": f"EXTRACT = {sorted(HLOC_EXTRACT_CONFS)!r}\n"
    f"MATCH = {sorted(HLOC_MATCH_CONFS)!r}\nDENSE = {sorted(HLOC_DENSE_CONFS)!r}\n",
    "hloc/_record.py": """
import json, os
def plain(value):
    return value if isinstance(value, (list, dict, type(None))) else str(value)
def record(name, **kwargs):
    entry = {"call": name, **{k: plain(v) for k, v in kwargs.items()}}
    with open(os.environ["FAKE_LOG"], "a", encoding="utf-8") as f:
        f.write(json.dumps(entry) + "\\n")
""",
    "hloc/extract_features.py": """
from ._confs import EXTRACT
from ._record import record
confs = {name: {"conf": name} for name in EXTRACT}
def main(conf, image_dir, export_dir=None, as_half=True, image_list=None, feature_path=None,
         overwrite=False):
    record("extract_features", conf=conf, image_dir=image_dir, image_list=image_list,
           feature_path=feature_path)
    return feature_path
""",
    "hloc/match_features.py": """
from ._confs import MATCH
from ._record import record
confs = {name: {"conf": name} for name in MATCH}
def main(conf, pairs, features, export_dir=None, matches=None, features_ref=None,
         overwrite=False):
    record("match_features", conf=conf, pairs=pairs, features=features, matches=matches)
    return matches
""",
    "hloc/match_dense.py": """
from ._confs import DENSE
from ._record import record
confs = {name: {"conf": name} for name in DENSE}
def main(conf, pairs, image_dir, export_dir=None, matches=None, features=None,
         features_ref=None, max_kps=8192, overwrite=False):
    record("match_dense", conf=conf, pairs=pairs, image_dir=image_dir, features=features,
           matches=matches)
    return features, matches
""",
    "hloc/reconstruction.py": """
from ._record import record
import pycolmap
class Model:
    def summary(self):
        return "fake model"
def main(sfm_dir, image_dir, pairs, features, matches,
         camera_mode=pycolmap.CameraMode.AUTO, verbose=False,
         skip_geometric_verification=False, min_match_score=None, image_list=None,
         image_options=None, mapper_options=None):
    record("reconstruction", sfm_dir=sfm_dir, image_dir=image_dir, pairs=pairs,
           features=features, matches=matches, camera_mode=camera_mode,
           image_list=image_list)
    return Model()
""",
}
FAKE_PYCOLMAP = {
    "pycolmap.py": "class CameraMode:\n    AUTO = 'AUTO'\n    SINGLE = 'SINGLE'\n",
}
FAKE_TOOL = """#!{python}
import json, os, sys
with open(os.environ["FAKE_LOG"], "a", encoding="utf-8") as f:
    f.write(json.dumps([os.path.basename(sys.argv[0]), *sys.argv[1:]]) + "\\n")
if sys.argv[1:2] == ["help"] and os.environ.get("FAKE_GLOBAL_MAPPER") == "1":
    print("  global_mapper   Global structure-from-motion")
"""
BASH = shutil.which("bash") or "/bin/bash"
# A directory with spaces, a '$' and backticks: nothing may expand or split it.
AWKWARD = "my $HOME `id` images"


# --- building plans by hand ------------------------------------------------------------


def summary_of(scenes: list[str], speed: Speed = Speed.balanced) -> DatasetSummary:
    return summarize_dataset(load_default_taxonomy(), scenes, speed)


def shortlist_of(pairs: list[tuple[str, str]], n: int) -> PairShortlist:
    return PairShortlist(
        strategy=ShortlistStrategy.retrieval,
        pairs_per_image=3,
        window=0,
        pairs=[
            ImagePair(image0=a, image1=b, similarity=0.9, sources=[PairSource.retrieval])
            for a, b in pairs
        ],
        exhaustive_pairs=n * (n - 1) // 2,
    )


def camera_image(name: str, **extra: Any) -> ImageHygiene:
    exif = {
        "width": 4000,
        "height": 3000,
        "camera_make": "Canon",
        "camera_model": "EOS R5",
        "focal_length_mm": 24.0,
        "focal_length_35mm": 24.0,
    }
    return ImageHygiene(filename=name, **{**exif, **extra})


def hygiene_of(names: list[str]) -> HygieneReport:
    return HygieneReport(thresholds=HygieneThresholds(), images=[camera_image(n) for n in names])


NAMES = ["a.jpg", "b.jpg", "c.jpg", "d.jpg", "blurry.jpg", "dup.jpg"]
PAIRS = [
    ("a.jpg", "b.jpg"),
    ("a.jpg", "blurry.jpg"),
    ("b.jpg", "c.jpg"),
    ("blurry.jpg", "c.jpg"),
    ("c.jpg", "d.jpg"),
    ("b.jpg", "a.jpg"),  # the same pair again, reversed
    ("d.jpg", "dup.jpg"),
]
KEPT_PAIRS = ["a.jpg b.jpg", "b.jpg c.jpg", "c.jpg d.jpg", "d.jpg dup.jpg"]


def plan_args(
    scenes: list[str] | None = None,
    speed: Speed = Speed.balanced,
    taxonomy: Taxonomy | None = None,
) -> dict[str, Any]:
    """A six-image plan: one dropped (blurry), one near-duplicate under review."""
    taxonomy = taxonomy or load_default_taxonomy()
    images = [camera_image(n) for n in NAMES]
    images[4] = images[4].model_copy(
        update={"action": Action.drop, "flags": [HygieneFlag.blurry], "reasons": ["blurry"]}
    )
    images[5] = images[5].model_copy(
        update={
            "action": Action.review,
            "duplicate_group": 0,
            "flags": [HygieneFlag.near_duplicate],
            "reasons": ["near-duplicate of a.jpg"],
        }
    )
    hygiene = HygieneReport(
        thresholds=HygieneThresholds(),
        images=images,
        duplicate_groups=[DuplicateGroup(id=0, images=["a.jpg", "dup.jpg"], keep="a.jpg")],
    )
    scenes = scenes or ["indoor_small"] * 5 + ["outdoor"]
    return {
        "summary": summarize_dataset(taxonomy, scenes, speed),
        "shortlist": shortlist_of(PAIRS, len(NAMES)),
        "hygiene": hygiene,
        "model": "openai/clip-vit-base-patch32",
        "taxonomy": taxonomy,
        "speed": speed,
    }


def unpack(tmp_path: Path, args: dict[str, Any], folder: str = "plan $x `y` dir") -> Path:
    """The plan's archive unpacked under an awkward directory name; returns the plan dir."""
    root = tmp_path / folder
    root.mkdir()
    with zipfile.ZipFile(io.BytesIO(plan_archive(**args))) as archive:
        archive.extractall(root)
    plan = root / "clipq-plan"
    for name in (HLOC_SCRIPT, COLMAP_SCRIPT, GLOMAP_SCRIPT):
        if (plan / name).exists():
            (plan / name).chmod(0o755)  # extractall does not apply modes
    return plan


def write_tree(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    return root


def tool_bin(tmp_path: Path, *tools: str) -> Path:
    """A PATH directory with the fake tools and the few utilities the scripts use."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    for util in ("dirname", "mkdir"):
        found = shutil.which(util)
        assert found, util
        if not (bin_dir / util).exists():
            (bin_dir / util).symlink_to(found)
    for tool in tools:
        (bin_dir / tool).write_text(FAKE_TOOL.format(python=sys.executable))
        (bin_dir / tool).chmod(0o755)
    return bin_dir


def run_script(
    script: Path, *args: str, path: Path, cwd: Path, **env: str
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [BASH, str(script), *args],
        env={"PATH": str(path), "FAKE_LOG": str(cwd / "calls.jsonl"), "HOME": str(cwd), **env},
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=30,
    )


def calls(cwd: Path) -> list[Any]:
    log = cwd / "calls.jsonl"
    return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


def run_python(
    script: Path, *args: str, pythonpath: Path | None, cwd: Path
) -> subprocess.CompletedProcess[str]:
    # -S: no site-packages, so whatever hloc / pycolmap this environment has stays out.
    env = {"FAKE_LOG": str(cwd / "calls.jsonl")}
    if pythonpath is not None:
        env["PYTHONPATH"] = str(pythonpath)
    return subprocess.run(
        [sys.executable, "-S", str(script), *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=30,
    )


def assignments(source: str) -> dict[str, Any]:
    """The module-level NAME = literal assignments of a script."""
    values = {}
    for node in ast.parse(source).body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1:
            target = node.targets[0]
            if isinstance(target, ast.Name):
                with contextlib.suppress(ValueError):
                    values[target.id] = ast.literal_eval(node.value)
    return values


@pytest.fixture
def dirs(tmp_path: Path) -> tuple[Path, Path]:
    images = tmp_path / AWKWARD
    images.mkdir()
    return images, tmp_path / "out put $dir"


# --- the archive -----------------------------------------------------------------------


def test_archive_lists_the_plan_files_with_modes_and_fixed_dates() -> None:
    data = plan_archive(**plan_args())
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        infos = archive.infolist()
        names = [i.filename for i in infos]
        assert archive.testzip() is None
    expected = [PAIRS_FILE, IMAGES_FILE, HLOC_SCRIPT, COLMAP_SCRIPT, GLOMAP_SCRIPT, DIM_CONFIG]
    assert names == sorted(f"clipq-plan/{n}" for n in [*expected, README])
    for info in infos:
        mode = (info.external_attr >> 16) & 0o777
        executable = info.filename.rsplit("/", 1)[1] in {HLOC_SCRIPT, COLMAP_SCRIPT, GLOMAP_SCRIPT}
        assert mode == (0o755 if executable else 0o644), info.filename
        assert info.date_time == (1980, 1, 1, 0, 0, 0)
    assert plan_archive(**plan_args()) == data  # deterministic


def test_archive_folder_must_be_a_plain_name() -> None:
    for folder in ("../x", "a/b", "", "-x"):
        with pytest.raises(ValueError):
            plan_archive(**plan_args(), folder=folder)
    with zipfile.ZipFile(io.BytesIO(plan_archive(**plan_args(), folder="job-42"))) as archive:
        assert all(n.startswith("job-42/") for n in archive.namelist())


def test_module_imports_no_ml_stack() -> None:
    code = (
        "import sys, clipcore.plans.bundle; "
        "bad = {'numpy', 'torch', 'PIL', 'scipy'} & {m.split('.')[0] for m in sys.modules}; "
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


# --- pairs.txt, images.txt -------------------------------------------------------------


def test_pairs_are_the_shortlist_minus_dropped_images_once_each() -> None:
    files = plan_files(**plan_args())
    assert files[PAIRS_FILE].splitlines() == KEPT_PAIRS
    assert files[IMAGES_FILE].splitlines() == ["a.jpg", "b.jpg", "c.jpg", "d.jpg", "dup.jpg"]
    assert "blurry.jpg" not in files[PAIRS_FILE] + files[IMAGES_FILE]


def test_readme_says_pairs_drops_duplicates_and_intrinsics() -> None:
    readme = plan_files(**plan_args())[README]
    assert "4 pairs to match among 5 images" in readme
    assert "n(n-1)/2 = 10" in readme
    assert "the whole dataset would take 15" in readme
    assert "k = 3" in readme and "window = 0" in readme
    dropped = readme.split("### Dropped", 1)[1].split("###", 1)[0]
    assert "`blurry.jpg`" in dropped and "blurry" in dropped
    review = readme.split("### To review", 1)[1].split("###", 1)[0]
    assert "`dup.jpg`" in review and "near-duplicate of a.jpg" in review
    assert "| 0 | `a.jpg`, `dup.jpg` | `a.jpg` |" in readme
    assert "indoor\\_small | 83.33%" in readme
    assert "Canon EOS R5 (5)" in readme and "24 mm (5)" in readme
    assert "--ImageReader.single_camera 1" in readme
    assert "LightGlue" in readme and "suits the whole dataset" in readme


def test_single_camera_follows_exif() -> None:
    args = plan_args()
    assert "SINGLE_CAMERA=${SINGLE_CAMERA:-1}" in plan_files(**args)[COLMAP_SCRIPT]
    mixed = args["hygiene"].model_copy(deep=True)
    mixed.images[1].focal_length_mm = 50.0  # zoomed: no shared intrinsics
    files = plan_files(**{**args, "hygiene": mixed})
    assert "SINGLE_CAMERA=${SINGLE_CAMERA:-0}" in files[COLMAP_SCRIPT]
    assert assignments(files[HLOC_SCRIPT])["SINGLE_CAMERA"] is False
    assert "One camera dominates" in files[README]


# --- run_hloc.py -----------------------------------------------------------------------


def test_hloc_script_parses_and_helps_without_hloc(tmp_path: Path) -> None:
    plan = unpack(tmp_path, plan_args())
    source = (plan / HLOC_SCRIPT).read_text()
    ast.parse(source)
    values = assignments(source)
    assert (values["FEATURES"], values["MATCHER"]) == ("superpoint_aachen", "superpoint+lightglue")
    done = run_python(plan / HLOC_SCRIPT, "--help", pythonpath=None, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "IMAGES_DIR" in done.stdout.upper() and "--single-camera" in done.stdout


def test_hloc_script_fails_loudly_without_hloc_or_pycolmap(
    tmp_path: Path, dirs: tuple[Path, Path]
) -> None:
    plan = unpack(tmp_path, plan_args())
    images, out = dirs
    done = run_python(plan / HLOC_SCRIPT, str(images), str(out), pythonpath=None, cwd=tmp_path)
    assert done.returncode != 0
    assert "pycolmap is not installed" in done.stderr
    assert "pip install" in done.stderr and "Hierarchical-Localization" in done.stderr
    fake = write_tree(tmp_path / "only-pycolmap", FAKE_PYCOLMAP)
    done = run_python(plan / HLOC_SCRIPT, str(images), str(out), pythonpath=fake, cwd=tmp_path)
    assert done.returncode != 0
    assert "hloc is not installed" in done.stderr
    assert (
        "pip install" in done.stderr and "github.com/cvg/Hierarchical-Localization" in done.stderr
    )
    assert "Traceback" not in done.stderr


def test_hloc_script_calls_hloc_with_its_real_signatures(
    tmp_path: Path, dirs: tuple[Path, Path]
) -> None:
    plan = unpack(tmp_path, plan_args())
    images, out = dirs
    fake = write_tree(tmp_path / "fake", {**FAKE_HLOC, **FAKE_PYCOLMAP})
    done = run_python(plan / HLOC_SCRIPT, str(images), str(out), pythonpath=fake, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "fake model" in done.stdout
    extract, match, rec = calls(tmp_path)
    kept = ["a.jpg", "b.jpg", "c.jpg", "d.jpg", "dup.jpg"]
    assert extract["call"] == "extract_features"
    assert extract["conf"] == {"conf": "superpoint_aachen"}
    assert (extract["image_dir"], extract["image_list"]) == (str(images), kept)
    assert match["conf"] == {"conf": "superpoint+lightglue"}
    assert match["pairs"] == str(plan / PAIRS_FILE)
    assert match["features"] == extract["feature_path"] == str(out / "features.h5")
    assert rec["call"] == "reconstruction"
    assert (rec["sfm_dir"], rec["image_list"]) == (str(out / "sfm"), kept)
    assert rec["camera_mode"] == "SINGLE"  # EXIF: one camera, one focal length


def test_detector_free_matcher_runs_match_dense(tmp_path: Path, dirs: tuple[Path, Path]) -> None:
    data = load_default_taxonomy().model_dump(mode="json")
    primary = data["scenes"][0]["recommendations"]["primary"]
    primary["name"] = "LoFTR"
    primary["pipeline"] = {
        "hloc": {"features": None, "matcher": "loftr"},
        "project": "https://github.com/zju3dv/LoFTR",
    }
    plan = unpack(tmp_path, plan_args(taxonomy=parse_taxonomy(data)))
    assert "--pipeline loftr" in (plan / DIM_CONFIG).read_text()
    images, out = dirs
    fake = write_tree(tmp_path / "fake", {**FAKE_HLOC, **FAKE_PYCOLMAP})
    done = run_python(plan / HLOC_SCRIPT, str(images), str(out), pythonpath=fake, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    dense, rec = calls(tmp_path)
    assert (dense["call"], dense["conf"]) == ("match_dense", {"conf": "loftr"})
    assert dense["image_dir"] == str(images)
    assert rec["features"] == dense["features"] and rec["matches"] == dense["matches"]


# --- hloc conf names -------------------------------------------------------------------


def test_every_default_matcher_with_hloc_names_real_confs() -> None:
    checked = 0
    for scene in load_default_taxonomy().scenes:
        for matcher in scene.recommendations.options():
            hloc = matcher.pipeline.hloc if matcher.pipeline else None
            if hloc is None:
                continue
            checked += 1
            if hloc.features is None:
                assert hloc.matcher in HLOC_DENSE_CONFS, (scene.name, matcher.name)
            else:
                assert hloc.features in HLOC_EXTRACT_CONFS, (scene.name, matcher.name)
                assert hloc.matcher in HLOC_MATCH_CONFS, (scene.name, matcher.name)
    assert checked > 0


@pytest.mark.parametrize("speed", list(Speed))
@pytest.mark.parametrize("scene", load_default_taxonomy().scene_names)
def test_every_plan_runs_real_hloc_confs(scene: str, speed: Speed) -> None:
    files = plan_files(**plan_args(scenes=[scene] * 6, speed=speed))
    if HLOC_SCRIPT not in files:
        assert "no run_hloc.py" in files[README]
        return
    values = assignments(files[HLOC_SCRIPT])
    assert values["FEATURES"] in HLOC_EXTRACT_CONFS
    assert values["MATCHER"] in HLOC_MATCH_CONFS


def test_dim_pipelines_exist_in_deep_image_matching() -> None:
    for scene in load_default_taxonomy().scenes:
        for matcher in scene.recommendations.options():
            pipeline = dim_pipeline(matcher)
            assert pipeline is None or pipeline in DIM_CONFS, matcher.name
    files = plan_files(**plan_args())
    config = files[DIM_CONFIG]
    assert "  name: superpoint\n" in config and "  name: lightglue\n" in config
    assert DIM_CONFS["superpoint+lightglue"] == ("superpoint", "lightglue")
    assert "--strategy custom_pairs --pair_file" in config


# --- hloc fallback ---------------------------------------------------------------------


def test_matcher_without_hloc_falls_back_and_says_so() -> None:
    # outdoor's balanced choice is XFeat (no hloc): its options in balanced order are
    # alternative xfeat+lightglue (none), accurate DISK (hloc).
    files = plan_files(**plan_args(scenes=["outdoor"] * 6))
    values = assignments(files[HLOC_SCRIPT])
    assert (values["FEATURES"], values["MATCHER"]) == ("disk", "disk+lightglue")
    assert "XFeat has no hloc integration" in files[HLOC_SCRIPT]
    assert "the accurate option of scene outdoor" in files[HLOC_SCRIPT]
    assert "XFeat has no hloc integration, so run_hloc.py runs **DISK**" in files[README]
    assert DIM_CONFIG not in files
    assert "No dim_config.yaml: deep-image-matching has no pipeline for XFeat" in files[README]
    assert "SIFT extraction and matching run instead" in files[COLMAP_SCRIPT]


def test_fast_job_falls_back_to_the_fastest_option() -> None:
    taxonomy = load_default_taxonomy()
    summary = summary_of(["outdoor"] * 3, Speed.fast)  # outdoor fast is SIFT: has hloc
    choice = hloc_choice(summary, taxonomy, Speed.fast)
    assert choice is not None and (choice.matcher.name, choice.scene) == ("SIFT", None)
    # close_up: fast XFeat (none), then by speed: alternative LightGlue (fast) before
    # primary DISK (slow).
    choice = hloc_choice(summary_of(["close_up"] * 3, Speed.fast), taxonomy, Speed.fast)
    assert choice is not None and (choice.matcher.name, choice.slot) == ("LightGlue", "alternative")
    choice = hloc_choice(summary_of(["close_up"] * 3, Speed.accurate), taxonomy, Speed.accurate)
    assert choice is not None and (choice.matcher.name, choice.slot) == ("DISK", "primary")


def test_fallback_goes_to_the_next_scene_then_gives_up() -> None:
    taxonomy = load_default_taxonomy()
    # glass_shiny has no option with hloc; outdoor, present, has DISK.
    summary = summary_of(["glass_shiny"] * 5 + ["outdoor"])
    choice = hloc_choice(summary, taxonomy, Speed.balanced)
    assert choice is not None and (choice.scene, choice.matcher.name) == ("outdoor", "DISK")
    files = plan_files(**plan_args(scenes=["glass_shiny"] * 6))
    assert HLOC_SCRIPT not in files
    assert "so the plan has no run_hloc.py" in files[README]
    assert {COLMAP_SCRIPT, GLOMAP_SCRIPT, PAIRS_FILE} <= files.keys()


# --- run_colmap.sh / run_glomap.sh -----------------------------------------------------


@pytest.mark.parametrize("script", [COLMAP_SCRIPT, GLOMAP_SCRIPT])
def test_shell_scripts_parse_and_need_two_arguments(tmp_path: Path, script: str) -> None:
    plan = unpack(tmp_path, plan_args())
    subprocess.run([BASH, "-n", str(plan / script)], check=True, timeout=30)
    text = (plan / script).read_text()
    assert text.startswith("#!/usr/bin/env bash\n") and "set -euo pipefail" in text
    done = run_script(plan / script, "only-one", path=tool_bin(tmp_path), cwd=tmp_path)
    assert done.returncode == 2 and "usage:" in done.stderr
    done = run_script(plan / script, "--help", path=tool_bin(tmp_path), cwd=tmp_path)
    assert done.returncode == 0 and "DRY_RUN=1" in done.stderr


@pytest.mark.parametrize("script", [COLMAP_SCRIPT, GLOMAP_SCRIPT])
def test_shell_scripts_fail_loudly_without_colmap(
    tmp_path: Path, script: str, dirs: tuple[Path, Path]
) -> None:
    plan = unpack(tmp_path, plan_args())
    images, out = dirs
    done = run_script(plan / script, str(images), str(out), path=tool_bin(tmp_path), cwd=tmp_path)
    assert done.returncode == 127
    assert "colmap not found on PATH; install COLMAP" in done.stderr
    assert not out.exists()


def expected_colmap_calls(plan: Path, images: Path, out: Path) -> list[list[str]]:
    database = str(out / "database.db")
    return [
        [
            "colmap",
            "feature_extractor",
            "--database_path",
            database,
            "--image_path",
            str(images),
            "--image_list_path",
            str(plan / IMAGES_FILE),
            "--FeatureExtraction.type",
            "ALIKED_N16ROT",
            "--ImageReader.single_camera",
            "1",
        ],
        [
            "colmap",
            "matches_importer",
            "--database_path",
            database,
            "--match_list_path",
            str(plan / PAIRS_FILE),
            "--match_type",
            "pairs",
            "--FeatureMatching.type",
            "ALIKED_LIGHTGLUE",
        ],
    ]


def test_colmap_script_runs_the_three_steps(tmp_path: Path, dirs: tuple[Path, Path]) -> None:
    plan = unpack(tmp_path, plan_args())
    images, out = dirs
    path = tool_bin(tmp_path, "colmap")
    done = run_script(plan / COLMAP_SCRIPT, str(images), str(out), path=path, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    mapper = ["colmap", "mapper", "--database_path", str(out / "database.db")]
    mapper += ["--image_path", str(images), "--output_path", str(out / "sparse")]
    assert calls(tmp_path) == [*expected_colmap_calls(plan, images, out), mapper]
    assert (out / "sparse").is_dir()


def test_colmap_script_relative_paths_become_absolute(tmp_path: Path) -> None:
    plan = unpack(tmp_path, plan_args())
    (tmp_path / "-images").mkdir()
    path = tool_bin(tmp_path, "colmap")
    done = run_script(plan / COLMAP_SCRIPT, "-images", "out", path=path, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert calls(tmp_path)[0][5] == str(tmp_path / "-images")


def test_glomap_script_runs_glomap_mapper(tmp_path: Path, dirs: tuple[Path, Path]) -> None:
    plan = unpack(tmp_path, plan_args())
    images, out = dirs
    path = tool_bin(tmp_path, "colmap", "glomap")
    done = run_script(plan / GLOMAP_SCRIPT, str(images), str(out), path=path, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    mapper = ["glomap", "mapper", "--database_path", str(out / "database.db")]
    mapper += ["--image_path", str(images), "--output_path", str(out / "sparse")]
    assert calls(tmp_path) == [*expected_colmap_calls(plan, images, out), mapper]


def test_glomap_script_uses_colmap_global_mapper_of_colmap_4(
    tmp_path: Path, dirs: tuple[Path, Path]
) -> None:
    plan = unpack(tmp_path, plan_args())
    images, out = dirs
    path = tool_bin(tmp_path, "colmap")
    done = run_script(
        plan / GLOMAP_SCRIPT, str(images), str(out), path=path, cwd=tmp_path, FAKE_GLOBAL_MAPPER="1"
    )
    assert done.returncode == 0, done.stderr
    recorded = calls(tmp_path)
    assert recorded[0] == ["colmap", "help"]
    assert recorded[1:3] == expected_colmap_calls(plan, images, out)
    assert recorded[3][:2] == ["colmap", "global_mapper"]
    assert recorded[3][2:] == [
        "--database_path",
        str(out / "database.db"),
        "--image_path",
        str(images),
        "--output_path",
        str(out / "sparse"),
    ]


def test_glomap_script_fails_loudly_without_a_global_mapper(
    tmp_path: Path, dirs: tuple[Path, Path]
) -> None:
    plan = unpack(tmp_path, plan_args())
    images, out = dirs
    path = tool_bin(tmp_path, "colmap")  # a COLMAP 3.x: no global_mapper in its help
    done = run_script(plan / GLOMAP_SCRIPT, str(images), str(out), path=path, cwd=tmp_path)
    assert done.returncode == 127
    assert "glomap not found on PATH" in done.stderr and "install GLOMAP" in done.stderr
    assert [c[:2] for c in calls(tmp_path)] == [["colmap", "help"]]


@pytest.mark.parametrize("script", [COLMAP_SCRIPT, GLOMAP_SCRIPT])
def test_dry_run_prints_the_commands(tmp_path: Path, script: str, dirs: tuple[Path, Path]) -> None:
    plan = unpack(tmp_path, plan_args())
    images, out = dirs
    done = run_script(
        plan / script, str(images), str(out), path=tool_bin(tmp_path), cwd=tmp_path, DRY_RUN="1"
    )
    assert done.returncode == 0, done.stderr
    printed = [shlex.split(line) for line in done.stdout.splitlines()]
    mapper = ["colmap", "mapper"] if script == COLMAP_SCRIPT else ["glomap", "mapper"]
    mapper += ["--database_path", str(out / "database.db"), "--image_path", str(images)]
    assert printed == [
        ["mkdir", "-p", "--", str(out / "sparse")],
        *expected_colmap_calls(plan, images, out),
        [*mapper, "--output_path", str(out / "sparse")],
    ]
    assert not out.exists() and calls(tmp_path) == []


def test_single_camera_can_be_turned_off(tmp_path: Path, dirs: tuple[Path, Path]) -> None:
    plan = unpack(tmp_path, plan_args())
    images, out = dirs
    path = tool_bin(tmp_path, "colmap")
    done = run_script(
        plan / COLMAP_SCRIPT, str(images), str(out), path=path, cwd=tmp_path, SINGLE_CAMERA="0"
    )
    assert done.returncode == 0, done.stderr
    assert "--ImageReader.single_camera" not in calls(tmp_path)[0]
    done = run_script(
        plan / COLMAP_SCRIPT, str(images), str(out), path=path, cwd=tmp_path, SINGLE_CAMERA="x"
    )
    assert done.returncode == 2 and "SINGLE_CAMERA must be 0 or 1" in done.stderr


def test_matcher_without_colmap_config_uses_sift_defaults(
    tmp_path: Path, dirs: tuple[Path, Path]
) -> None:
    plan = unpack(tmp_path, plan_args(scenes=["outdoor"] * 6))  # XFeat: no COLMAP steps
    images, out = dirs
    done = run_script(
        plan / COLMAP_SCRIPT, str(images), str(out), path=tool_bin(tmp_path, "colmap"), cwd=tmp_path
    )
    assert done.returncode == 0, done.stderr
    extract, match, _ = calls(tmp_path)
    assert extract[8:] == ["--ImageReader.single_camera", "1"]
    assert match[8:] == []


# --- untrusted file names and taxonomies -----------------------------------------------

HOSTILE_SAFE = [  # odd but plain names: kept, literally
    "$(touch${IFS}pwned1).jpg",
    "`touch${IFS}pwned2`.jpg",
    "'q'.jpg",
    '"dq".jpg',
    "semi;colon&amp|pipe.jpg",
    "$HOME.jpg",
    "ok.jpg",
]
HOSTILE_UNSAFE = [  # the pair lists cannot hold these: left out, listed in the README
    "x\ny.jpg",
    "tab\there.jpg",
    "sp ace.jpg",
    "#hash.jpg",
    "bidi\u202egpj.exe",
    "nul\x00.jpg",
    "nbsp\u00a0x.jpg",
]


@pytest.mark.parametrize("name", [*HOSTILE_UNSAFE, "", "a/b.jpg", "..", "a\\b.jpg"])
def test_unsafe_names_have_a_reason(name: str) -> None:
    assert unsafe_name_reason(name)


@pytest.mark.parametrize("name", [*HOSTILE_SAFE, "IMG_0001.JPG", "фото.jpg", "写真.png"])
def test_plain_names_are_safe(name: str) -> None:
    assert unsafe_name_reason(name) is None


def hostile_plan() -> dict[str, Any]:
    names = HOSTILE_SAFE + HOSTILE_UNSAFE
    args = plan_args()
    return {
        **args,
        "shortlist": shortlist_of(list(pairwise(names)), len(names)),
        "hygiene": hygiene_of(names),
    }


def test_hostile_names_are_data_never_code(tmp_path: Path, dirs: tuple[Path, Path]) -> None:
    args = hostile_plan()
    files = plan_files(**args)
    assert files[IMAGES_FILE].split("\n")[:-1] == HOSTILE_SAFE
    for line in files[PAIRS_FILE].splitlines():
        a, b = line.split()
        assert a in HOSTILE_SAFE and b in HOSTILE_SAFE
    assert len(files[PAIRS_FILE].splitlines()) == len(HOSTILE_SAFE) - 1
    for name in HOSTILE_SAFE + HOSTILE_UNSAFE:
        for script in (HLOC_SCRIPT, COLMAP_SCRIPT, GLOMAP_SCRIPT):
            assert name not in files[script]
    readme = files[README]
    for name in HOSTILE_UNSAFE:
        assert ascii(name) in readme  # escaped: a newline or bidi override shows as such
        if not name.isprintable():
            assert name not in readme

    plan = unpack(tmp_path, args)
    images, out = dirs
    path = tool_bin(tmp_path, "colmap", "glomap")
    for script in (COLMAP_SCRIPT, GLOMAP_SCRIPT):
        done = run_script(plan / script, str(images), str(out), path=path, cwd=tmp_path)
        assert done.returncode == 0, done.stderr
    fake = write_tree(tmp_path / "fake", {**FAKE_HLOC, **FAKE_PYCOLMAP})
    done = run_python(plan / HLOC_SCRIPT, str(images), str(out), pythonpath=fake, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    extract = next(c for c in calls(tmp_path) if isinstance(c, dict))
    assert extract["image_list"] == HOSTILE_SAFE
    assert not list(tmp_path.rglob("pwned*")) and not list(Path.cwd().glob("pwned*"))


def hostile_taxonomy() -> Taxonomy:
    data = load_default_taxonomy().model_dump(mode="json")
    primary = data["scenes"][0]["recommendations"]["primary"]  # indoor_small's
    primary["name"] = "Light\nGlue $(touch pwned3) %(prog)s %d"
    primary["reason"] = "<script>alert(1)</script> [click](http://evil) | cell\r\n# heading"
    primary["pipeline"] = {
        "hloc": {
            "features": "x'); import os; os.system('touch pwned4') #",
            "matcher": 'm"""\ntouch pwned5',
        },
        "colmap": {
            "feature_extractor": {
                "SiftExtraction.max_num_features": "1; touch pwned6 `touch pwned7` $(id)",
                "ImageReader.camera_model": "OPENCV\ntouch pwned8",
            },
            "matcher": "sequential_matcher",
            "matcher_options": {
                "SiftMatching.max_ratio": "0.8' ; touch pwned9 ; '",
                "SequentialMatching.overlap": "10",
            },
        },
        "project": "https://example.org/\n#!/bin/sh",
        "notes": "line one\nrm -rf ~ # not a command\n'''\"\"\" end",
    }
    return parse_taxonomy(data)


def test_hostile_taxonomy_values_cannot_inject(tmp_path: Path, dirs: tuple[Path, Path]) -> None:
    args = plan_args(taxonomy=hostile_taxonomy())
    files = plan_files(**args)
    values = assignments(files[HLOC_SCRIPT])
    assert values["FEATURES"] == "x'); import os; os.system('touch pwned4') #"
    assert values["MATCHER"] == 'm"""\ntouch pwned5'
    for script in (COLMAP_SCRIPT, GLOMAP_SCRIPT, HLOC_SCRIPT, DIM_CONFIG):
        for line in files.get(script, "").splitlines():
            assert not line.lstrip().startswith(("rm -rf", "touch", "#!/bin/sh", "Glue")), line
    readme = files[README]
    assert "<script>" not in readme and "\\<script\\>" in readme
    assert "[click](http://evil)" not in readme
    assert "\n# heading" not in readme

    plan = unpack(tmp_path, args)
    images, out = dirs
    path = tool_bin(tmp_path, "colmap", "glomap")
    for script in (COLMAP_SCRIPT, GLOMAP_SCRIPT):
        subprocess.run([BASH, "-n", str(plan / script)], check=True, timeout=30)
        done = run_script(plan / script, str(images), str(out), path=path, cwd=tmp_path)
        assert done.returncode == 0, done.stderr
    extract, match = calls(tmp_path)[:2]
    assert extract[8:10] == [
        "--SiftExtraction.max_num_features",
        "1; touch pwned6 `touch pwned7` $(id)",
    ]
    assert "--ImageReader.camera_model" not in extract  # a newline in its value: left out
    assert match[8:] == ["--SiftMatching.max_ratio", "0.8' ; touch pwned9 ; '"]
    assert (
        "Left out (options of sequential_matcher only): SequentialMatching.overlap"
        in files[COLMAP_SCRIPT]
    )
    assert run_python(plan / HLOC_SCRIPT, "--help", pythonpath=None, cwd=tmp_path).returncode == 0
    fake = write_tree(tmp_path / "fake", {**FAKE_HLOC, **FAKE_PYCOLMAP})
    done = run_python(plan / HLOC_SCRIPT, str(images), str(out), pythonpath=fake, cwd=tmp_path)
    assert done.returncode != 0 and "this hloc has no extract_features conf" in done.stderr
    assert not list(tmp_path.rglob("pwned*")) and not list(Path.cwd().glob("pwned*"))

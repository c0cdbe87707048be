"""The scene taxonomy: scene types, their CLIP prompts and matcher recommendations.

A taxonomy is data, not code. The default one ships as
``clipcore/data/scene_taxonomy.json``; a client may send its own with a job,
in the same schema, and :func:`parse_taxonomy` refuses a bad one with a
message that names the failing field. Every model forbids unknown fields, so
a typo in a client's document is an error rather than a silently ignored key.

Besides the seed's name / speed / reason, each recommended matcher carries a
:class:`PipelineConfig`: the hloc configuration names or the COLMAP commands
that run it, or ``null`` for both and the project to use where no such
integration exists.
"""

from __future__ import annotations

import hashlib
import json
import shlex
from enum import StrEnum
from functools import cache
from importlib import resources
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    field_validator,
    model_validator,
)

from clipcore.errors import InvalidInput
from clipcore.problem import FieldError

DEFAULT_TAXONOMY_FILE = "scene_taxonomy.json"

# Limits keep a client's taxonomy small enough to embed on every job without
# thought: 256 scenes x 64 prompts is already 16k text encodings.
MAX_SCENES = 256
MAX_PROMPTS = 64
MAX_ERRORS_IN_MESSAGE = 5


class Speed(StrEnum):
    """A job's speed preference; picks which recommendation slot answers."""

    fast = "fast"
    balanced = "balanced"
    accurate = "accurate"


class MatcherSpeed(StrEnum):
    """How fast a matcher runs, as the seed rates it (fast < medium < slow)."""

    fast = "fast"
    medium = "medium"
    slow = "slow"

    @property
    def rank(self) -> int:
        """0 for fast, 1 for medium, 2 for slow: slower is taken as more robust."""
        return _SPEED_RANK[self]


_SPEED_RANK = {MatcherSpeed.fast: 0, MatcherSpeed.medium: 1, MatcherSpeed.slow: 2}

Text = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=1000)]
Prompt = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=300)]
Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=64)]
SceneName = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]{0,63}$")]
# COLMAP option names as they follow the "--" on its command line.
ColmapOption = Annotated[
    str, StringConstraints(pattern=r"^[A-Za-z][A-Za-z0-9_]*(\.[A-Za-z0-9_]+)*$")
]
ColmapMatcherCommand = Literal[
    "exhaustive_matcher",
    "sequential_matcher",
    "vocab_tree_matcher",
    "spatial_matcher",
    "transitive_matcher",
]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class HlocConfig(_Strict):
    """Names of configurations in hloc (github.com/cvg/Hierarchical-Localization)."""

    features: Name | None = Field(
        description="A key of hloc.extract_features.confs, e.g. 'superpoint_aachen'; "
        "null for hloc's detector-free matchers, which need no extractor."
    )
    matcher: Name = Field(
        description="A key of hloc.match_features.confs, e.g. 'superpoint+lightglue'."
    )


class ColmapConfig(_Strict):
    """COLMAP command-line steps: feature extraction, then one matcher command."""

    feature_extractor: dict[ColmapOption, str] = Field(
        default_factory=dict,
        description="Options for `colmap feature_extractor`, without the leading '--'.",
    )
    matcher: ColmapMatcherCommand = Field(
        description="The COLMAP matching command; exhaustive for unordered sets of up to a few "
        "hundred images, sequential for video, vocab_tree for thousands."
    )
    matcher_options: dict[ColmapOption, str] = Field(
        default_factory=dict, description="Options for the matcher command, without '--'."
    )
    commands: list[str] = Field(
        default_factory=list,
        description="The two shell commands to paste (extraction, then matching) for "
        "database.db and images/, shell-quoted: made by the service from the fields above, "
        "whatever a client sends here.",
    )

    @model_validator(mode="after")
    def _render_commands(self) -> ColmapConfig:
        # Derived, so that every client shows the same quoting; frozen, hence object's setattr.
        object.__setattr__(self, "commands", self.command_lines())
        return self

    def command_lines(
        self, database_path: str = "database.db", image_path: str = "images"
    ) -> list[str]:
        """The two shell commands (extraction, matching) to paste, for the given paths.

        Arguments are shell-quoted: a client's taxonomy is untrusted text.
        """
        extract = ["colmap", "feature_extractor"]
        extract += ["--database_path", database_path, "--image_path", image_path]
        match = ["colmap", self.matcher, "--database_path", database_path]
        for argv, options in ((extract, self.feature_extractor), (match, self.matcher_options)):
            for key, value in options.items():
                argv += [f"--{key}", value]
        return [shlex.join(extract), shlex.join(match)]


class PipelineConfig(_Strict):
    """How to run a matcher in a reconstruction pipeline.

    ``hloc`` and ``colmap`` are null where the matcher has no integration
    there; ``project`` then says which repository to use instead.
    """

    hloc: HlocConfig | None = None
    colmap: ColmapConfig | None = None
    project: Text = Field(description="URL of the matcher's own project or repository.")
    notes: Annotated[str, StringConstraints(max_length=2000)] = ""


class Matcher(_Strict):
    """One recommended image matcher: what it is, how fast, why, and how to run it."""

    name: Name
    speed: MatcherSpeed
    reason: Text
    pipeline: PipelineConfig | None = None


class Recommendations(_Strict):
    """The four matcher slots of a scene: ``primary`` answers a balanced job."""

    primary: Matcher
    alternative: Matcher
    fast: Matcher
    accurate: Matcher

    def for_speed(self, speed: Speed) -> Matcher:
        """The slot a job's speed preference selects."""
        return {Speed.balanced: self.primary, Speed.fast: self.fast, Speed.accurate: self.accurate}[
            Speed(speed)
        ]

    def options(self) -> list[Matcher]:
        """All four slots: primary, alternative, fast, accurate."""
        return [self.primary, self.alternative, self.fast, self.accurate]


class SceneType(_Strict):
    """A scene type: its CLIP prompts (averaged into one embedding) and matchers."""

    name: SceneName
    description: Text
    use_cases: Annotated[list[Text], Field(max_length=32)]
    prompts: Annotated[list[Prompt], Field(min_length=1, max_length=MAX_PROMPTS)]
    recommendations: Recommendations


class Taxonomy(_Strict):
    """A versioned set of scene types; scene order is the order of probabilities."""

    version: Name
    name: Name
    scenes: Annotated[list[SceneType], Field(min_length=2, max_length=MAX_SCENES)]

    @field_validator("scenes")
    @classmethod
    def _unique_scene_names(cls, scenes: list[SceneType]) -> list[SceneType]:
        seen: set[str] = set()
        for scene in scenes:
            if scene.name in seen:
                raise ValueError(f"duplicate scene name '{scene.name}'")
            seen.add(scene.name)
        return scenes

    @property
    def scene_names(self) -> list[str]:
        return [scene.name for scene in self.scenes]

    def scene(self, name: str) -> SceneType:
        """The scene called ``name``; :class:`TaxonomyError` if there is none."""
        for scene in self.scenes:
            if scene.name == name:
                return scene
        raise TaxonomyError(
            f"unknown scene '{name}'; this taxonomy has: {', '.join(self.scene_names)}",
            errors=[FieldError(field="scene", message=f"unknown scene '{name}'")],
        )


class TaxonomyError(InvalidInput, ValueError):
    """A taxonomy (or a scene name looked up in one) is not valid.

    ``str(error)`` names the failing field paths; ``errors`` lists each as
    ``{field, message}``, e.g. ``scenes[2].recommendations.primary.speed``.
    """

    slug = "invalid-taxonomy"
    title = "Invalid scene taxonomy"


def _field_path(loc: tuple[int | str, ...]) -> str:
    path = ""
    for part in loc:
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
    return path or "taxonomy"


def _taxonomy_error(exc: ValidationError) -> TaxonomyError:
    errors = []
    for err in exc.errors(include_url=False):
        # Our own validators' messages come prefixed "Value error, "; drop the noise.
        message = err["msg"].removeprefix("Value error, ")
        errors.append(FieldError(field=_field_path(err["loc"]), message=message))
    shown = "; ".join(f"{e.field}: {e.message}" for e in errors[:MAX_ERRORS_IN_MESSAGE])
    more = len(errors) - MAX_ERRORS_IN_MESSAGE
    if more > 0:
        shown += f"; and {more} more"
    return TaxonomyError(f"invalid taxonomy: {shown}", errors=errors)


def parse_taxonomy(data: bytes | str | dict[str, Any]) -> Taxonomy:
    """Validate a taxonomy given as JSON text/bytes or as an already-decoded dict.

    Returns the :class:`Taxonomy`; raises :class:`TaxonomyError` naming every
    failing field (missing, extra, wrong type, empty prompts, duplicate scene).
    """
    try:
        if isinstance(data, dict):
            return Taxonomy.model_validate(data)
        if isinstance(data, bytes | str):
            return Taxonomy.model_validate_json(data)
    except ValidationError as exc:
        raise _taxonomy_error(exc) from None
    raise TaxonomyError(
        f"invalid taxonomy: expected a JSON object, got {type(data).__name__}",
        errors=[FieldError(field="taxonomy", message="expected a JSON object")],
    )


@cache
def load_default_taxonomy() -> Taxonomy:
    """The taxonomy shipped in ``clipcore/data``, parsed once per process."""
    text = resources.files("clipcore").joinpath("data", DEFAULT_TAXONOMY_FILE).read_bytes()
    return parse_taxonomy(text)


# What the service derives from the rest (COLMAP command lines) is not content to hash.
_SLOTS = ("primary", "alternative", "fast", "accurate")
_DERIVED: Any = {
    "scenes": {
        "__all__": {
            "recommendations": {slot: {"pipeline": {"colmap": {"commands"}}} for slot in _SLOTS}
        }
    }
}


def taxonomy_hash(t: Taxonomy) -> str:
    """Hex sha256 of the taxonomy's canonical JSON: sorted keys, no whitespace.

    Stable across processes and runs (it hashes the validated model, so key
    order or omitted defaults in the source document do not matter) and
    different for any change of content. The worker keys its cache of
    prompt embeddings on (model id, this hash).
    """
    content = t.model_dump(mode="json", exclude=_DERIVED)
    canonical = json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def recommend(t: Taxonomy, scene: str, speed: Speed) -> Matcher:
    """The matcher for ``scene`` at ``speed``: balanced -> primary, fast -> fast,
    accurate -> accurate. Raises :class:`TaxonomyError` for an unknown scene."""
    return t.scene(scene).recommendations.for_speed(speed)

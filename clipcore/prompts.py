"""Labels and prompt templates: one rule for every route and payload (pydantic only, no torch).

A template holds ``{}`` exactly once, where the label goes. With a template of at
most :data:`MAX_TEMPLATE_LENGTH` characters and labels of at most
:data:`MAX_LABEL_LENGTH`, every prompt fits a query's :data:`MAX_QUERY_LENGTH`.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator, StringConstraints

DEFAULT_TEMPLATE = "a photo of a {}."
MAX_LABEL_LENGTH = 200
MAX_TEMPLATE_LENGTH = 300
MAX_QUERY_LENGTH = 500
SLOT = "{}"


def check_template(template: str) -> str:
    if template.count(SLOT) != 1:
        raise ValueError("must contain '{}' exactly once, where the label goes")
    return template


def format_prompt(template: str, label: str) -> str:
    """The template with the label in its slot; "a {}" before a vowel reads "an"
    ("a photo of an orange circle"), as the captions models learn from do."""
    before, after = template.split(SLOT, 1)
    if label[:1].lower() in "aeiou" and label[:1] and (before == "a " or before.endswith(" a ")):
        before = before[:-2] + "an "
    return before + label + after


Label = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=MAX_LABEL_LENGTH)
]
PromptTemplate = Annotated[
    str, StringConstraints(max_length=MAX_TEMPLATE_LENGTH), AfterValidator(check_template)
]
Query = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=MAX_QUERY_LENGTH)
]

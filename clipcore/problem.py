"""RFC 9457 problem details: the error body of every 4xx/5xx and of a failed job or image."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class Problem(BaseModel):
    """An RFC 9457 problem: the error body of every 4xx/5xx and of a failed job or image."""

    model_config = ConfigDict(extra="allow")

    type: str = Field("about:blank", description="A URI naming the kind of problem.")
    title: str
    status: int
    detail: str | None = None
    errors: list[FieldError] | None = Field(
        None, description="For validation problems: which field or file was wrong, and why."
    )


class FieldError(BaseModel):
    field: str = Field(description="The request field (or 'images[2]' / a filename) at fault.")
    message: str

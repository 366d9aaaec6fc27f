"""What every recipe section shares: the strict, frozen base model and the one-line error."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict
from pydantic_core import PydanticCustomError


def problem(message: str) -> PydanticCustomError:
    """A validation error whose message is already a full recipe line (with the field path)."""
    return PydanticCustomError("recipe", "{message}", {"message": message})


class Section(BaseModel):
    """Shared config: immutable, strict types (TOML already types its values), finite floats."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, allow_inf_nan=False)

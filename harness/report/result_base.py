"""What every typed result shares (`harness.report.results`): strict models written with only
the fields that were set, atomically, and figures that may be missing, written as null."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict


def _nan_is_null(value: Any) -> Any:
    return None if isinstance(value, float) and math.isnan(value) else value


# A figure that may be missing (no request to compute it over): NaN is written as null.
Figure = Annotated[float | None, BeforeValidator(_nan_is_null)]


class Result(BaseModel):
    """A part of a results file: strict (an unknown field is an error, so drift shows), and
    written with only the fields that were set (a streamed workload's TTFT, an ablation)."""

    model_config = ConfigDict(extra="forbid")

    def to_json(self) -> str:
        return self.model_dump_json(indent=2, exclude_unset=True)

    def write(self, path: Path) -> Path:
        """Written beside, then renamed into place: a reader never sees half a file."""
        staging = path.with_suffix(".partial")
        staging.write_text(self.to_json())
        staging.replace(path)
        return path

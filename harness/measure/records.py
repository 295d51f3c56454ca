"""Per-request records on the harness side: read the load generator's JSON lines, account for
every scheduled request, and keep them as parquet.

The column list is the load generator's (`workloads.records.COLUMNS`); this module adds
`trial`. A scheduled request with no record — the load generator crashed or gave up on it — is
kept as a failure with error `unrecorded`, so no request ever silently leaves the statistics.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from harness.errors import LoadError
from workloads.records import COLUMNS, read_record_lines

UNRECORDED = "unrecorded"
STOPPED = "stopped"
DTYPES = {
    "index": "int64", "scheduled_s": "float64", "sent_s": "float64", "first_byte_s": "float64",
    "done_s": "float64", "status": "Int64", "ok": "bool", "error": "string",
    "prompt_tokens": "Int64", "output_tokens": "Int64", "replica": "string",
}


def read_records(path: Path) -> tuple[dict[str, Any], pd.DataFrame]:
    """Header and rows of a records file as a typed frame (a torn last line is skipped)."""
    if not path.is_file():
        raise LoadError(f"no records at {path}: the load generator wrote none (see its log)")
    header, rows = read_record_lines(path)
    frame = pd.DataFrame(rows, columns=list(COLUMNS))
    return header, frame.astype(DTYPES)


def account_for_schedule(frame: pd.DataFrame, offsets_s: np.ndarray,
                         missing_error: str = UNRECORDED) -> pd.DataFrame:
    """One row per scheduled request, in schedule order: missing ones become failures (error
    `missing_error`: `unrecorded`, or `stopped` for a probe ended once it had failed)."""
    frame = frame.drop_duplicates("index", keep="first")
    missing = np.setdiff1d(np.arange(len(offsets_s)), frame["index"].to_numpy())
    if len(missing):
        filler = pd.DataFrame({"index": missing, "scheduled_s": offsets_s[missing],
                               "ok": False, "error": missing_error}).astype(
            {k: v for k, v in DTYPES.items() if k in ("index", "scheduled_s", "ok", "error")})
        frame = pd.concat([frame, filler], ignore_index=True).astype(DTYPES)
    return frame.sort_values("index", ignore_index=True)


def write_parquet(frame: pd.DataFrame, path: Path) -> Path:
    """Written beside, then renamed into place: a reader never sees half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    staging = path.with_name(f".{path.name}.partial")
    frame.to_parquet(staging, index=False)
    os.replace(staging, path)
    return path


"""Strict reader of request traces in the GenTD26 columns (one row per text-to-image request).

The format is that of `lora_request_trace.csv` in alibaba/clusterdata,
cluster-trace-v2026-GenAI (data card: optsched/workload/genai.md): `gmt_create`
(`YYYY-MM-DD HH:MM:SS`, time-shifted by the publisher), `predict_status`
(SUCCEED / FAILED / PENDING), `exec_time_seconds`, `num_images_per_prompt`,
`num_inference_steps`, and further columns this package does not need.

Rules (each violation is one ScenarioError naming the file, the line, with the header as
line 1, and the column, never the cell's text, since a scenario may name any file):
- the five columns above are present; rows are not blank (trailing blank lines aside)
  and no quoted field spans lines (line numbers must stay exact);
- timestamps parse in the format above and never go back in time: each is at or after
  the previous row's (ties are common in the real file; it needs no sorting, and a file
  that does is refused rather than silently reordered, since a replay depends on order);
- `predict_status` is not empty; `exec_time_seconds` is a finite number >= 0;
- `num_images_per_prompt` and `num_inference_steps` are whole numbers >= 1, and may be
  empty only on PENDING rows: the real file's 15 PENDING requests were never run and
  carry no size (and an execution time of 0).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from optsched.data.readers import read_csv_file
from optsched.errors import ScenarioError

TIME, STATUS, EXEC, IMAGES, STEPS = ("gmt_create", "predict_status", "exec_time_seconds",
                                     "num_images_per_prompt", "num_inference_steps")
COLUMNS: tuple[str, ...] = (TIME, STATUS, EXEC, IMAGES, STEPS)
TIME_FORMAT = "%Y-%m-%d %H:%M:%S"
PENDING = "PENDING"
# Leading days below this share of the median day are the trace's ramp-up (the real
# file's first four days carry 63 to 93 requests against a median of about 1,160).
RAMP_UP_SHARE = 0.25


def is_genai_trace(path: str | Path) -> bool:
    """Whether a CSV file's header has the GenTD26 request columns (read: header only)."""
    try:
        header = pd.read_csv(path, nrows=0).columns
    except (ValueError, OSError, UnicodeDecodeError, pd.errors.EmptyDataError):
        return False
    return all(c in header for c in COLUMNS)


MAX_SPAN_DAYS = 366          # a trace covers at most a year (GenTD26: 17 days)


def read_genai_trace(path: str | Path) -> pd.DataFrame:
    """The requests of a GenTD26-format file, in file order, with columns `time`
    (naive Timestamp on the file's clock), `status`, `exec_s` (float), `images` and
    `steps` (float, NaN only on PENDING rows) and `line` (the row's line in the file)."""
    path = Path(path)
    key = str(path)
    frame = read_csv_file(path, dtype=str, keep_default_na=False, skip_blank_lines=False)
    missing = [c for c in COLUMNS if c not in frame.columns]
    if missing:
        raise ScenarioError(key, f"line 1: missing column(s) {', '.join(missing)}")
    _check_line_count(path, frame)
    blank = (frame.apply(lambda c: c.str.strip()) == "").all(axis=1).to_numpy()
    end = len(blank) - int(np.argmin(blank[::-1])) if not blank.all() else 0
    frame, blank = frame.iloc[:end], blank[:end]        # trailing blank lines are fine
    if frame.empty:
        raise ScenarioError(key, "line 2: no requests after the header")
    lines = np.arange(len(frame)) + 2
    if blank.any():
        raise ScenarioError(key, f"line {lines[np.argmax(blank)]}: blank line")

    text = frame[TIME].str.strip()
    times = pd.to_datetime(text, format=TIME_FORMAT, errors="coerce")
    _fail_at(key, lines, times.isna().to_numpy(), TIME,
             f"unreadable timestamp (expected {TIME_FORMAT.replace('%', '')})")
    step_back = np.r_[False, np.diff(times.to_numpy().astype("int64")) < 0]
    _fail_at(key, lines, step_back, TIME, "timestamp earlier than the previous line's "
             "(the file must be in time order)")
    # Day statistics loop over the span's days: a stray far-off timestamp would make
    # that millions of empty days.
    span = (times.iloc[-1] - times.iloc[0]).days
    _fail_at(key, lines, (times - times.iloc[0]).dt.days.to_numpy() > MAX_SPAN_DAYS, TIME,
             f"more than {MAX_SPAN_DAYS} days after the first request ({span} days: a "
             "stray timestamp?)")
    status = frame[STATUS].str.strip()
    _fail_at(key, lines, (status == "").to_numpy(), STATUS, "empty status")
    exec_s = _numbers(frame[EXEC], key, lines, EXEC)
    _fail_at(key, lines, np.isnan(exec_s), EXEC, "empty value")
    _fail_at(key, lines, ~np.isfinite(exec_s) | (exec_s < 0), EXEC,
             "must be a finite number >= 0")
    pending = (status == PENDING).to_numpy()
    sizes = {}
    for col in (IMAGES, STEPS):
        v = _numbers(frame[col], key, lines, col)
        _fail_at(key, lines, np.isnan(v) & ~pending, col,
                 "empty value (allowed only on PENDING rows)")
        given = ~np.isnan(v)
        bad = given & (~np.isfinite(v) | (v < 1) | (np.floor(v) != v))
        _fail_at(key, lines, bad, col, "must be a whole number >= 1")
        sizes[col] = v
    return pd.DataFrame({"time": times.to_numpy(), "status": status.to_numpy(),
                         "exec_s": exec_s, "images": sizes[IMAGES], "steps": sizes[STEPS],
                         "line": lines})


def _check_line_count(path: Path, frame: pd.DataFrame) -> None:
    """Refuse quoted fields that span lines: they would make every later line number wrong."""
    text = path.read_bytes()
    data_lines = text.count(b"\n") + (0 if text.endswith(b"\n") else 1) - 1
    if data_lines != len(frame):
        raise ScenarioError(str(path), f"{data_lines} data lines hold {len(frame)} rows "
                            "(a quoted field spans lines?)")


def _numbers(col: pd.Series, key: str, lines: np.ndarray, name: str) -> np.ndarray:
    """A text column as floats: empty cells NaN, anything else non-numeric an error."""
    stripped = col.str.strip()
    values = pd.to_numeric(stripped.where(stripped != ""), errors="coerce").to_numpy(float)
    _fail_at(key, lines, np.isnan(values) & (stripped != "").to_numpy(), name,
             "not a number")
    return values


def _fail_at(key: str, lines: np.ndarray, bad: np.ndarray, column: str, problem: str) -> None:
    if bad.any():
        raise ScenarioError(key, f"line {lines[np.argmax(bad)]}, column {column}: {problem}")


def daily_counts(trace: pd.DataFrame) -> pd.Series:
    """Requests per calendar day of the file's clock, every day from first to last."""
    days = trace["time"].dt.normalize()
    counts = days.value_counts().sort_index()
    full = pd.date_range(days.iloc[0], days.iloc[-1], freq="D")
    return counts.reindex(full, fill_value=0).rename("requests")


def steady_days(trace: pd.DataFrame) -> pd.Series:
    """Daily counts without the leading ramp-up: days before the first one that reaches
    RAMP_UP_SHARE of the median day are dropped (the service was not yet in full use)."""
    counts = daily_counts(trace)
    first = int(np.argmax(counts.to_numpy() >= RAMP_UP_SHARE * counts.median()))
    return counts.iloc[first:]

"""Metrics to a JSON-lines file and to the console."""

from __future__ import annotations

import json
import os
import pathlib
import time

DROPPED_PREFIX = "metrics.dropped-"


def _row_step(line: str) -> int | None:
  """The step of one metrics row, or None if the line is not a complete JSON record."""
  try:
    record = json.loads(line)
  except ValueError:  # a line cut short by a kill
    return None
  return record.get("step", 0) if isinstance(record, dict) else None


def _side_file(folder: pathlib.Path) -> pathlib.Path:
  stamp = time.strftime("%Y%m%d-%H%M%S")
  path, n = folder / f"{DROPPED_PREFIX}{stamp}.jsonl", 1
  while path.exists():
    n += 1
    path = folder / f"{DROPPED_PREFIX}{stamp}-{n}.jsonl"
  return path


class MetricsWriter:
  """Appends one JSON record per line; never truncates the file.

  On resume, the rows written after the restored step (by the epoch the kill cut short) and any
  line cut short are moved to a side file `metrics.dropped-<time>.jsonl` beside it, so the
  file then continues exactly where the checkpoint does and nothing is deleted.
  """

  def __init__(self, path: str | pathlib.Path, resume_step: int | None = None):
    self.path = pathlib.Path(path)
    self.dropped: tuple[pathlib.Path, int] | None = None  # (side file, rows moved) on resume
    self.path.parent.mkdir(parents=True, exist_ok=True)
    if resume_step is not None and self.path.exists():
      self._drop_rows_after(resume_step)

  def _drop_rows_after(self, step: int):
    text = self.path.read_text()
    kept, later = [], []
    for line in text.splitlines():
      if line.strip():
        s = _row_step(line)
        (later if s is None or s > step else kept).append(line)
    if not later and (not text or text.endswith("\n")):
      return
    if later:
      side = _side_file(self.path.parent)
      side.write_text("".join(line + "\n" for line in later))  # first the copy, then the cut
      self.dropped = (side, len(later))
    tmp = self.path.with_name(self.path.name + ".tmp")
    tmp.write_text("".join(line + "\n" for line in kept))
    os.replace(tmp, self.path)

  def write(self, record: dict):
    record = {"time": round(time.time(), 3), **record}
    with self.path.open("a") as f:
      f.write(json.dumps(record) + "\n")


def read_metrics(path: str | pathlib.Path) -> list[dict]:
  return [json.loads(line) for line in pathlib.Path(path).read_text().splitlines() if line.strip()]

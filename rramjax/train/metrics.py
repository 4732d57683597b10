"""Metrics to a JSON-lines file and to the console."""

from __future__ import annotations

import json
import pathlib
import time


class MetricsWriter:
  """Appends one JSON record per line; on resume, drops records past the restored step."""

  def __init__(self, path: str | pathlib.Path, resume_step: int | None = None):
    self.path = pathlib.Path(path)
    self.path.parent.mkdir(parents=True, exist_ok=True)
    if resume_step is None:
      self.path.write_text("")
    elif self.path.exists():
      kept = [line for line in self.path.read_text().splitlines()
              if line.strip() and json.loads(line).get("step", 0) <= resume_step]
      self.path.write_text("".join(line + "\n" for line in kept))

  def write(self, record: dict):
    record = {"time": round(time.time(), 3), **record}
    with self.path.open("a") as f:
      f.write(json.dumps(record) + "\n")


def read_metrics(path: str | pathlib.Path) -> list[dict]:
  return [json.loads(line) for line in pathlib.Path(path).read_text().splitlines() if line.strip()]

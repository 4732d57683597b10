"""Figures of a sweep (matplotlib, Agg backend, PNG files): accuracy against energy and against
area with the Pareto front marked, and accuracy against each swept key.

matplotlib is imported inside the functions so that importing the sweep stays cheap.
"""

from __future__ import annotations

import os
import pathlib

import numpy as np

from rramjax.mapper.plots import _pyplot
from rramjax.sweep.grid import Grid, format_value
from rramjax.sweep.report import accuracy, pareto_front, ranked

_COSTS = {"energy": ("energy_pj", 1e-6, "energy per image (uJ, conv layers)"),
          "area": ("arrays", 1.0, "arrays (512x512 by default)")}


def _std(row: dict) -> float:
  return row[f"{ranked(row)}_accuracy_std"]


_WHAT = {"ou": "", "bn_ou": ", batch norm re-estimated", "hwtune_ou": ", after hwtune"}


def _ylabel(rows: list[dict]) -> str:
  return f"test accuracy at 'ou'{_WHAT[ranked(rows[0])] if rows else ''} (%)"


def _short(grid: Grid, row: dict) -> str:
  """The row's swept values that vary, for a point's label."""
  return ",".join(format_value(row[k]) for k, v in zip(grid.keys, grid.values) if len(v) > 1)


def plot_front(grid: Grid, rows: list[dict], cost: str, path) -> str:
  """Accuracy (mean +- std over seeds) against `cost` ('energy' or 'area'); the Pareto front is
  the line, its points labelled with their swept values."""
  plt = _pyplot()
  field, scale, label = _COSTS[cost]
  x = np.asarray([r[field] for r in rows], float) * scale
  y = 100 * np.asarray([accuracy(r) for r in rows])
  err = 100 * np.asarray([_std(r) for r in rows])
  figure, axis = plt.subplots(figsize=(7, 4.5))
  axis.errorbar(x, y, yerr=err, fmt="o", color="0.6", ms=4, capsize=2, label="grid points")
  front = pareto_front(x, y)
  axis.plot(x[front], y[front], "-o", color="C3", ms=6, label="Pareto front")
  for i in front:
    axis.annotate(_short(grid, rows[i]), (x[i], y[i]), textcoords="offset points", xytext=(4, -10),
                  fontsize=7, color="C3")
  axis.set_xlabel(label)
  axis.set_ylabel(_ylabel(rows))
  keys = ", ".join(k for k, v in zip(grid.keys, grid.values) if len(v) > 1)
  axis.set_title(f"accuracy vs {cost} ({keys}; labels on the front)", fontsize=9)
  axis.grid(alpha=0.3)
  axis.legend(fontsize=8)
  figure.tight_layout()
  figure.savefig(path, dpi=120)
  plt.close(figure)
  return os.fspath(path)


def plot_key(grid: Grid, rows: list[dict], key: str, path) -> str:
  """Accuracy against one swept key: one line per combination of the other swept keys."""
  plt = _pyplot()
  index = grid.keys.index(key)
  ticks = list(grid.values[index])
  numeric = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in ticks)
  others = [i for i, v in enumerate(grid.values) if i != index and len(v) > 1]
  lines = {}
  for row in rows:
    name = ", ".join(f"{grid.keys[i].split('.', 1)[1]}={format_value(row[grid.keys[i]])}"
                     for i in others)
    lines.setdefault(name, []).append(row)
  figure, axis = plt.subplots(figsize=(7, 4.5))
  for name, members in lines.items():
    members = sorted(members, key=lambda r: ticks.index(r[key]))
    x = [r[key] if numeric else ticks.index(r[key]) for r in members]
    axis.errorbar(x, [100 * accuracy(r) for r in members], yerr=[100 * _std(r) for r in members],
                  fmt="-o", ms=4, capsize=2, label=name or None)
  axis.set_xticks(ticks if numeric else range(len(ticks)), [format_value(v) for v in ticks])
  axis.set_xlabel(key)
  axis.set_ylabel(_ylabel(rows))
  axis.grid(alpha=0.3)
  if others and len(lines) <= 12:
    axis.legend(fontsize=7)
  figure.tight_layout()
  figure.savefig(path, dpi=120)
  plt.close(figure)
  return os.fspath(path)


def plot_sweep(grid: Grid, rows: list[dict], out) -> list[str]:
  """Every figure of a sweep into `out`; returns the paths."""
  out = pathlib.Path(out)
  paths = [plot_front(grid, rows, cost, out / f"accuracy_vs_{cost}.png") for cost in _COSTS]
  for key, values in zip(grid.keys, grid.values):
    if len(values) > 1:
      paths.append(plot_key(grid, rows, key, out / f"accuracy_vs_{key.replace('.', '_')}.png"))
  return paths

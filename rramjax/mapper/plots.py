"""Figures of a mapping report (matplotlib, Agg backend, PNG files).

matplotlib is imported inside the functions so that importing the mapper stays cheap.
"""

from __future__ import annotations

import os

import numpy as np

from rramjax.mapper.placement import Placement


def _pyplot():
  import matplotlib
  matplotlib.use("Agg")  # files only; never needs a display
  import matplotlib.pyplot as plt
  return plt


def _parts(report: dict) -> list[str]:
  return ["baseline", *report.get("schemes", ["pattern"])]


def _bars(axis, names, values: dict, ylabel, log=False):
  """Grouped bars: one group per layer, one bar per part (baseline, each scheme)."""
  index, width = np.arange(len(names)), 0.8 / len(values)
  for i, (label, heights) in enumerate(values.items()):
    axis.bar(index + (i - (len(values) - 1) / 2) * width, heights, width, label=label)
  axis.set_xticks(index, names, rotation=60, ha="right", fontsize=7)
  axis.set_ylabel(ylabel)
  if log:
    axis.set_yscale("log")
  axis.legend(fontsize=8)


def plot_layers(report: dict, path) -> str:
  """Per-layer arrays and energy of the baseline and every scheme (two panels)."""
  plt = _pyplot()
  layers, parts = report["layers"], _parts(report)
  names = [layer["name"] for layer in layers]
  figure, (area, energy) = plt.subplots(1, 2, figsize=(11, 4))
  _bars(area, names, {p: [layer[p]["arrays"] for layer in layers] for p in parts}, "arrays", log=True)
  area.set_title("area per layer")
  _bars(energy, names, {p: [layer[p]["energy_pj"] / 1e6 for layer in layers] for p in parts}, "energy (uJ)")
  energy.set_title("energy per layer (RRAM + ADC + DAC)")
  figure.tight_layout()
  figure.savefig(path, dpi=120)
  plt.close(figure)
  return os.fspath(path)


def plot_energy_breakdown(report: dict, path) -> str:
  """Conv-layer energy by component (RRAM OU, ADC, DAC), baseline and every scheme, stacked."""
  plt = _pyplot()
  totals, parts = report["totals"], _parts(report)
  figure, axis = plt.subplots(figsize=(2 + 1.2 * len(parts), 4))
  bottom = np.zeros(len(parts))
  for key, label in (("energy_rram_pj", "RRAM (OU)"), ("energy_adc_pj", "ADC"), ("energy_dac_pj", "DAC")):
    values = np.array([totals[part][key] for part in parts]) / 1e6
    axis.bar(parts, values, bottom=bottom, label=label)
    bottom += values
  axis.set_ylabel("energy per image (uJ)")
  axis.set_title("conv energy breakdown")
  axis.legend()
  figure.tight_layout()
  figure.savefig(path, dpi=120)
  plt.close(figure)
  return os.fspath(path)


def plot_array_occupancy(placement: Placement, path, array: int = 0, title: str = "") -> str:
  """One array's cells: each OU tile a rectangle coloured by its group (pattern block or column
  group), empty cells white."""
  plt = _pyplot()
  from matplotlib.patches import Rectangle
  tiles = placement.tiles
  here = np.flatnonzero(tiles["array"] == array)
  colours = plt.get_cmap("tab20")(np.arange(20))
  figure, axis = plt.subplots(figsize=(6, 6))
  for tile in here:
    colour = colours[tiles["group"][tile] % 20]
    axis.add_patch(Rectangle((tiles["col"][tile], tiles["row"][tile]), tiles["cols"][tile],
                             tiles["rows"][tile], facecolor=colour, edgecolor="none"))
  axis.set_xlim(0, placement.array_cols)
  axis.set_ylim(placement.array_rows, 0)
  axis.set_aspect("equal")
  axis.set_xlabel("column (strips of OU width)")
  axis.set_ylabel("row")
  used = int(np.sum(tiles["rows"][here] * tiles["cols"][here]))
  share = used / (placement.array_rows * placement.array_cols)
  axis.set_title(f"{title} ({placement.scheme}) array {array}: {len(here)} tiles, {100 * share:.1f}% cells "
                 "used", fontsize=9)
  figure.tight_layout()
  figure.savefig(path, dpi=120)
  plt.close(figure)
  return os.fspath(path)


def plot_report(report: dict, out_dir, placement: Placement | None = None, array: int = 0,
                layer_name: str = "") -> list[str]:
  """Writes `layers.png`, `energy_breakdown.png` and, given a placement, `occupancy.png`.

  Args:
    report: from `map_network`.
    out_dir: directory for the PNG files (created if missing).
    placement: a layer's `Placement` for the occupancy figure.
    array: which of its arrays to draw.
    layer_name: the layer's name, for the occupancy figure's title.

  Returns:
    The written paths.
  """
  os.makedirs(out_dir, exist_ok=True)
  paths = [plot_layers(report, os.path.join(out_dir, "layers.png")),
           plot_energy_breakdown(report, os.path.join(out_dir, "energy_breakdown.png"))]
  if placement is not None and placement.num_arrays:
    paths.append(plot_array_occupancy(placement, os.path.join(out_dir, "occupancy.png"), array, layer_name))
  return paths

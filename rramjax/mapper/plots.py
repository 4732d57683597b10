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


def _bars(axis, names, baseline, pattern, ylabel, log=False):
  index = np.arange(len(names))
  axis.bar(index - 0.2, baseline, 0.4, label="baseline")
  axis.bar(index + 0.2, pattern, 0.4, label="pattern")
  axis.set_xticks(index, names, rotation=60, ha="right", fontsize=7)
  axis.set_ylabel(ylabel)
  if log:
    axis.set_yscale("log")
  axis.legend(fontsize=8)


def plot_layers(report: dict, path) -> str:
  """Per-layer arrays and energy, baseline vs. pattern mapping (two panels)."""
  plt = _pyplot()
  layers = report["layers"]
  names = [layer["name"] for layer in layers]
  figure, (area, energy) = plt.subplots(1, 2, figsize=(11, 4))
  _bars(area, names, [layer["baseline"]["arrays"] for layer in layers],
        [layer["pattern"]["arrays"] for layer in layers], "arrays (512x512)", log=True)
  area.set_title("area per layer")
  _bars(energy, names, [layer["baseline"]["energy_pj"] / 1e6 for layer in layers],
        [layer["pattern"]["energy_pj"] / 1e6 for layer in layers], "energy (uJ)")
  energy.set_title("energy per layer (RRAM + ADC + DAC)")
  figure.tight_layout()
  figure.savefig(path, dpi=120)
  plt.close(figure)
  return os.fspath(path)


def plot_energy_breakdown(report: dict, path) -> str:
  """Conv-layer energy by component (RRAM OU, ADC, DAC), baseline vs. pattern, stacked."""
  plt = _pyplot()
  totals = report["totals"]
  figure, axis = plt.subplots(figsize=(5, 4))
  bottom = np.zeros(2)
  for key, label in (("energy_rram_pj", "RRAM (OU)"), ("energy_adc_pj", "ADC"), ("energy_dac_pj", "DAC")):
    values = np.array([totals["baseline"][key], totals["pattern"][key]]) / 1e6
    axis.bar(["baseline", "pattern"], values, bottom=bottom, label=label)
    bottom += values
  axis.set_ylabel("energy per image (uJ)")
  axis.set_title("conv energy breakdown")
  axis.legend()
  figure.tight_layout()
  figure.savefig(path, dpi=120)
  plt.close(figure)
  return os.fspath(path)


def plot_array_occupancy(placement: Placement, path, array: int = 0, title: str = "") -> str:
  """One array's cells: each OU tile a rectangle coloured by its pattern, empty cells white."""
  plt = _pyplot()
  from matplotlib.patches import Rectangle
  tiles = placement.tiles
  here = np.flatnonzero(tiles["array"] == array)
  patterns = np.unique(placement.blocks.pattern)
  colours = plt.get_cmap("tab20")(np.searchsorted(patterns, placement.blocks.pattern) % 20)
  figure, axis = plt.subplots(figsize=(6, 6))
  for tile in here:
    colour = colours[tiles["block"][tile]]
    axis.add_patch(Rectangle((tiles["col"][tile], tiles["row"][tile]), tiles["cols"][tile],
                             tiles["rows"][tile], facecolor=colour, edgecolor="none"))
  axis.set_xlim(0, placement.array_cols)
  axis.set_ylim(placement.array_rows, 0)
  axis.set_aspect("equal")
  axis.set_xlabel("column (strips of OU width)")
  axis.set_ylabel("row")
  used = int(np.sum(tiles["rows"][here] * tiles["cols"][here]))
  share = used / (placement.array_rows * placement.array_cols)
  axis.set_title(f"{title} array {array}: {len(here)} tiles, {100 * share:.1f}% cells used", fontsize=9)
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

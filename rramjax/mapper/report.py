"""Text, JSON and CSV reports of a `map_network` result (schema in docs/MAPPER.md)."""

from __future__ import annotations

import csv
import json
import os

import numpy as np

from rramjax.mapper.placement import Placement

LAYER_FIELDS = ("name", "kind", "cin", "cout", "rows", "out_pixels", "kept_kernels", "kept_weights",
                "weights", "sparsity", "patterns")


def to_jsonable(value):
  """Plain-Python copy of a report: numpy scalars to Python, placements dropped, inf/nan to None."""
  if isinstance(value, dict):
    return {key: to_jsonable(item) for key, item in value.items() if not isinstance(item, Placement)}
  if isinstance(value, (list, tuple)):
    return [to_jsonable(item) for item in value]
  if isinstance(value, np.ndarray):
    return to_jsonable(value.tolist())
  if isinstance(value, np.generic):
    value = value.item()
  if isinstance(value, float) and not np.isfinite(value):
    return None  # JSON has no inf/nan; undefined ratios are null already
  return value


def write_json(report: dict, path) -> str:
  """Writes the report as JSON (placements left out) and returns the path."""
  with open(path, "w") as handle:
    json.dump(to_jsonable(report), handle, indent=1)
  return os.fspath(path)


def _flat(prefix: str, values: dict) -> dict:
  return {f"{prefix}.{key}": item for key, item in to_jsonable(values).items() if not isinstance(item, dict)}


def csv_rows(report: dict) -> list[dict]:
  """One flat row per conv layer, per extra layer and per total (`baseline.*`, `pattern.*`, `ratios.*`)."""
  rows = []
  for layer in report["layers"] + report["extra_layers"]:
    row = {field: layer.get(field, "") for field in LAYER_FIELDS}
    row.update(_flat("baseline", layer["baseline"]))
    row.update(_flat("pattern", layer.get("pattern", layer["baseline"])))
    row.update(_flat("ratios", layer.get("ratios", {})))
    rows.append(row)
  for name, key in (("total_conv", "totals"), ("total_network", "network_totals")):
    totals = report[key]
    row = {"name": name, "kind": "total"}
    for part in ("baseline", "pattern", "ratios"):
      row.update(_flat(part, totals[part]))
    rows.append(row)
  return rows


def write_csv(report: dict, path) -> str:
  """Writes `csv_rows(report)` with the union of their columns and returns the path."""
  rows = csv_rows(report)
  columns = list(dict.fromkeys(key for row in rows for key in row))
  with open(path, "w", newline="") as handle:
    writer = csv.DictWriter(handle, fieldnames=columns, restval="")
    writer.writeheader()
    writer.writerows(rows)
  return os.fspath(path)


def _x(value) -> str:
  return "-" if value is None else f"{value:.2f}x"


def _line(name, shape, pixels, sparsity, patterns, base, pattern, ratio) -> str:
  return (f"{name:<11} {shape:>11} {pixels:>6} {sparsity:>6} {patterns:>4} "
          f"{base['arrays']:>5} {pattern['arrays']:>5} {100 * pattern['utilisation']:>5.1f} "
          f"{base['ou_activations'] / 1e6:>9.2f} {pattern['ou_activations'] / 1e6:>9.2f} "
          f"{base['energy_pj'] / 1e6:>9.2f} {pattern['energy_pj'] / 1e6:>9.2f} "
          f"{base['latency_s'] * 1e3:>8.3f} {pattern['latency_s'] * 1e3:>8.3f} "
          f"{pattern['latency_equal_area_s'] * 1e3:>8.3f} "
          f"{_x(ratio['area_efficiency']):>7} {_x(ratio['energy_efficiency']):>7} "
          f"{_x(ratio['speedup']):>7} {_x(ratio['speedup_equal_area']):>7}")


HEADER = (f"{'layer':<11} {'Cin->Cout':>11} {'P':>6} {'spars':>6} {'pat':>4} {'arr_b':>5} {'arr_p':>5} "
          f"{'util%':>5} {'OU_b(M)':>9} {'OU_p(M)':>9} {'E_b(uJ)':>9} {'E_p(uJ)':>9} "
          f"{'t_b(ms)':>8} {'t_p(ms)':>8} {'t_pEA':>8} {'area':>7} {'energy':>7} {'speed':>7} {'spd_EA':>7}")


def format_table(report: dict) -> str:
  """Per-layer table and totals as text: baseline (`_b`) vs. pattern (`_p`) mapping.

  Columns: arrays, pattern utilisation, OU activations (millions), energy (uJ), latency (ms; `t_pEA`
  at equal area) and the ratios (area efficiency, energy efficiency, speedup, equal-area speedup).
  """
  lines = [HEADER, "-" * len(HEADER)]
  for layer in report["layers"]:
    lines.append(_line(layer["name"], f"{layer['cin']}->{layer['cout']}", layer["out_pixels"],
                       f"{100 * layer['sparsity']:.1f}", layer["patterns"], layer["baseline"],
                       layer["pattern"], layer["ratios"]))
  totals = report["totals"]
  lines.append("-" * len(HEADER))
  lines.append(_line("conv total", "", "", _sparsity(report), "", totals["baseline"], totals["pattern"],
                     totals["ratios"]))
  for layer in report["extra_layers"]:
    base = layer["baseline"]
    lines.append(_line(layer["name"], f"{layer['rows']}->{layer['cout']}", layer["out_pixels"], "base", "",
                       base, base, {key: 1.0 for key in totals["ratios"]}))
  if report["extra_layers"]:
    net = report["network_totals"]
    lines.append(_line("network", "", "", "", "", net["baseline"], net["pattern"], net["ratios"]))
  energy = totals["pattern"]
  lines.append(f"pattern conv energy: RRAM {energy['energy_rram_pj'] / 1e6:.2f} uJ, "
               f"ADC {energy['energy_adc_pj'] / 1e6:.2f} uJ, DAC {energy['energy_dac_pj'] / 1e6:.3f} uJ; "
               f"arrays {energy['arrays']} (lower bound {energy['arrays_lower_bound']}); "
               f"OU cycle {report['ou_cycle_s'] * 1e9:.1f} ns")
  return "\n".join(lines)


def _sparsity(report: dict) -> str:
  kept = sum(layer["kept_weights"] for layer in report["layers"])
  total = sum(layer["weights"] for layer in report["layers"])
  return f"{100 * (1 - kept / total):.2f}"

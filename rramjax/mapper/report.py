"""Text, JSON and CSV reports of a `map_network` result (schema in docs/MAPPER.md)."""

from __future__ import annotations

import csv
import json
import os

import numpy as np

from rramjax.mapper.cost import LATENCY_KEYS, SPEEDUP_KEYS
from rramjax.mapper.placement import Placement

LAYER_FIELDS = ("name", "kind", "cin", "cout", "rows", "out_pixels", "kept_kernels", "kept_weights",
                "weights", "sparsity", "patterns")
SHORT = {"baseline": "base", "pattern": "pat", "packed": "pack", "best": "best"}
POLICY_SHORT = {"per_layer": "layer", "equal_area": "EA", "equal_area_balanced": "bal", "pipelined": "pipe"}


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
  return {f"{prefix}.{key}": item for key, item in to_jsonable(values).items()
          if not isinstance(item, (dict, list))}


def _parts(report: dict) -> tuple[str, ...]:
  return ("baseline", *report.get("schemes", ["pattern"]))


def _row(base: dict, part_values: dict, report: dict) -> dict:
  row = dict(base)
  for part in _parts(report):
    row.update(_flat(part, part_values.get(part, part_values["baseline"])))
    if part in part_values.get("ratios_by_scheme", {}):
      row.update(_flat(part, part_values["ratios_by_scheme"][part]))
  row.update(_flat("ratios", part_values.get("ratios", {})))
  return row


def csv_rows(report: dict) -> list[dict]:
  """One flat row per conv layer, per extra layer and per total.

  Columns: the layer's fields, then per part (`baseline`, each scheme) its counts and ratios
  (`packed.arrays`, `packed.energy_efficiency`, ...), and `ratios.*` (the report's own scheme).
  """
  rows = [_row({field: layer.get(field, "") for field in LAYER_FIELDS}, layer, report)
          for layer in report["layers"] + report["extra_layers"]]
  for name, key in (("total_conv", "totals"), ("total_network", "network_totals")):
    rows.append(_row({"name": name, "kind": "total"}, report[key], report))
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


def _layer_table(report: dict) -> list[str]:
  """One line per conv layer: arrays, energy and per_layer latency of every part side by side."""
  parts = _parts(report)
  groups = (("arrays", "arrays", lambda v: f"{v}"), ("E(uJ)", "energy_pj", lambda v: f"{v / 1e6:.2f}"),
            ("t(ms)", "latency_s", lambda v: f"{v * 1e3:.3f}"))
  head = f"{'layer':<11} {'Cin->Cout':>11} {'P':>6} {'spars':>6} {'pat':>4}"
  top = " " * len(head)
  for title, _, _ in groups:
    width = 9 * len(parts)
    top += f" |{title:^{width}}"
    head += " |" + "".join(f"{SHORT[part]:>9}" for part in parts)
  if "best" in parts:
    top, head = top + " |", head + " | chosen"
  lines = [top, head, "-" * len(head)]
  for layer in report["layers"]:
    shape = f"{layer['cin']}->{layer['cout']}"
    line = (f"{layer['name']:<11} {shape:>11} {layer['out_pixels']:>6} "
            f"{100 * layer['sparsity']:>6.1f} {layer['patterns']:>4}")
    for _, key, show in groups:
      line += " |" + "".join(f"{show(layer[part][key]):>9}" for part in parts)
    if "best" in parts:
      line += f" | {layer['best']['chosen']}"
    lines.append(line)
  return lines


def _totals_table(title: str, totals: dict, report: dict) -> list[str]:
  """One line per part: arrays, energy by component, latency under each policy, ratios."""
  policies = list(LATENCY_KEYS)
  head = (f"{title:<11} {'arrays':>6} {'(lb)':>5} {'util%':>6} {'OU(M)':>8} {'RRAM(uJ)':>9} "
          f"{'ADC(uJ)':>9} {'DAC(uJ)':>8} {'E(uJ)':>9}"
          + "".join(f" {'t_' + POLICY_SHORT[p] + '(ms)':>12}" for p in policies)
          + f" {'area':>6} {'energy':>6}" + "".join(f" {'spd_' + POLICY_SHORT[p]:>9}" for p in policies))
  lines = [head]
  for part in _parts(report):
    t = totals[part]
    ratio = totals["ratios_by_scheme"].get(part, {}) if part != "baseline" else None
    line = (f"{part:<11} {t['arrays']:>6} {t['arrays_lower_bound']:>5} {100 * t['utilisation']:>6.1f} "
            f"{t['ou_activations'] / 1e6:>8.2f} {t['energy_rram_pj'] / 1e6:>9.2f} "
            f"{t['energy_adc_pj'] / 1e6:>9.2f} {t['energy_dac_pj'] / 1e6:>8.3f} {t['energy_pj'] / 1e6:>9.2f}"
            + "".join(f" {t[LATENCY_KEYS[p][:-len('cycles')] + 's'] * 1e3:>12.3f}" for p in policies))
    if ratio is None:
      line += f" {'':>6} {'':>6}" + "".join(f" {'':>9}" for _ in policies)
    else:
      line += (f" {_x(ratio['area_efficiency']):>6} {_x(ratio['energy_efficiency']):>6}"
               + "".join(f" {_x(ratio[SPEEDUP_KEYS[p]]):>9}" for p in policies))
    lines.append(line)
  return lines


def format_table(report: dict) -> str:
  """Per-layer table and totals as text, the baseline and every scheme side by side.

  Per layer: arrays, energy (uJ) and latency (ms, one copy per layer) of each part (`base`,
  `pat`, `pack`, `best`) and, for 'best', the scheme it chose. Totals (conv layers, then the
  network when extra layers exist): arrays (and their lower bound), utilisation, OU activations
  (millions), energy by component, latency under each policy (`layer` = per_layer, `EA` =
  equal_area, `bal` = equal_area_balanced, `pipe` = pipelined) and the ratios against the
  baseline (speedups against the baseline's per_layer latency).
  """
  lines = _layer_table(report) + [""] + _totals_table("conv total", report["totals"], report)
  for layer in report["extra_layers"]:
    base = layer["baseline"]
    lines.append(f"{layer['name']:<11} (extra, baseline mapping) {layer['rows']}->{layer['cout']}: "
                 f"{base['arrays']} arrays, {base['energy_pj'] / 1e6:.2f} uJ, "
                 f"{base['latency_s'] * 1e3:.3f} ms")
  if report["extra_layers"]:
    lines += [""] + _totals_table("network", report["network_totals"], report)
  lines.append(f"cost model: {_cost_line(report)}; OU cycle {report['ou_cycle_s'] * 1e9:.1f} ns; "
               f"conv sparsity {_sparsity(report)}%")
  return "\n".join(lines)


def _cost_line(report: dict) -> str:
  model = report.get("cost_model", {})
  return ", ".join(f"{key}={value}" for key, value in model.items())


def _sparsity(report: dict) -> str:
  kept = sum(layer["kept_weights"] for layer in report["layers"])
  total = sum(layer["weights"] for layer in report["layers"])
  return f"{100 * (1 - kept / total):.2f}"

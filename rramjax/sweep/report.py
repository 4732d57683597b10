"""A sweep's rows: the cost of each point (the mapper), the Pareto fronts, sweep.json / sweep.csv,
resuming from them, and the printed table (numpy only).

A row is flat: the grid values (under their keys), the accuracy (`ideal_accuracy`,
`ou_accuracy_mean`, `ou_accuracy_std`, `seeds`, `examples`; with batch-norm re-estimation
`bn_batches`, `bn_ou_accuracy_mean`, `bn_ou_accuracy_std`; with hardware fine-tuning
`hwtune_steps`, `hwtune_ideal_accuracy`, `hwtune_ou_accuracy_mean`, `hwtune_ou_accuracy_std`), the
run's mapping at that point (`scheme`, `arrays`, `energy_pj` and by component, `latency_*_s`,
`adc_pj_per_conversion`, the baseline's arrays, energy and latency, and the ratios vs the baseline:
`area_efficiency`, `energy_efficiency`, `speedup*`) and the Pareto flags `pareto_energy` and
`pareto_area`. Energies are per image (pJ), latencies per image (s), conv layers only.
"""

from __future__ import annotations

import csv
import json
import os
import pathlib

import numpy as np

from rramjax.errors import WorkdirError
from rramjax.mapper.cost import LATENCY_KEYS, adc_conversion_pj, map_run
from rramjax.mapper.report import to_jsonable
from rramjax.sweep.grid import Grid, format_value

SCHEMA = "rramjax.sweep/1"
JSON_FILE, CSV_FILE = "sweep.json", "sweep.csv"
ENERGY_FIELDS = ("energy_pj", "energy_rram_pj", "energy_adc_pj", "energy_dac_pj")
LATENCY_FIELDS = tuple(key[:-len("cycles")] + "s" for key in LATENCY_KEYS.values())
# The x axes of the Pareto fronts: the row's field and what the flag is called.
FRONTS = {"energy": "energy_pj", "area": "arrays"}


def point_costs(masks, out_hw, config) -> dict:
  """The run's mapping (its `mapper.scheme`) at a point's hardware and cost model, flattened."""
  report = map_run(masks, out_hw, config.hardware, config.mapper)
  totals = report["totals"]
  own, base = totals[report["schemes"][0]], totals["baseline"]
  row = {"scheme": report["schemes"][0], "arrays": own["arrays"],
         **{key: own[key] for key in ENERGY_FIELDS + LATENCY_FIELDS},
         "adc_pj_per_conversion": adc_conversion_pj(config.hardware, config.mapper),
         "baseline_arrays": base["arrays"], "baseline_energy_pj": base["energy_pj"],
         "baseline_latency_s": base["latency_s"]}
  row.update(totals["ratios"])
  return to_jsonable(row)


def ranked(row: dict) -> str:
  """The prefix of the accuracy a row is ranked by: after hardware fine-tuning when the sweep did
  it, else with re-estimated batch-norm statistics when it did that, else at 'ou' as the run is."""
  for prefix in ("hwtune_ou", "bn_ou"):
    if f"{prefix}_accuracy_mean" in row:
      return prefix
  return "ou"


def accuracy(row: dict) -> float:
  """The accuracy a row is ranked by (`ranked`), mean over seeds."""
  return row[f"{ranked(row)}_accuracy_mean"]


def pareto_front(costs, accuracies) -> np.ndarray:
  """Indices of the points no other point dominates (has a cost <= and an accuracy >=, one of the
  two strictly better), sorted by cost, then by accuracy (best first). Equal points are both kept.

  Example:
    >>> pareto_front([1, 2, 3, 2, 4], [0.5, 0.7, 0.6, 0.7, 0.9]).tolist()
    [0, 1, 3, 4]
  """
  costs, accuracies = np.asarray(costs, float), np.asarray(accuracies, float)
  front = [i for i in range(len(costs))
           if not np.any((costs <= costs[i]) & (accuracies >= accuracies[i])
                         & ((costs < costs[i]) | (accuracies > accuracies[i])))]
  return np.asarray(sorted(front, key=lambda i: (costs[i], -accuracies[i])), int)


def mark_fronts(rows: list[dict]) -> list[dict]:
  """Sets each row's `pareto_energy` and `pareto_area` flag (over all rows)."""
  for name, field in FRONTS.items():
    front = set(pareto_front([r[field] for r in rows], [accuracy(r) for r in rows]).tolist()) \
        if rows else set()
    for i, row in enumerate(rows):
      row[f"pareto_{name}"] = i in front
  return rows


def row_key(grid: Grid, row: dict) -> tuple:
  return tuple(row[key] for key in grid.keys)


def _write_atomic(path: pathlib.Path, text: str):
  tmp = path.with_name(path.name + ".tmp")
  tmp.write_text(text)
  os.replace(tmp, path)


def write_outputs(out, header: dict, rows: list[dict]) -> list[str]:
  """Writes sweep.json (`header` and the rows) and sweep.csv (the rows; per-seed lists left out);
  each file replaced whole, so an interrupt leaves the previous or the new one. Returns the paths."""
  out = pathlib.Path(out)
  rows = mark_fronts(rows)
  _write_atomic(out / JSON_FILE, json.dumps(to_jsonable({**header, "rows": rows}), indent=1))
  columns = list(dict.fromkeys(k for row in rows for k, v in row.items() if not isinstance(v, list)))
  tmp = out / (CSV_FILE + ".tmp")
  with open(tmp, "w", newline="") as handle:
    writer = csv.DictWriter(handle, fieldnames=columns, restval="", extrasaction="ignore")
    writer.writeheader()
    writer.writerows(to_jsonable(rows))
  os.replace(tmp, out / CSV_FILE)
  return [str(out / JSON_FILE), str(out / CSV_FILE)]


def rows_written(out) -> int:
  """How many rows `out`'s sweep.json holds (0 when there is none or it cannot be read)."""
  try:
    return len(json.loads((pathlib.Path(out) / JSON_FILE).read_text())["rows"])
  except (OSError, ValueError, KeyError, TypeError):
    return 0


def read_done(out, header: dict, grid: Grid) -> dict[tuple, dict]:
  """The rows an earlier, interrupted run of the same sweep wrote in `out`, by grid values.

  Raises:
    WorkdirError: `out` holds a sweep.json that cannot be read, or one of another run or other
      settings, or rows outside this grid.
  """
  path = pathlib.Path(out) / JSON_FILE
  if not path.is_file():
    return {}
  what = f"--out {str(out)!r} holds a {JSON_FILE}"
  try:
    stored = json.loads(path.read_text())
    rows = stored["rows"]
  except (OSError, ValueError, KeyError, TypeError) as err:
    raise WorkdirError(f"{what} that cannot be read ({err}): delete it, or pass another --out.") from None
  defaults = {"bn_batches": 0}  # sweeps written before the key existed did not re-estimate
  differs = [key for key in ("schema", "run", "grid_keys", "seeds", "hwtune_steps", "bn_batches")
             if stored.get(key, defaults.get(key)) != to_jsonable(header[key])]
  if differs:
    diff = "; ".join(f"{k}: {stored.get(k, defaults.get(k))!r} there, {to_jsonable(header[k])!r} now"
                     for k in differs)
    raise WorkdirError(f"{what} of another sweep ({diff}): pass another --out, or the same run and "
                       "settings to resume it.")
  wanted = set(grid.combinations())
  done = {row_key(grid, row): row for row in rows}
  outside = [key for key in done if key not in wanted]
  if outside:
    label = ", ".join(f"{k}={format_value(v)}" for k, v in zip(grid.keys, outside[0]))
    raise WorkdirError(f"{what} with {len(outside)} row(s) outside this grid (e.g. {label}): pass "
                       "another --out, or a grid that holds them to resume that sweep.")
  return done


def format_table(grid: Grid, rows: list[dict]) -> str:
  """The rows as a text table; `E` and `A` mark the energy and area Pareto fronts."""
  tuned = any("hwtune_ou_accuracy_mean" in row for row in rows)
  bn = any("bn_ou_accuracy_mean" in row for row in rows)
  names = [key.split(".", 1)[1] for key in grid.keys]
  width = [max(len(n), 6) for n in names]
  head = " ".join(f"{n:>{w}}" for n, w in zip(names, width))
  head += (f" {'ideal%':>7} {'ou%':>15}" + (f" {'ou%, BN re-est.':>15}" if bn else "")
           + (f" {'hwtune%':>15}" if tuned else ""))
  head += f" {'arrays':>6} {'E(uJ)':>8} {'ADC(uJ)':>8} {'t(ms)':>8} {'E eff':>6} pareto"
  lines = [head, "-" * len(head)]
  for row in rows:
    cells = " ".join(f"{format_value(row[k]):>{w}}" for k, w in zip(grid.keys, width))
    cells += f" {100 * row['ideal_accuracy']:>7.2f} {_pm(row, 'ou'):>15}"
    if bn:
      cells += f" {_pm(row, 'bn_ou') if 'bn_ou_accuracy_mean' in row else '':>15}"
    if tuned:
      cells += f" {_pm(row, 'hwtune_ou') if 'hwtune_ou_accuracy_mean' in row else '':>15}"
    marks = ("E" if row.get("pareto_energy") else "") + ("A" if row.get("pareto_area") else "")
    eff = row.get("energy_efficiency")
    cells += (f" {row['arrays']:>6} {row['energy_pj'] / 1e6:>8.3f} {row['energy_adc_pj'] / 1e6:>8.3f}"
              f" {row['latency_s'] * 1e3:>8.3f} {'' if eff is None else f'{eff:.2f}x':>6} {marks}")
    lines.append(cells)
  return "\n".join(lines)


def _pm(row: dict, prefix: str) -> str:
  return (f"{100 * row[f'{prefix}_accuracy_mean']:.2f} +- "
          f"{100 * row[f'{prefix}_accuracy_std']:.2f}")

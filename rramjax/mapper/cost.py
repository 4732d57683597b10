"""Analytic cost model: arrays, OU activations, conversions, energy and latency.

Definitions: docs/MODEL.md sections 4 (counts) and 6 (energy and latency); options and report
schema: docs/MAPPER.md.

Schemes: `baseline` (the straightforward im2col mapping), `pattern` (the paper's kernel
reordering), `packed` (filters in OU column groups) and `best` (per layer the cheapest of the three
by an objective). The pattern and packed tiles are those of the layer's OU plan (`rramjax.plan`),
placed by `place_tiles` and counted here tile by tile: per output pixel and input slice a tile of
`n` rows and `m` columns is one OU activation, `m` ADC and `n` DAC conversions.

Counts named `*_per_pixel` are per output pixel **and** per input slice; network totals multiply them
by `P = H_out * W_out` and `S = hw.input_slices`. Each scheme's counts also come as histograms over
the rows an OU drives (`ou_by_rows[n]`, `adc_by_rows[n]`), which the cost model's energy options
read (`CostModel`, docs/MAPPER.md "Cost model options").

Latency [choice]: one OU activation per array per OU cycle, all arrays of a layer working in
parallel. A copy of a layer takes `max_ou_per_array` cycles per pixel and slice (its busiest
array); `k` copies share its `P` pixels. The OU cycle is `max(1 / dac_rate_hz, ou_cols /
adc_rate_hz)`: the row DACs convert in parallel while one ADC per array, time-multiplexed over the
OU's columns, digitises the previous OU (a two-stage pipeline); with the paper's converters the
18 MS/s DAC sets it (55.6 ns). Policies (docs/MAPPER.md "Latency policies"): `per_layer` (one copy
each, layers in sequence), `equal_area` (each layer `max(1, baseline_arrays // arrays)` copies),
`equal_area_balanced` (the baseline's arrays allotted across layers by greedy marginal allocation)
and `pipelined` (one copy each, layers as pipeline stages: the slowest stage per image).

References:
  Yu et al., NVMSA 2021, arXiv:2010.06156 (mapping, OU energy and converter figures).
"""

from __future__ import annotations

import heapq
from typing import Mapping, Sequence

import numpy as np

from rramjax.errors import ConfigError, MaskError
from rramjax.hardware.config import HardwareConfig, bits_to_hold
from rramjax.mapper.masks import check_conv_mask, check_extra_mask, check_out_hw
from rramjax.mapper.options import OBJECTIVES, SCHEMES, CostModel
from rramjax.mapper.placement import place_tiles
from rramjax.plan import FILTER_ORDERS, POPCOUNT, kernel_patterns, make_plan

REPORT_SCHEMA = "rramjax.mapper.report/2"
ENERGY_KEYS = ("energy_rram_pj", "energy_adc_pj", "energy_dac_pj", "energy_pj")
# Latency policy -> the key of its cycles in a cost entry (and `_s` for seconds).
LATENCY_KEYS = {"per_layer": "latency_cycles", "equal_area": "latency_equal_area_cycles",
                "equal_area_balanced": "latency_balanced_cycles",
                "pipelined": "latency_pipelined_cycles"}
SPEEDUP_KEYS = {"per_layer": "speedup", "equal_area": "speedup_equal_area",
                "equal_area_balanced": "speedup_balanced", "pipelined": "speedup_pipelined"}
SUMMED_KEYS = ("arrays", "cells", "ou_activations", "adc_conversions", "dac_conversions", *ENERGY_KEYS,
               "latency_cycles", "latency_equal_area_cycles", "latency_balanced_cycles")
PLAN_SCHEMES = ("pattern", "packed")


def ou_cycle_s(hw: HardwareConfig) -> float:
  """Seconds per OU activation: `max(1 / dac_rate_hz, ou_cols / adc_rate_hz)` (see module doc)."""
  return max(1.0 / hw.dac_rate_hz, hw.ou_cols / hw.adc_rate_hz)


# Counts ----------------------------------------------------------------------------------------
def _row_groups(rows: int, hw: HardwareConfig) -> np.ndarray:
  """How many OU row groups of each height `0..ou_rows` cutting `rows` into arrays, then OUs, gives."""
  counts = np.zeros(hw.ou_rows + 1, np.int64)
  full, rest = divmod(rows, hw.array_rows)
  for height, arrays in ((hw.array_rows, full), (rest, 1 if rest else 0)):
    whole, last = divmod(height, hw.ou_rows)
    counts[hw.ou_rows] += arrays * whole
    counts[last] += arrays * (last > 0)
  return counts


def _col_groups(cols: int, hw: HardwareConfig) -> int:
  """OU column groups cutting `cols` into arrays, then OUs."""
  full, rest = divmod(cols, hw.array_cols)
  return full * -(-hw.array_cols // hw.ou_cols) + -(-rest // hw.ou_cols)


def _from_histograms(ou_by_rows: np.ndarray, adc_by_rows: np.ndarray) -> dict:
  heights = np.arange(len(ou_by_rows))
  return {"ou_per_pixel": int(ou_by_rows.sum()), "adc_per_pixel": int(adc_by_rows.sum()),
          "dac_per_pixel": int(heights @ ou_by_rows),
          "ou_by_rows": ou_by_rows.tolist(), "adc_by_rows": adc_by_rows.tolist()}


def baseline_cost(rows: int, cout: int, hw: HardwareConfig) -> dict:
  """Straightforward mapping of a `rows x Cout*wc` im2col matrix (zeros stored and computed).

  Args:
    rows: im2col rows, `9 * Cin` for a 3x3 conv (`Cin` for FC).
    cout: filters.
    hw: hardware config.

  Returns:
    `arrays`, `cells`, `utilisation`, `ou_per_pixel`, `adc_per_pixel`, `dac_per_pixel`,
    `ou_by_rows`, `adc_by_rows` and `max_ou_per_array` (counts per output pixel and input slice).
  """
  cols = cout * hw.columns_per_weight
  arrays = -(-rows // hw.array_rows) * -(-cols // hw.array_cols)
  groups = _row_groups(rows, hw)
  busiest = (-(-min(rows, hw.array_rows) // hw.ou_rows)) * (-(-min(cols, hw.array_cols) // hw.ou_cols))
  return {
      "arrays": arrays, "cells": rows * cols,
      "utilisation": rows * cols / (arrays * hw.array_rows * hw.array_cols),
      **_from_histograms(groups * _col_groups(cols, hw), groups * cols),
      "max_ou_per_array": busiest, "arrays_lower_bound": arrays,
  }


def plan_cost(placement, hw: HardwareConfig) -> dict:
  """Cost of a placed plan (pattern or packed): each tile is one OU activation per pixel and slice.

  Returns:
    `arrays`, `cells` (cells inside tiles), `utilisation`, `ou_per_pixel`, `adc_per_pixel`,
    `dac_per_pixel`, `ou_by_rows`, `adc_by_rows`, `max_ou_per_array`, `groups` (pattern blocks or
    column groups; `blocks` too), `tiles`, `strips` and `arrays_lower_bound = ceil(cells / (R*C))`.
  """
  rows, cols = placement.tiles["rows"], placement.tiles["cols"]
  capacity, arrays = hw.array_rows * hw.array_cols, placement.num_arrays
  cells = int(rows @ cols)
  groups = len(np.unique(placement.tiles["group"]))
  return {
      "arrays": arrays, "cells": cells, "utilisation": cells / (arrays * capacity) if arrays else 0.0,
      **_from_histograms(np.bincount(rows, minlength=hw.ou_rows + 1),
                         np.bincount(rows, weights=cols, minlength=hw.ou_rows + 1).astype(np.int64)),
      "max_ou_per_array": int(placement.ou_per_array().max()) if arrays else 0,
      "groups": groups, "blocks": groups, "tiles": placement.num_tiles, "strips": placement.num_strips,
      "arrays_lower_bound": -(-cells // capacity),
  }


pattern_cost = plan_cost  # the name from before the packed mapping


# Energy ----------------------------------------------------------------------------------------
def adc_conversion_pj(hw: HardwareConfig, model: CostModel) -> float:
  """Energy of one full conversion of the `adc_bits` ADC: `anchor_pj * factor^(adc_bits - anchor_bits)`."""
  anchor = hw.e_adc_pj if model.adc_energy_anchor_pj is None else model.adc_energy_anchor_pj
  return anchor * model.adc_energy_per_bit_factor**(hw.adc_bits - model.adc_energy_anchor_bits)


def sum_bits(rows, hw: HardwareConfig) -> np.ndarray:
  """Bits the largest sum of an OU with `rows` rows needs at the ADC's step, at most `adc_bits`.

  `min(adc_bits, ceil(log2(floor(rows * hw.row_full_scale / LSB) + 1)))` with the
  default ('max') full scale's step `LSB = hw.adc_lsb`: 8, 7 and 5 bits for 9, 4 and 1 rows at the
  paper's defaults.
  """
  largest = np.asarray(rows, np.int64) * hw.row_full_scale // hw.adc_lsb
  bits = np.vectorize(bits_to_hold, otypes=[np.int64])(largest)
  return np.minimum(hw.adc_bits, bits)


def energy_per_pixel(cost: dict, hw: HardwareConfig, model: CostModel | None = None) -> dict:
  """RRAM, ADC and DAC energy (pJ) per output pixel and input slice of one mapped layer.

  Args:
    cost: a scheme's counts (`ou_by_rows`, `adc_by_rows`, `dac_per_pixel`).
    hw: hardware config (`e_ou_pj`, `e_adc_pj`, `e_dac_pj`, `ou_rows`, the ADC).
    model: the cost model; `CostModel()` when None.

  Returns:
    `energy_rram_pj`, `energy_adc_pj`, `energy_dac_pj` and their sum `energy_pj`.
  """
  model = model or CostModel()
  ou, adc = np.asarray(cost["ou_by_rows"]), np.asarray(cost["adc_by_rows"])
  heights = np.arange(len(ou))
  activations = heights @ ou / hw.ou_rows if model.ou_energy == "per_row" else ou.sum()
  if model.adc_energy == "bits_needed":
    scale = model.adc_energy_per_bit_factor**(sum_bits(heights, hw) - hw.adc_bits)
  else:
    scale = np.ones(len(adc))
  energy = {"energy_rram_pj": float(hw.e_ou_pj * activations),
            "energy_adc_pj": float(adc_conversion_pj(hw, model) * (scale @ adc)),
            "energy_dac_pj": float(hw.e_dac_pj * cost["dac_per_pixel"])}
  energy["energy_pj"] = sum(energy.values())
  return energy


# One layer -------------------------------------------------------------------------------------
def _check_schemes(schemes, filter_order: str, objective: str) -> tuple[str, ...]:
  schemes = (schemes,) if isinstance(schemes, str) else tuple(schemes)
  bad = [s for s in schemes if s not in SCHEMES + ("baseline",)]
  if bad or not schemes:
    raise ConfigError(f"schemes must be a non-empty list from {SCHEMES}, got {list(schemes)}.")
  if filter_order not in FILTER_ORDERS:
    raise ConfigError(f"filter_order must be one of {FILTER_ORDERS}, got {filter_order!r}.")
  if objective not in OBJECTIVES:
    raise ConfigError(f"objective must be one of {OBJECTIVES}, got {objective!r}.")
  return tuple(s for s in dict.fromkeys(schemes) if s != "baseline")


def _objective_value(entry: dict, objective: str) -> tuple:
  """What 'best' minimises, then energy and arrays to break ties."""
  main = {"energy": entry["energy_per_pixel_pj"], "area": entry["arrays"],
          "latency": entry["max_ou_per_array"]}[objective]
  return main, entry["energy_per_pixel_pj"], entry["arrays"]


def layer_counts(mask) -> dict:
  """`kept_kernels`, `kept_weights` and `patterns` (distinct nonzero patterns) of a boolean mask."""
  codes = kernel_patterns(mask)
  return {"kept_kernels": int(np.count_nonzero(codes)), "kept_weights": int(POPCOUNT[codes].sum()),
          "patterns": len(np.unique(codes[codes > 0]))}


def map_layer(mask, hw: HardwareConfig | None = None, *, schemes=("pattern",), filter_order: str = "given",
              objective: str = "energy", cost_model: CostModel | None = None) -> dict:
  """Maps one pattern-pruned 3x3 conv layer by the baseline and each requested scheme.

  Args:
    mask: `(3, 3, Cin, Cout)` HWIO array, nonzero = kept.
    hw: hardware config; the paper's defaults when None.
    schemes: any of 'pattern', 'packed', 'best'.
    filter_order: the packed mapping's filter order, 'given' or 'greedy'.
    objective: what 'best' minimises: 'energy' (per pixel and slice, by `cost_model`), 'area'
      (arrays) or 'latency' (the layer's busiest array).
    cost_model: energy options (`CostModel()` when None).

  Returns:
    `{"baseline": {...}, scheme: {...}, ...}`: counts per output pixel and input slice
    (`arrays`, `ou_per_pixel`, `adc_per_pixel`, `dac_per_pixel`, ... see `baseline_cost`,
    `plan_cost`) and `energy_per_pixel_pj`. The pattern and packed entries also hold
    `kept_kernels`, `kept_weights`, `patterns` (distinct nonzero patterns) and `placement` (the
    `Placement` of the plan's tiles); packed its `filter_order`; 'best' the entry of the scheme
    it `chose` ('pattern', 'packed' or 'baseline').

  Raises:
    MaskError: the mask is not a finite, nonempty `(3, 3, Cin, Cout)` array.
    ConfigError: an unknown scheme, filter order or objective.

  Example:
    >>> import numpy as np
    >>> mask = np.zeros((3, 3, 16, 8), bool)
    >>> mask[1, 1] = True                       # every kernel keeps its centre only
    >>> mapped = map_layer(mask, schemes=("pattern", "packed", "best"))
    >>> [mapped[s]["ou_per_pixel"] for s in ("baseline", "pattern", "packed")]
    [32, 32, 4]
    >>> mapped["best"]["chosen"]
    'packed'
  """
  hw = hw or HardwareConfig()
  cost_model = cost_model or CostModel()
  schemes = _check_schemes(schemes, filter_order, objective)
  mask = check_conv_mask(mask)
  entries = {"baseline": baseline_cost(9 * mask.shape[2], mask.shape[3], hw)}
  layer = layer_counts(mask)
  wanted = PLAN_SCHEMES if "best" in schemes else [s for s in PLAN_SCHEMES if s in schemes]
  for scheme in wanted:
    placement = place_tiles(make_plan(mask, hw, scheme, filter_order), hw)
    entries[scheme] = {**plan_cost(placement, hw), **layer, "placement": placement}
  if "packed" in entries:
    entries["packed"]["filter_order"] = filter_order
  for entry in entries.values():
    entry["energy_per_pixel_pj"] = energy_per_pixel(entry, hw, cost_model)["energy_pj"]
  if "best" in schemes:
    chosen = min(("pattern", "packed", "baseline"), key=lambda s: _objective_value(entries[s], objective))
    entries["best"] = {**entries[chosen], "chosen": chosen}
  return {"baseline": entries["baseline"], **{s: entries[s] for s in schemes}}


# A network -------------------------------------------------------------------------------------
def _scale(cost: dict, pixels: int, hw: HardwareConfig, cycle_s: float, model: CostModel) -> dict:
  """Adds network-level counts: per-pixel counts x P x S, energy (pJ) and per_layer latency."""
  per_pixel_slices = pixels * hw.input_slices
  scaled = {key: value for key, value in cost.items() if key != "energy_per_pixel_pj"}
  scaled.update(
      ou_activations=cost["ou_per_pixel"] * per_pixel_slices,
      adc_conversions=cost["adc_per_pixel"] * per_pixel_slices,
      dac_conversions=cost["dac_per_pixel"] * per_pixel_slices,
      latency_cycles=cost["max_ou_per_array"] * per_pixel_slices)
  scaled.update({key: value * per_pixel_slices for key, value in energy_per_pixel(cost, hw, model).items()})
  scaled["latency_s"] = scaled["latency_cycles"] * cycle_s
  return scaled


def _copy_latency(entry: dict, copies: int, pixels: int, hw: HardwareConfig) -> int:
  """OU cycles of a layer run as `copies` copies that share its pixels (0 for an empty layer)."""
  return entry["max_ou_per_array"] * -(-pixels // max(copies, 1)) * hw.input_slices


def _next_step(arrays: int, work: int, pixels: int, copies: int):
  """The next copy count that shortens a layer, and the cycles it saves per array it costs."""
  if not arrays or not work:
    return None
  level = -(-pixels // copies)
  if level <= 1:
    return None
  more = -(-pixels // (level - 1))
  return more, work * (level - -(-pixels // more)) / ((more - copies) * arrays)


def _greedy_copies(start, arrays, work, pixels, budget) -> np.ndarray:
  """Greedy marginal allocation: repeatedly the step saving the most cycles per array that fits."""
  copies, spare = np.array(start), budget - int(np.dot(start, arrays))
  heap = []
  for layer in range(len(copies)):
    step = _next_step(arrays[layer], work[layer], pixels[layer], copies[layer])
    if step:
      heapq.heappush(heap, (-step[1], layer, step[0]))
  while heap:
    _, layer, more = heapq.heappop(heap)
    cost = (more - copies[layer]) * arrays[layer]
    if cost > spare:  # the spare arrays only shrink: this layer's next step never fits again
      continue
    copies[layer], spare = more, spare - cost
    step = _next_step(arrays[layer], work[layer], pixels[layer], more)
    if step:
      heapq.heappush(heap, (-step[1], layer, step[0]))
  return copies


def balanced_copies(arrays, work, pixels, baseline_arrays) -> np.ndarray:
  """Copies per layer for `equal_area_balanced` (docs/MAPPER.md "Latency policies").

  Minimises `sum_l work_l * ceil(P_l / k_l)` over `k_l >= 1` copies with `sum_l k_l * a_l` within
  the budget `sum_l max(baseline_l, a_l)` (the baseline's arrays; a layer mapped larger than its
  baseline still gets its one copy). Greedy marginal allocation, a copy count at a time that
  lowers `ceil(P/k)`; the better of the allocation grown from one copy each and the one grown
  from the `equal_area` copies, so it is never slower than `equal_area`.

  Args:
    arrays: `(L,)` arrays of one copy of each layer.
    work: `(L,)` cycles per output pixel of one copy (`max_ou_per_array * S`).
    pixels: `(L,)` output pixels `P`.
    baseline_arrays: `(L,)` the baseline's arrays.

  Returns:
    `(L,)` int copies (0 for a layer with no arrays).
  """
  arrays, work, pixels, base = (np.asarray(v, np.int64) for v in (arrays, work, pixels, baseline_arrays))
  budget = int(np.maximum(base, arrays).sum())
  present = (arrays > 0).astype(np.int64)
  equal_area = np.where(arrays > 0, np.maximum(1, base // np.maximum(arrays, 1)), 0)
  options = [_greedy_copies(start, arrays, work, pixels, budget) for start in (present, equal_area)]
  return min(options, key=lambda k: int(np.sum(work * -(-pixels // np.maximum(k, 1)))))


def _set_latency(entry: dict, policy: str, cycles: int, cycle_s: float) -> None:
  key = LATENCY_KEYS[policy]
  entry[key] = int(cycles)
  entry[key[:-len("cycles")] + "s"] = cycles * cycle_s


def _add_copy_policies(layers: list[dict], schemes: Sequence[str], hw: HardwareConfig, cycle_s: float):
  """Equal-area and balanced copies and latencies of every layer, each scheme and the baseline."""
  pixels = [layer["out_pixels"] for layer in layers]
  base_arrays = [layer["baseline"]["arrays"] for layer in layers]
  for scheme in ("baseline", *schemes):
    entries = [layer[scheme] for layer in layers]
    arrays = [entry["arrays"] for entry in entries]
    work = [entry["max_ou_per_array"] * hw.input_slices for entry in entries]
    balanced = balanced_copies(arrays, work, pixels, base_arrays)
    for entry, base, p, copies in zip(entries, base_arrays, pixels, balanced):
      equal = max(1, base // entry["arrays"]) if entry["arrays"] else 0
      entry.update(replicas_equal_area=equal, replicas_balanced=int(copies))
      _set_latency(entry, "equal_area", _copy_latency(entry, equal, p, hw), cycle_s)
      _set_latency(entry, "equal_area_balanced", _copy_latency(entry, copies, p, hw), cycle_s)


def _ratio(numerator, denominator):
  return numerator / denominator if denominator else None


def ratios(baseline: dict, scheme: dict) -> dict:
  """Area efficiency, energy efficiency and speedups of `scheme` over `baseline` (None if undefined).

  Every speedup divides the baseline's `per_layer` latency by the scheme's latency under a policy
  (`speedup`, `speedup_equal_area`, `speedup_balanced`, `speedup_pipelined`; the ones whose
  latency `scheme` holds).
  """
  out = {"area_efficiency": _ratio(baseline["arrays"], scheme["arrays"]),
         "energy_efficiency": _ratio(baseline["energy_pj"], scheme["energy_pj"])}
  for policy, key in LATENCY_KEYS.items():
    if key in scheme:
      out[SPEEDUP_KEYS[policy]] = _ratio(baseline["latency_cycles"], scheme[key])
  return out


def _totals(costs: Sequence[dict], hw: HardwareConfig, cycle_s: float) -> dict:
  """Sums the network-level keys over layers (layers never share arrays); pipelined: the slowest."""
  total = {key: sum(cost[key] for cost in costs) for key in SUMMED_KEYS}
  total["latency_pipelined_cycles"] = max(
      (cost.get("latency_pipelined_cycles", cost["latency_cycles"]) for cost in costs), default=0)
  for key in LATENCY_KEYS.values():
    total[key[:-len("cycles")] + "s"] = total[key] * cycle_s
  total["arrays_lower_bound"] = sum(cost.get("arrays_lower_bound", cost["arrays"]) for cost in costs)
  capacity = total["arrays"] * hw.array_rows * hw.array_cols
  total["utilisation"] = total["cells"] / capacity if capacity else 0.0
  return total


def _with_ratios(parts: dict, schemes: Sequence[str]) -> dict:
  """`{baseline, scheme...}` plus `ratios` (the first scheme's) and `ratios_by_scheme`."""
  by_scheme = {s: ratios(parts["baseline"], parts[s]) for s in schemes}
  return {**parts, "ratios": by_scheme[schemes[0]], "ratios_by_scheme": by_scheme}


def _pixels(out_hw) -> int:
  return int(np.prod(out_hw))


def _conv_entry(name, mask, out_hw, hw, cycle_s, keep_placement, options):
  mask = check_conv_mask(mask, name)
  mapped = map_layer(mask, hw, **options)
  pixels = _pixels(out_hw)
  entry = {"name": name, "kind": "conv3x3", "cin": mask.shape[2], "cout": mask.shape[3],
           "out_hw": [int(v) for v in out_hw], "out_pixels": pixels,
           "kernels": mask.shape[2] * mask.shape[3], "weights": mask.size, **layer_counts(mask)}
  entry["sparsity"] = 1.0 - entry["kept_weights"] / mask.size
  for scheme, cost in mapped.items():
    placement = cost.pop("placement", None)
    entry[scheme] = _scale(cost, pixels, hw, cycle_s, options["cost_model"])
    if keep_placement and placement is not None:
      entry[scheme]["placement"] = placement
  return entry


def _extra_entry(name, mask, out_hw, hw, cycle_s, model):
  shape = np.shape(mask)
  mask = check_extra_mask(mask, name)
  pixels = _pixels(np.broadcast_to(np.asarray(out_hw), (2,)))
  base = _scale(baseline_cost(mask.shape[0], mask.shape[1], hw), pixels, hw, cycle_s, model)
  _set_latency(base, "equal_area", base["latency_cycles"], cycle_s)
  _set_latency(base, "equal_area_balanced", base["latency_cycles"], cycle_s)
  kind = "fc" if len(shape) == 2 else f"conv{shape[0]}x{shape[1]}"
  return {"name": name, "kind": kind, "rows": mask.shape[0], "cout": mask.shape[1],
          "out_pixels": pixels, "kept_weights": int(mask.sum()), "weights": mask.size, "baseline": base}


def _extra_items(extra_layers):
  if isinstance(extra_layers, Mapping):
    return list(extra_layers.items())
  return [(f"extra_{i:02d}", item) for i, item in enumerate(extra_layers)]


def map_network(masks: Sequence, out_hw, hw: HardwareConfig | None = None, extra_layers=(),
                names: Sequence[str] | None = None, cycle_s: float | None = None,
                keep_placement: bool = False, *, schemes=("pattern",), filter_order: str = "given",
                objective: str = "energy", cost_model: CostModel | None = None) -> dict:
  """Maps every 3x3 conv layer of a network by the baseline and each scheme, and totals the costs.

  Energy per layer = counts x P x S x pJ (RRAM OU, ADC, DAC, by `cost_model`). Latency under each
  policy follows the module docstring; every policy's latency and speedup is reported.

  Args:
    masks: per conv layer, a `(3, 3, Cin, Cout)` mask, in network order.
    out_hw: per conv layer, its output size: `(L,)` square sides or `(L, 2)` (`H_out, W_out`).
    hw: hardware config; the paper's defaults when None.
    extra_layers: layers outside the paper's scope (FC, 1x1), mapped the baseline way and reported
      apart: a mapping `name -> (mask, out_hw)` or a sequence of `(mask, out_hw)` pairs; masks are
      `(Cin, Cout)` or `(kh, kw, Cin, Cout)`, `out_hw` a side or `(H, W)` (1 for FC).
    names: conv layer names (default `conv_00, conv_01, ...`).
    cycle_s: seconds per OU cycle (default `ou_cycle_s(hw)`).
    keep_placement: keep each layer's `Placement` under `[scheme]["placement"]`.
    schemes: the schemes to report ('pattern', 'packed', 'best'); the first is the report's own
      (its ratios are `ratios`).
    filter_order, objective, cost_model: as in `map_layer`.

  Returns:
    The report (JSON schema in docs/MAPPER.md): `schema`, `hardware`, `cost_model`, `schemes`,
    `filter_order`, `objective`, `ou_cycle_s`, `layers` (per conv layer: shape, sparsity,
    `baseline` and one entry per scheme, `ratios`, `ratios_by_scheme`), `totals` (conv layers:
    the same parts), `extra_layers`, `extra_totals` and `network_totals` (conv layers each way +
    extra layers the baseline way).

  Raises:
    MaskError: a bad mask or `out_hw`.
    ConfigError: an unknown scheme, filter order or objective.

  Example:
    >>> import numpy as np
    >>> masks = [np.ones((3, 3, 3, 8)), np.zeros((3, 3, 8, 8))]
    >>> masks[1][1, 1] = 1                      # layer 2: centre-only kernels
    >>> report = map_network(masks, [8, 4], schemes=("packed", "pattern"))
    >>> report["totals"]["baseline"]["arrays"], report["totals"]["packed"]["arrays"]
    (2, 2)
    >>> round(report["totals"]["ratios"]["energy_efficiency"], 2)   # packed vs baseline
    1.54
  """
  hw = hw or HardwareConfig()
  cost_model = cost_model or CostModel()
  cycle_s = ou_cycle_s(hw) if cycle_s is None else float(cycle_s)
  schemes = _check_schemes(schemes, filter_order, objective)
  masks = list(masks)
  if not masks:
    raise MaskError("map_network needs at least one conv mask.")
  out_hw = check_out_hw(out_hw, len(masks))
  names = list(names) if names is not None else [f"conv_{i:02d}" for i in range(len(masks))]
  options = {"schemes": schemes, "filter_order": filter_order, "objective": objective,
             "cost_model": cost_model}
  layers = [_conv_entry(name, mask, size, hw, cycle_s, keep_placement, options)
            for name, mask, size in zip(names, masks, out_hw)]
  _add_copy_policies(layers, schemes, hw, cycle_s)
  for layer in layers:
    layer.update(_with_ratios({part: layer[part] for part in ("baseline", *schemes)}, schemes))
  extras = [_extra_entry(name, mask, size, hw, cycle_s, cost_model)
            for name, (mask, size) in _extra_items(extra_layers)]
  totals = {part: _totals([layer[part] for layer in layers], hw, cycle_s) for part in ("baseline", *schemes)}
  extra = _totals([layer["baseline"] for layer in extras], hw, cycle_s)
  network = {part: _totals([total, extra], hw, cycle_s) for part, total in totals.items()}
  return {
      "schema": REPORT_SCHEMA, "hardware": hw.to_dict(), "cost_model": cost_model.cost_model().to_dict(),
      "schemes": list(schemes), "filter_order": filter_order, "objective": objective,
      "ou_cycle_s": cycle_s, "input_slices": hw.input_slices, "layers": layers,
      "totals": _with_ratios(totals, schemes), "extra_layers": extras, "extra_totals": extra,
      "network_totals": _with_ratios(network, schemes),
  }


def map_run(masks: Sequence, out_hw, hw: HardwareConfig | None, mapper_config, **kwargs) -> dict:
  """`map_network` with a run's `mapper` settings (a `MapperConfig`): its scheme first, then the others.

  Args:
    masks, out_hw, hw: as in `map_network`.
    mapper_config: the run's `MapperConfig` (`rramjax.config.Config.mapper`).
    **kwargs: more `map_network` arguments (`names`, `extra_layers`, `keep_placement`, ...).

  Returns:
    The report; `report["schemes"][0]` is the run's scheme, so `report["totals"]["ratios"]` are its.
  """
  return map_network(masks, out_hw, hw, schemes=mapper_config.schemes,
                     filter_order=mapper_config.filter_order, objective=mapper_config.objective,
                     cost_model=mapper_config.cost_model(), **kwargs)


"""Analytic cost model: arrays, OU activations, conversions, energy and latency (DESIGN.md section 4).

Counts named `*_per_pixel` are per output pixel **and** per input slice; network totals multiply them
by `P = H_out * W_out` and `S = hw.input_slices`.

Latency model [choice]: one OU activation per array per OU cycle, all arrays of a layer working in
parallel, layers one after another. A layer therefore takes `max_ou_per_array * P * S` OU cycles,
where `max_ou_per_array` is the OU activations per pixel and slice of its busiest array. The OU
cycle is `max(1 / dac_rate_hz, ou_cols / adc_rate_hz)`: the row DACs convert in parallel while one
ADC per array, time-multiplexed over the OU's columns, digitises the previous OU (a two-stage
pipeline); with the paper's converters the 18 MS/s DAC sets it (55.6 ns).

Equal-area latency [choice]: each pattern-mapped layer gets the arrays its baseline mapping uses, so
it holds `replicas = max(1, baseline_arrays // pattern_arrays)` copies of itself; the copies share the
layer's `P` output pixels, which then takes `max_ou_per_array * ceil(P / replicas) * S` cycles.

References:
  Yu et al., NVMSA 2021, arXiv:2010.06156 (mapping, OU energy and converter figures).
"""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np

from rramjax.errors import MaskError
from rramjax.hardware.config import HardwareConfig
from rramjax.mapper.blocks import pattern_blocks
from rramjax.mapper.masks import check_conv_mask, check_extra_mask, check_out_hw
from rramjax.mapper.placement import place_tiles

REPORT_SCHEMA = "rramjax.mapper.report/1"
ENERGY_KEYS = ("energy_rram_pj", "energy_adc_pj", "energy_dac_pj", "energy_pj")
SUMMED_KEYS = ("arrays", "cells", "ou_activations", "adc_conversions", "dac_conversions",
               *ENERGY_KEYS, "latency_cycles", "latency_s", "latency_equal_area_cycles",
               "latency_equal_area_s")


def ou_cycle_s(hw: HardwareConfig) -> float:
  """Seconds per OU activation: `max(1 / dac_rate_hz, ou_cols / adc_rate_hz)` (see module doc)."""
  return max(1.0 / hw.dac_rate_hz, hw.ou_cols / hw.adc_rate_hz)


def _chunk_groups(total: int, chunk: int, group: int) -> tuple[int, int]:
  """Cutting `total` into `chunk`-sized pieces: (pieces, sum over pieces of ceil(piece / group))."""
  full, rest = divmod(total, chunk)
  return full + (rest > 0), full * -(-chunk // group) + -(-rest // group)


def baseline_cost(rows: int, cout: int, hw: HardwareConfig) -> dict:
  """Straightforward mapping of a `rows x Cout*wc` im2col matrix (zeros stored and computed).

  Args:
    rows: im2col rows, `9 * Cin` for a 3x3 conv (`Cin` for FC).
    cout: filters.
    hw: hardware config.

  Returns:
    `arrays`, `cells`, `utilisation`, `ou_per_pixel`, `adc_per_pixel`, `dac_per_pixel` and
    `max_ou_per_array` (counts per output pixel and input slice).
  """
  cols = cout * hw.columns_per_weight
  row_arrays, row_groups = _chunk_groups(rows, hw.array_rows, hw.ou_rows)
  col_arrays, col_groups = _chunk_groups(cols, hw.array_cols, hw.ou_cols)
  arrays = row_arrays * col_arrays
  busiest = (-(-min(rows, hw.array_rows) // hw.ou_rows)) * (-(-min(cols, hw.array_cols) // hw.ou_cols))
  return {
      "arrays": arrays, "cells": rows * cols,
      "utilisation": rows * cols / (arrays * hw.array_rows * hw.array_cols),
      "ou_per_pixel": row_groups * col_groups, "adc_per_pixel": row_groups * cols,
      "dac_per_pixel": rows * col_groups, "max_ou_per_array": busiest,
  }


def pattern_cost(placement, hw: HardwareConfig) -> dict:
  """Cost of a placed pattern mapping: each tile is one OU activation per pixel and slice.

  Returns:
    `arrays`, `cells`, `utilisation`, `ou_per_pixel`, `adc_per_pixel`, `dac_per_pixel`,
    `max_ou_per_array`, `blocks`, `tiles`, `strips` and `arrays_lower_bound = ceil(cells / (R*C))`.
  """
  tiles, capacity = placement.tiles, hw.array_rows * hw.array_cols
  cells = int(np.sum(tiles["rows"] * tiles["cols"]))
  arrays = placement.num_arrays
  per_array = placement.ou_per_array()
  return {
      "arrays": arrays, "cells": cells,
      "utilisation": cells / (arrays * capacity) if arrays else 0.0,
      "ou_per_pixel": placement.num_tiles, "adc_per_pixel": int(np.sum(tiles["cols"])),
      "dac_per_pixel": int(np.sum(tiles["rows"])),
      "max_ou_per_array": int(per_array.max()) if arrays else 0,
      "blocks": len(placement.blocks), "tiles": placement.num_tiles, "strips": placement.num_strips,
      "arrays_lower_bound": -(-cells // capacity),
  }


def map_layer(mask, hw: HardwareConfig | None = None) -> dict:
  """Maps one pattern-pruned 3x3 conv layer both ways.

  Args:
    mask: `(3, 3, Cin, Cout)` HWIO array, nonzero = kept.
    hw: hardware config; the paper's defaults when None.

  Returns:
    `{"baseline": {...}, "pattern": {...}}` with the keys of `baseline_cost` and `pattern_cost`
    (per output pixel and input slice). "pattern" also holds `kept_kernels`, `kept_weights`,
    `patterns` (distinct nonzero patterns) and `placement` (the `Placement`, for inspection).

  Raises:
    MaskError: the mask is not a finite, nonempty `(3, 3, Cin, Cout)` array.
  """
  hw = hw or HardwareConfig()
  mask = check_conv_mask(mask)
  blocks = pattern_blocks(mask)
  placement = place_tiles(blocks, hw)
  pattern = pattern_cost(placement, hw)
  pattern.update(kept_kernels=int(np.sum(blocks.count)), kept_weights=int(np.sum(blocks.count * blocks.size)),
                 patterns=len(np.unique(blocks.pattern)), placement=placement)
  return {"baseline": baseline_cost(9 * mask.shape[2], mask.shape[3], hw), "pattern": pattern}


def _scale(cost: dict, pixels: int, hw: HardwareConfig, cycle_s: float, replicas: int = 1) -> dict:
  """Adds network-level counts: per-pixel counts x P x S, energy (pJ) and latency."""
  per_pixel_slices = pixels * hw.input_slices
  scaled = dict(cost)
  scaled.update(
      ou_activations=cost["ou_per_pixel"] * per_pixel_slices,
      adc_conversions=cost["adc_per_pixel"] * per_pixel_slices,
      dac_conversions=cost["dac_per_pixel"] * per_pixel_slices)
  scaled.update(
      energy_rram_pj=scaled["ou_activations"] * hw.e_ou_pj,
      energy_adc_pj=scaled["adc_conversions"] * hw.e_adc_pj,
      energy_dac_pj=scaled["dac_conversions"] * hw.e_dac_pj,
      latency_cycles=cost["max_ou_per_array"] * per_pixel_slices,
      latency_equal_area_cycles=cost["max_ou_per_array"] * -(-pixels // max(replicas, 1)) * hw.input_slices,
      replicas_equal_area=replicas)
  scaled["energy_pj"] = scaled["energy_rram_pj"] + scaled["energy_adc_pj"] + scaled["energy_dac_pj"]
  scaled["latency_s"] = scaled["latency_cycles"] * cycle_s
  scaled["latency_equal_area_s"] = scaled["latency_equal_area_cycles"] * cycle_s
  return scaled


def _ratio(numerator, denominator):
  return numerator / denominator if denominator else None


def ratios(baseline: dict, pattern: dict) -> dict:
  """Area efficiency, energy efficiency and speedups of `pattern` over `baseline` (None if undefined)."""
  return {
      "area_efficiency": _ratio(baseline["arrays"], pattern["arrays"]),
      "energy_efficiency": _ratio(baseline["energy_pj"], pattern["energy_pj"]),
      "speedup": _ratio(baseline["latency_cycles"], pattern["latency_cycles"]),
      "speedup_equal_area": _ratio(baseline["latency_cycles"], pattern["latency_equal_area_cycles"]),
  }


def _totals(costs: Sequence[dict], hw: HardwareConfig) -> dict:
  """Sums the network-level keys over layers (layers never share arrays)."""
  total = {key: sum(cost[key] for cost in costs) for key in SUMMED_KEYS}
  total["arrays_lower_bound"] = sum(cost.get("arrays_lower_bound", cost["arrays"]) for cost in costs)
  capacity = total["arrays"] * hw.array_rows * hw.array_cols
  total["utilisation"] = total["cells"] / capacity if capacity else 0.0
  return total


def _pixels(out_hw) -> int:
  return int(np.prod(out_hw))


def _conv_entry(name, mask, out_hw, hw, cycle_s, keep_placement):
  mapped = map_layer(mask, hw)
  mask = np.asarray(mask)
  base, pattern = mapped["baseline"], dict(mapped["pattern"])
  placement = pattern.pop("placement")
  pixels = _pixels(out_hw)
  replicas = max(1, base["arrays"] // pattern["arrays"]) if pattern["arrays"] else 0
  base, pattern = _scale(base, pixels, hw, cycle_s), _scale(pattern, pixels, hw, cycle_s, replicas)
  if keep_placement:
    pattern["placement"] = placement
  weights = mask.size
  return {
      "name": name, "kind": "conv3x3", "cin": mask.shape[2], "cout": mask.shape[3],
      "out_hw": [int(v) for v in out_hw], "out_pixels": pixels, "kernels": mask.shape[2] * mask.shape[3],
      "kept_kernels": pattern["kept_kernels"], "weights": weights, "kept_weights": pattern["kept_weights"],
      "sparsity": 1.0 - pattern["kept_weights"] / weights, "patterns": pattern["patterns"],
      "baseline": base, "pattern": pattern, "ratios": ratios(base, pattern),
  }


def _extra_entry(name, mask, out_hw, hw, cycle_s):
  shape = np.shape(mask)
  mask = check_extra_mask(mask, name)
  pixels = _pixels(np.broadcast_to(np.asarray(out_hw), (2,)))
  base = _scale(baseline_cost(mask.shape[0], mask.shape[1], hw), pixels, hw, cycle_s)
  kind = "fc" if len(shape) == 2 else f"conv{shape[0]}x{shape[1]}"
  return {"name": name, "kind": kind, "rows": mask.shape[0], "cout": mask.shape[1],
          "out_pixels": pixels, "kept_weights": int(mask.sum()), "weights": mask.size, "baseline": base}


def _extra_items(extra_layers):
  if isinstance(extra_layers, Mapping):
    return list(extra_layers.items())
  return [(f"extra_{i:02d}", item) for i, item in enumerate(extra_layers)]


def map_network(masks: Sequence, out_hw, hw: HardwareConfig | None = None, extra_layers=(),
                names: Sequence[str] | None = None, cycle_s: float | None = None,
                keep_placement: bool = False) -> dict:
  """Maps every 3x3 conv layer of a network both ways and totals the costs.

  Energy per layer = counts x P x S x pJ (RRAM OU, ADC, DAC). Latency and equal-area latency follow
  the module docstring's model; layers run in sequence, so totals are sums.

  Args:
    masks: per conv layer, a `(3, 3, Cin, Cout)` mask, in network order.
    out_hw: per conv layer, its output size: `(L,)` square sides or `(L, 2)` (`H_out, W_out`).
    hw: hardware config; the paper's defaults when None.
    extra_layers: layers outside the paper's scope (FC, 1x1), mapped the baseline way and reported
      apart: a mapping `name -> (mask, out_hw)` or a sequence of `(mask, out_hw)` pairs; masks are
      `(Cin, Cout)` or `(kh, kw, Cin, Cout)`, `out_hw` a side or `(H, W)` (1 for FC).
    names: conv layer names (default `conv_00, conv_01, ...`).
    cycle_s: seconds per OU cycle (default `ou_cycle_s(hw)`).
    keep_placement: keep each layer's `Placement` under `["pattern"]["placement"]`.

  Returns:
    The report (the JSON schema, see docs/MAPPER.md): `schema`, `hardware`, `ou_cycle_s`, `layers`
    (per conv layer: shape, sparsity, `baseline`, `pattern`, `ratios`), `totals` (conv layers:
    `baseline`, `pattern`, `ratios`), `extra_layers`, `extra_totals` and `network_totals` (conv
    pattern-mapped + extra vs. all baseline).

  Raises:
    MaskError: a bad mask or `out_hw`.
  """
  hw = hw or HardwareConfig()
  cycle_s = ou_cycle_s(hw) if cycle_s is None else float(cycle_s)
  masks = list(masks)
  if not masks:
    raise MaskError("map_network needs at least one conv mask.")
  out_hw = check_out_hw(out_hw, len(masks))
  names = list(names) if names is not None else [f"conv_{i:02d}" for i in range(len(masks))]
  layers = [_conv_entry(name, mask, size, hw, cycle_s, keep_placement)
            for name, mask, size in zip(names, masks, out_hw)]
  extras = [_extra_entry(name, mask, size, hw, cycle_s) for name, (mask, size) in _extra_items(extra_layers)]
  base = _totals([layer["baseline"] for layer in layers], hw)
  pattern = _totals([layer["pattern"] for layer in layers], hw)
  extra = _totals([layer["baseline"] for layer in extras], hw)
  net_base = _totals([base, extra], hw)
  net_pattern = _totals([pattern, extra], hw)
  return {
      "schema": REPORT_SCHEMA, "hardware": hw.to_dict(), "ou_cycle_s": cycle_s,
      "input_slices": hw.input_slices, "layers": layers,
      "totals": {"baseline": base, "pattern": pattern, "ratios": ratios(base, pattern)},
      "extra_layers": extras, "extra_totals": extra,
      "network_totals": {"baseline": net_base, "pattern": net_pattern, "ratios": ratios(net_base, net_pattern)},
  }

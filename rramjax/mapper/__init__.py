"""The mapper and cost model: OU plans placed into arrays, costs, reports, simulation (numpy only).

Nothing here imports jax, flax or the training code, so it runs anywhere a mask file does
(docs/MODEL.md section 4; the user guide is docs/MAPPER.md).
"""

from rramjax.mapper.blocks import Blocks, cut_tiles, kernel_patterns, pattern_blocks, pattern_taps
from rramjax.mapper.cost import (adc_conversion_pj, balanced_copies, baseline_cost, energy_per_pixel,
                                 map_layer, map_network, map_run, ou_cycle_s, pattern_cost, plan_cost,
                                 ratios, sum_bits)
from rramjax.mapper.masks import (check_conv_mask, check_extra_mask, load_mask_file, load_masks,
                                  pooled_out_hw, save_masks)
from rramjax.mapper.options import CostModel, MapperConfig
from rramjax.mapper.placement import Placement, first_fit_decreasing, place_tiles
from rramjax.mapper.plots import plot_array_occupancy, plot_energy_breakdown, plot_layers, plot_report
from rramjax.mapper.report import csv_rows, format_table, write_csv, write_json
from rramjax.mapper.simulate import gather_patches, simulate_layer, weight_cells

__all__ = [
    "Blocks", "CostModel", "MapperConfig", "Placement", "adc_conversion_pj", "balanced_copies",
    "baseline_cost", "check_conv_mask", "check_extra_mask", "cut_tiles", "csv_rows", "energy_per_pixel",
    "first_fit_decreasing", "format_table", "gather_patches", "kernel_patterns", "load_mask_file",
    "load_masks", "map_layer", "map_network", "map_run", "ou_cycle_s", "pattern_blocks", "pattern_cost",
    "pattern_taps", "place_tiles", "plan_cost", "plot_array_occupancy", "plot_energy_breakdown",
    "plot_layers", "plot_report", "pooled_out_hw", "ratios", "save_masks", "simulate_layer",
    "sum_bits", "weight_cells", "write_csv", "write_json",
]

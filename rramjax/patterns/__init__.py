"""Pattern pruning as pure functions: codes, library extraction, projection, connectivity, reports.

A 3x3 kernel `(c, f)` of flax HWIO weights `W[kh, kw, c, f]` keeps exactly one pattern of its layer's
library (a 9-bit mask, bit `3*kh + kw` = position kept) or is removed whole. At OU-group
granularity the kernels of a column group of filters at one input channel share that choice.
Mask files are written and read by `rramjax.mapper` (`save_masks`, `load_mask_file`).

References:
  Niu et al., "PatDNN: Achieving Real-Time DNN Execution on Mobile Devices with Pattern-based Weight
  Pruning", ASPLOS 2020, arXiv:2001.00138.
  Zhang et al., "A Systematic DNN Weight Pruning Framework using ADMM", ECCV 2018.
"""

from rramjax.patterns.codes import (KERNEL_POSITIONS, MAX_CODE, check_conv_kernel, code_to_mask,
                                    expand_filter_groups, kernels_as_rows, library_matrix,
                                    mask_to_code, pattern_codes, pattern_picture, pattern_size,
                                    rows_as_kernels, sum_filter_groups, validate_library)
from rramjax.patterns.connectivity import (ALLOCATION_RULES, check_keep_ratio, connectivity_mask,
                                           keep_ratios_for_sparsity, num_kept_kernels, num_units,
                                           project_connectivity, prune_layer, top_groups,
                                           top_kernels, validate_targets)
from rramjax.patterns.grouping import group_order, grouped_kept_energy
from rramjax.patterns.library import (default_patdnn_library, extract_library_greedy,
                                      extract_library_patdnn, library_objective, surviving_energy,
                                      top_k_codes)
from rramjax.patterns.projection import (GRANULARITIES, as_library_matrix, check_granularity,
                                         group_energy, project_to_library, projection_choice)
from rramjax.patterns.report import format_pattern_report, pattern_report, plot_libraries

__all__ = [
    "KERNEL_POSITIONS", "MAX_CODE", "ALLOCATION_RULES",
    "pattern_codes", "code_to_mask", "mask_to_code", "library_matrix", "pattern_picture",
    "pattern_size", "validate_library", "check_conv_kernel", "kernels_as_rows", "rows_as_kernels",
    "extract_library_patdnn", "extract_library_greedy", "default_patdnn_library",
    "library_objective", "surviving_energy", "top_k_codes",
    "project_to_library", "projection_choice", "as_library_matrix", "GRANULARITIES",
    "check_granularity", "group_energy", "sum_filter_groups", "expand_filter_groups",
    "group_order", "grouped_kept_energy",
    "connectivity_mask", "num_kept_kernels", "num_units", "check_keep_ratio", "top_kernels",
    "top_groups", "project_connectivity", "keep_ratios_for_sparsity", "prune_layer",
    "validate_targets", "pattern_report", "format_pattern_report", "plot_libraries",
]

"""The RRAM crossbar model: configuration, quantizers, the bit-exact OU level, device effects.

`HardwareConfig` is plain Python; everything else here needs jax and is imported on first use,
so that `rramjax.mapper` (numpy only) can use the config without loading jax.
"""

import importlib

from rramjax.hardware.config import HardwareConfig

_LAZY = {
    "crossbar": ("adc_convert", "adc_lsb", "crossbar_conv", "histogram_percentile", "input_slices",
                 "integer_conv", "max_ou_sum", "ou_sum_histogram", "sums_needed_bits",
                 "weight_cells"),
    "faults": ("fast_normal", "has_device_faults", "program_cells", "read_noise"),
    "fidelity": ("FIDELITIES", "calibrate_act_scales", "calibrate_adc_full_scale", "init_hw_state",
                 "make_conv_fn"),
    "planned": ("BACKENDS", "default_backend", "lowering_for_gpu", "make_ou_plan"),
    "quant": ("clip_ste", "fake_quant_inputs", "fake_quant_weights", "input_step",
              "quantize_inputs", "quantize_weights", "round_half_up", "round_ste", "weight_scale"),
}
_WHERE = {name: module for module, names in _LAZY.items() for name in names}

__all__ = ["HardwareConfig", *sorted(_WHERE)]


def __getattr__(name):
  if name in _WHERE:
    value = getattr(importlib.import_module(f"rramjax.hardware.{_WHERE[name]}"), name)
    globals()[name] = value
    return value
  raise AttributeError(f"module 'rramjax.hardware' has no attribute {name!r}")


def __dir__():
  return sorted(set(globals()) | set(__all__))

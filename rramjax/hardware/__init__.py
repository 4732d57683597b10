"""The RRAM crossbar model: configuration, quantizers, the bit-exact OU level, device effects."""

from rramjax.hardware.config import HardwareConfig
from rramjax.hardware.crossbar import (adc_convert, adc_lsb, crossbar_conv, histogram_percentile,
                                       input_slices, integer_conv, max_ou_sum, ou_sum_histogram,
                                       sums_needed_bits, weight_cells)
from rramjax.hardware.faults import has_device_faults, program_cells, read_noise
from rramjax.hardware.fidelity import (FIDELITIES, calibrate_act_scales, calibrate_adc_full_scale,
                                       init_hw_state, make_conv_fn)
from rramjax.hardware.quant import (clip_ste, fake_quant_inputs, fake_quant_weights, input_step,
                                    quantize_inputs, quantize_weights, round_half_up, round_ste,
                                    weight_scale)

__all__ = [
    "HardwareConfig", "FIDELITIES", "adc_convert", "adc_lsb", "calibrate_act_scales",
    "calibrate_adc_full_scale", "clip_ste", "crossbar_conv", "fake_quant_inputs",
    "fake_quant_weights", "has_device_faults", "histogram_percentile", "init_hw_state",
    "input_slices", "input_step", "integer_conv", "make_conv_fn", "max_ou_sum", "ou_sum_histogram",
    "program_cells", "quantize_inputs", "quantize_weights", "read_noise", "round_half_up",
    "round_ste", "sums_needed_bits", "weight_cells", "weight_scale",
]

"""The mapper's functional check (docs/MODEL.md section 4): the mapped layer with the ADC on
equals the `ou` model.

This file alone imports jax (through rramjax.hardware.crossbar); the mapper itself stays numpy.
"""

import numpy as np
import pytest

from rramjax.hardware.config import HardwareConfig
from rramjax.mapper import simulate_layer

crossbar = pytest.importorskip("rramjax.hardware.crossbar")


@pytest.mark.parametrize("seed, adc_bits, encoding", [
    (0, 8, "offset"), (1, 6, "offset"), (2, 8, "differential"), (3, 16, "offset")])
def test_mapped_layer_equals_ou_crossbar_model(seed, adc_bits, encoding):
  hw = HardwareConfig(adc_bits=adc_bits, sign_encoding=encoding)
  rng = np.random.default_rng(seed)
  mask = (rng.random((3, 3, 3, 5)) < 0.5) & (rng.random((1, 1, 3, 5)) < 0.7)
  x = rng.integers(0, 256, (2, 5, 6, 3))
  w = rng.integers(-127, 128, (3, 3, 3, 5))
  expected = np.asarray(crossbar.crossbar_conv(x.astype(np.float32), w.astype(np.float32),
                                               mask.astype(np.float32), hw))
  np.testing.assert_array_equal(simulate_layer(x, w, mask, hw, adc_on=True), expected)

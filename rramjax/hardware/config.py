"""`HardwareConfig`: every parameter of the RRAM accelerator, with the paper's defaults.

The same frozen object drives the differentiable crossbar model (`rramjax.hardware`) and the
analytic mapper (`rramjax.mapper`). It is plain Python (no jax import) so the mapper stays
numpy-only.

References:
  Yu et al., "High Area/Energy Efficiency RRAM CNN Accelerator with Pattern-Pruning-Based
  Weight Mapping Scheme", NVMSA 2021, arXiv:2010.06156 (hardware table).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Mapping

from rramjax.errors import ConfigError

SIGN_ENCODINGS = ("offset", "differential")
ADC_FULL_SCALE_MODES = ("max", "calibrated", "learned")
# How faithfully a 3x3 conv layer models the crossbar (rramjax.hardware.make_conv_fn; the config's
# crossbar.train_fidelity and eval_fidelity): no hardware, quantised codes, the bit-exact OU model.
FIDELITIES = ("ideal", "quant", "ou")
# The planned `ou` path's backends (rramjax.hardware.planned): numba CPU kernels, a Pallas GPU
# kernel, plain XLA.
OU_BACKENDS = ("numba", "pallas", "xla")
# Which OUs the `ou` fidelity computes in a run (the config's crossbar.ou_path): the run's mapping
# (the planned path) or every kernel over its taps (the reference path).
OU_PATHS = ("planned", "reference")
# Positions (taps) of a 3x3 kernel, `t = 3*kh + kw`: the crossbar rows one kernel can hold, so
# the most rows a kernel's OU sums (the reference `ou` path's OU).
KERNEL_POSITIONS = 9


@dataclasses.dataclass(frozen=True)
class HardwareConfig:
  """Crossbar, converter and energy parameters (paper defaults).

  Attributes:
    array_rows, array_cols: RRAM array size (512 x 512).
    ou_rows, ou_cols: Operation Unit, the rows/columns activated together (9 x 8).
    cell_bits: bits stored per RRAM cell (4).
    weight_bits: signed weight precision (8).
    input_bits: unsigned activation precision (8).
    dac_bits: DAC precision; inputs enter in ceil(input_bits/dac_bits) slices (4).
    adc_bits: ADC precision (8).
    e_ou_pj, e_adc_pj, e_dac_pj: energy per OU activation / ADC / DAC conversion (pJ).
    adc_rate_hz, dac_rate_hz: converter sample rates (1.2 GS/s, 18 MS/s).
    sign_encoding: 'offset' (w + 2^(b-1), digital offset correction) or 'differential'
      (positive and negative arrays: twice the columns).
    adc_full_scale: 'max' (largest possible OU sum), 'calibrated' (percentile of observed
      sums on a batch) or 'learned' (a per-layer trainable full scale).
    adc_percentile: percentile used by 'calibrated'.
    read_noise_lsb: std of Gaussian read noise added to each analog OU sum, in ADC LSB.
    prog_noise: std of Gaussian programming noise on each cell's conductance, in cell levels.
    stuck_at_0_rate, stuck_at_max_rate: fraction of cells stuck at level 0 / 2^cell_bits - 1.

  Example:
    >>> hw = HardwareConfig()  # the paper's accelerator
    >>> hw.ou_full_scale, hw.adc_lsb, hw.input_slices, hw.columns_per_weight
    (2025, 8, 2, 2)
    >>> hw.adc_max_code, hw.kernel_full_scale, hw.kernel_sum_bits
    (255, 2025, 11)
    >>> hw.replace(adc_bits=11).adc_lsb  # 11 bits hold every OU sum: the ADC is exact
    1
    >>> HardwareConfig.from_dict({"ou_cols": 7})  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    rramjax.errors.ConfigError: HardwareConfig.array_cols (512) must be a multiple of ou_cols (7) ...
  """

  array_rows: int = 512
  array_cols: int = 512
  ou_rows: int = 9
  ou_cols: int = 8
  cell_bits: int = 4
  weight_bits: int = 8
  input_bits: int = 8
  dac_bits: int = 4
  adc_bits: int = 8
  e_ou_pj: float = 4.8
  e_adc_pj: float = 1.67
  e_dac_pj: float = 0.0182
  adc_rate_hz: float = 1.2e9
  dac_rate_hz: float = 18e6
  sign_encoding: str = "offset"
  adc_full_scale: str = "max"
  adc_percentile: float = 99.99
  read_noise_lsb: float = 0.0
  prog_noise: float = 0.0
  stuck_at_0_rate: float = 0.0
  stuck_at_max_rate: float = 0.0

  def __post_init__(self):
    for name in ("array_rows", "array_cols", "ou_rows", "ou_cols", "cell_bits", "weight_bits",
                 "input_bits", "dac_bits", "adc_bits"):
      value = getattr(self, name)
      if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"HardwareConfig.{name} must be a positive integer, got {value!r}.")
    if self.ou_rows > self.array_rows or self.ou_cols > self.array_cols:
      raise ConfigError(
          f"HardwareConfig: the OU ({self.ou_rows}x{self.ou_cols}) must fit inside the array "
          f"({self.array_rows}x{self.array_cols}).")
    if self.array_cols % self.ou_cols:
      raise ConfigError(
          f"HardwareConfig.array_cols ({self.array_cols}) must be a multiple of ou_cols "
          f"({self.ou_cols}) so that OU strips tile the array.")
    if self.weight_bits < 2:
      raise ConfigError("HardwareConfig.weight_bits must be >= 2 (one sign bit and one magnitude bit).")
    self._check_bit_limits()
    for name in ("e_ou_pj", "e_adc_pj", "e_dac_pj", "read_noise_lsb", "prog_noise"):
      value = getattr(self, name)
      if not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
        raise ConfigError(f"HardwareConfig.{name} must be a finite number >= 0, got {value!r}.")
    for name in ("adc_rate_hz", "dac_rate_hz"):
      value = getattr(self, name)
      if not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        raise ConfigError(f"HardwareConfig.{name} must be a finite number > 0, got {value!r}.")
    for name in ("stuck_at_0_rate", "stuck_at_max_rate"):
      value = getattr(self, name)
      if not isinstance(value, (int, float)) or not 0.0 <= value <= 1.0:
        raise ConfigError(f"HardwareConfig.{name} must lie in [0, 1], got {value!r}.")
    if self.stuck_at_0_rate + self.stuck_at_max_rate > 1.0:
      raise ConfigError("HardwareConfig: stuck_at_0_rate + stuck_at_max_rate must be <= 1.")
    if not 0.0 < self.adc_percentile <= 100.0:
      raise ConfigError(f"HardwareConfig.adc_percentile must lie in (0, 100], got {self.adc_percentile!r}.")
    if self.sign_encoding not in SIGN_ENCODINGS:
      raise ConfigError(
          f"HardwareConfig.sign_encoding must be one of {SIGN_ENCODINGS}, got {self.sign_encoding!r}.")
    if self.adc_full_scale not in ADC_FULL_SCALE_MODES:
      raise ConfigError(f"HardwareConfig.adc_full_scale must be one of {ADC_FULL_SCALE_MODES}, "
                        f"got {self.adc_full_scale!r}.")

  def _check_bit_limits(self):
    """Upper bounds on the bit widths: what the integer crossbar model and the cost model hold.

    * weight_bits, input_bits <= 16: codes are sliced with int32 shifts and held in float32
      (exact below 2^24); 16 is twice the paper's 8.
    * cell_bits, dac_bits <= 8: cells and DAC slices are the operands of the OU matmul, which
      stays exact under every XLA precision only up to 8 bits (bfloat16), and the ADC
      calibration counts OU sums in 9 * (2^dac_bits - 1) * (2^cell_bits - 1) + 1 bins.
    * adc_bits <= 24: ADC codes are held in float32.
    * Shift-and-add in int32: the largest ADC code times the largest place value (slice and
      cell) must stay below 2^31, that is
      adc_bits + (input_slices - 1) * dac_bits + (cells_per_weight - 1) * cell_bits <= 31
      (8 + 4 + 4 = 16 for the paper's hardware).
    """
    limits = (("weight_bits", 16, "weight codes are sliced in int32 and held in float32"),
              ("input_bits", 16, "input codes are sliced in int32 and held in float32"),
              ("cell_bits", 8, "cell levels enter the OU matmul, exact up to 8 bits"),
              ("dac_bits", 8, "DAC slices enter the OU matmul, exact up to 8 bits"),
              ("adc_bits", 24, "ADC codes are held in float32, exact below 2^24"))
    for name, top, why in limits:
      if getattr(self, name) > top:
        raise ConfigError(f"HardwareConfig.{name} must be <= {top} ({why}), got "
                          f"{getattr(self, name)}.")
    shift = (self.input_slices - 1) * self.dac_bits + (self.cells_per_weight - 1) * self.cell_bits
    if self.adc_bits + shift > 31:
      raise ConfigError(
          f"HardwareConfig: adc_bits + the largest shift ({self.adc_bits} + {shift}) must be <= 31, "
          "so that the shift-and-add of ADC codes fits int32: use fewer adc_bits, or fewer DAC "
          "slices and cells per weight (larger dac_bits / cell_bits, smaller input_bits / "
          "weight_bits).")

  @classmethod
  def from_dict(cls, values: Mapping[str, Any]) -> "HardwareConfig":
    """Builds a config from a mapping, rejecting unknown keys with the list of known ones."""
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - known)
    if unknown:
      raise ConfigError(f"Unknown hardware config key(s) {unknown}; known keys: {sorted(known)}.")
    return cls(**dict(values))

  def to_dict(self) -> dict[str, Any]:
    return dataclasses.asdict(self)

  def replace(self, **changes) -> "HardwareConfig":
    return dataclasses.replace(self, **changes)

  # Derived quantities (docs/MODEL.md sections 3 and 4).
  @property
  def cells_per_weight(self) -> int:
    """Cells (columns) storing one weight for one sign: ceil(weight_bits / cell_bits)."""
    return -(-self.weight_bits // self.cell_bits)

  @property
  def columns_per_weight(self) -> int:
    """Crossbar columns per weight, `wc`: doubled by differential sign encoding."""
    return self.cells_per_weight * (2 if self.sign_encoding == "differential" else 1)

  @property
  def input_slices(self) -> int:
    """DAC slices per input, `S = ceil(input_bits / dac_bits)`."""
    return -(-self.input_bits // self.dac_bits)

  @property
  def weight_offset(self) -> int:
    """Offset encoding's shift, 2^(weight_bits-1): cells store w + weight_offset >= 0."""
    return 2 ** (self.weight_bits - 1)

  @property
  def weight_max_code(self) -> int:
    """Largest signed weight code, 2^(weight_bits-1) - 1 (codes are symmetric around 0)."""
    return self.weight_offset - 1

  @property
  def input_max_code(self) -> int:
    """Largest unsigned input code, 2^input_bits - 1."""
    return 2**self.input_bits - 1

  @property
  def cell_max_level(self) -> int:
    """Largest level one cell stores, 2^cell_bits - 1."""
    return 2**self.cell_bits - 1

  @property
  def dac_max_level(self) -> int:
    """Largest value of one DAC slice, 2^dac_bits - 1."""
    return 2**self.dac_bits - 1

  @property
  def row_full_scale(self) -> int:
    """Largest product one crossbar row adds to an OU sum: dac_max_level * cell_max_level."""
    return self.dac_max_level * self.cell_max_level

  @property
  def ou_full_scale(self) -> int:
    """Largest possible sum of a full OU: ou_rows * row_full_scale."""
    return self.ou_rows * self.row_full_scale

  @property
  def kernel_full_scale(self) -> int:
    """Largest sum of one kernel's OU (its pattern's <= 9 rows; the reference `ou` path's OU).

    It does not depend on ou_rows: the reference path sums a kernel's taps in one OU, as the
    mapper's pattern scheme does when ou_rows >= 9 (docs/MODEL.md section 3).
    """
    return KERNEL_POSITIONS * self.row_full_scale

  @property
  def ou_sum_bits(self) -> int:
    """Bits that hold every full-OU sum exactly: ceil(log2(ou_full_scale + 1))."""
    return bits_to_hold(self.ou_full_scale)

  @property
  def kernel_sum_bits(self) -> int:
    """ADC bits that make the 'max' ADC exact for every kernel's OU: bits of kernel_full_scale."""
    return bits_to_hold(self.kernel_full_scale)

  @property
  def adc_lsb(self) -> int:
    """Step of the default ('max') ADC: 2^max(0, ou_sum_bits - adc_bits)."""
    return 2 ** max(0, self.ou_sum_bits - self.adc_bits)

  @property
  def adc_levels(self) -> int:
    """Output codes of the ADC: 2^adc_bits."""
    return 2**self.adc_bits

  @property
  def adc_max_code(self) -> int:
    """The ADC's top code, adc_levels - 1: every digitised sum is clipped to [0, adc_max_code]."""
    return self.adc_levels - 1

  @property
  def max_adc_full_scale(self) -> int:
    """Full scale of the default ('max') ADC, adc_lsb * adc_max_code, in OU-sum units."""
    return self.adc_lsb * self.adc_max_code


def bits_to_hold(value: int) -> int:
  """Unsigned bits that represent every integer in [0, value]: ceil(log2(value + 1)), exactly.

  Example:
    >>> bits_to_hold(2025), bits_to_hold(255), bits_to_hold(256), bits_to_hold(0)
    (11, 8, 9, 0)
  """
  return int(value).bit_length()

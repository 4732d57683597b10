"""The mapper's options: the cost model (`CostModel`) and the run's mapper settings (`MapperConfig`).

Both are frozen, plain-Python dataclasses validated on construction, so the mapper stays numpy
only. `MapperConfig` is the `mapper` section of a run's config (`rramjax.config`); it is a
`CostModel` with the scheme choice added, so it can be passed wherever a cost model is expected.
Each option's meaning and default is in docs/MAPPER.md ("Cost model options").
"""

from __future__ import annotations

import dataclasses
import math

from rramjax.errors import ConfigError
from rramjax.plan import FILTER_ORDERS

OU_ENERGY = ("per_ou", "per_row")
ADC_ENERGY = ("per_conversion", "bits_needed")
SCHEMES = ("pattern", "packed", "best")
OBJECTIVES = ("energy", "area", "latency")
LATENCY_POLICIES = ("per_layer", "equal_area", "equal_area_balanced", "pipelined")


def _check(cond: bool, where: str, message: str) -> None:
  if not cond:
    raise ConfigError(f"{where}: {message}")


def _positive_number(value) -> bool:
  return (isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
          and value > 0)


@dataclasses.dataclass(frozen=True)
class CostModel:
  """How mapped counts become energy (docs/MAPPER.md, "Cost model options").

  Attributes:
    ou_energy: RRAM energy of an OU activation: 'per_ou' (default: `e_ou_pj` whatever rows it
      drives, the paper's figure) or 'per_row' (`e_ou_pj * rows / ou_rows`: an OU driving 4 of its
      9 rows costs 4/9).
    adc_energy: 'per_conversion' (default: every conversion costs the same) or 'bits_needed' (a
      conversion of an OU with `n` rows costs `factor^(bits(n) - adc_bits)` of a full one, `bits(n)`
      the bits its largest sum needs at the ADC's step, at most `adc_bits`).
    adc_energy_per_bit_factor: energy ratio of one more ADC bit (default 2.0; 1.0 turns both
      ADC scalings off).
    adc_energy_anchor_bits: the resolution at which a conversion costs `adc_energy_anchor_pj`
      (default 8, the paper's ADC): an `adc_bits` ADC costs
      `anchor_pj * factor^(adc_bits - anchor_bits)` per conversion (1.67 / 16 pJ at 4 bits).
    adc_energy_anchor_pj: that energy; None (default) takes `HardwareConfig.e_adc_pj`.
  """
  ou_energy: str = "per_ou"
  adc_energy: str = "per_conversion"
  adc_energy_per_bit_factor: float = 2.0
  adc_energy_anchor_bits: int = 8
  adc_energy_anchor_pj: float | None = None
  _where = "CostModel"  # what errors call it (a class attribute, not a field)

  def __post_init__(self):
    self.validate(self._where)

  def validate(self, where: str) -> None:
    """Raises ConfigError naming `where.key` for a bad option."""
    _check(self.ou_energy in OU_ENERGY, f"{where}.ou_energy",
           f"use one of {OU_ENERGY}, got {self.ou_energy!r}.")
    _check(self.adc_energy in ADC_ENERGY, f"{where}.adc_energy",
           f"use one of {ADC_ENERGY}, got {self.adc_energy!r}.")
    _check(_positive_number(self.adc_energy_per_bit_factor), f"{where}.adc_energy_per_bit_factor",
           f"must be a finite number > 0, got {self.adc_energy_per_bit_factor!r}.")
    bits = self.adc_energy_anchor_bits
    _check(isinstance(bits, int) and not isinstance(bits, bool) and bits >= 1,
           f"{where}.adc_energy_anchor_bits", f"must be a positive int, got {bits!r}.")
    _check(self.adc_energy_anchor_pj is None or _positive_number(self.adc_energy_anchor_pj),
           f"{where}.adc_energy_anchor_pj", f"must be None or a finite number > 0, got "
           f"{self.adc_energy_anchor_pj!r}.")

  def cost_model(self) -> "CostModel":
    """The cost options alone (a `MapperConfig` drops its scheme choice)."""
    fields = {f.name: getattr(self, f.name) for f in dataclasses.fields(CostModel)}
    return CostModel(**fields)

  def to_dict(self) -> dict:
    return dataclasses.asdict(self)


@dataclasses.dataclass(frozen=True)
class MapperConfig(CostModel):
  """The `mapper` section of a run's config: which mapping the run reports, and the cost model.

  Attributes:
    scheme: the run's mapping: 'pattern' (default: the paper's kernel reordering), 'packed'
      (filters in column groups) or 'best' (per layer the cheapest of pattern, packed and the
      baseline by `objective`). The report shows the other schemes beside it.
    filter_order: the packed mapping's filter order, 'given' (default) or 'greedy'.
    objective: what 'best' minimises per layer: 'energy' (default), 'area' (arrays) or
      'latency' (the layer's own OU cycles).
    (and the `CostModel` options)
  """
  scheme: str = "pattern"
  filter_order: str = "given"
  objective: str = "energy"
  _where = "Config key mapper"

  def validate(self, where: str) -> None:
    super().validate(where)
    _check(self.scheme in SCHEMES, f"{where}.scheme", f"use one of {SCHEMES}, got {self.scheme!r}.")
    _check(self.filter_order in FILTER_ORDERS, f"{where}.filter_order",
           f"use one of {FILTER_ORDERS}, got {self.filter_order!r}.")
    _check(self.objective in OBJECTIVES, f"{where}.objective",
           f"use one of {OBJECTIVES}, got {self.objective!r}.")

  @property
  def schemes(self) -> tuple[str, ...]:
    """The schemes a run reports: its own first, then the others."""
    return tuple(dict.fromkeys((self.scheme, "pattern", "packed", "best")))

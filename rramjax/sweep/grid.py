"""The design-space grid: `--grid KEY=V1,V2,...` texts parsed, validated and expanded to points.

Plain Python (no jax): every point's config is built and validated here, before any work, so a bad
grid is a one-line `ConfigError` naming the key (or the point) at once.

Keys are `hardware.*` (`HardwareConfig` fields), `crossbar.*` and `mapper.*` config keys. Values
are Python literals or plain words (`hardware.adc_full_scale=max,calibrated`); a float field takes
ints too (`hardware.read_noise_lsb=0,0.5`), stored as floats so that a row's key does not depend
on how a value was typed. A key given one value is a fixed override of the run's setting.
"""

from __future__ import annotations

import ast
import dataclasses
import itertools
import math
import typing
from typing import Any, NamedTuple

from rramjax.config import Config, CrossbarConfig, _type_ok, from_dict
from rramjax.errors import ConfigError
from rramjax.hardware.config import HardwareConfig
from rramjax.mapper.options import MapperConfig

SECTIONS = {"hardware": HardwareConfig, "crossbar": CrossbarConfig, "mapper": MapperConfig}
# Keys of those sections that a sweep does not take, and what to use instead.
NOT_SWEPT = {
    "crossbar.eval_fidelity": "a sweep evaluates every point at 'ou' (and the model at 'ideal')",
    "crossbar.eval_seeds": "pass --seeds",
    "crossbar.eval_read_noise_lsb": "sweep hardware.read_noise_lsb",
    "crossbar.train_fidelity": "--hwtune-steps fine-tunes at 'ou', the fidelity evaluated",
}


class Point(NamedTuple):
  """One grid point: its grid values (in the grid's key order) and its validated config."""
  values: tuple
  config: Config

  def label(self, keys) -> str:
    return ", ".join(f"{key}={format_value(value)}" for key, value in zip(keys, self.values))


class Grid(NamedTuple):
  """The swept keys and their values, in the order given on the command line."""
  keys: tuple[str, ...]
  values: tuple[tuple, ...]

  @property
  def size(self) -> int:
    return math.prod(len(v) for v in self.values)

  def combinations(self) -> list[tuple]:
    """Every point's values, the last key varying fastest."""
    return list(itertools.product(*self.values))

  def to_dict(self) -> dict:
    return {key: list(values) for key, values in zip(self.keys, self.values)}


def format_value(value) -> str:
  return "None" if value is None else f"{value:g}" if isinstance(value, float) else str(value)


def _field_types(section: str) -> dict[str, Any]:
  return typing.get_type_hints(SECTIONS[section])


def _check_key(key: str) -> tuple[str, str]:
  section, _, name = key.partition(".")
  if section not in SECTIONS or not name:
    raise ConfigError(f"--grid {key}: the key must be hardware.<field>, crossbar.<field> or "
                      f"mapper.<field>, e.g. --grid hardware.adc_bits=4,6,8.")
  fields = {f.name for f in dataclasses.fields(SECTIONS[section]) if not f.name.startswith("_")}
  if name not in fields:
    raise ConfigError(f"--grid {key}: unknown key; the keys of {section} are {sorted(fields)}.")
  if key in NOT_SWEPT:
    raise ConfigError(f"--grid {key}: not a sweep key ({NOT_SWEPT[key]}).")
  return section, name


def _literal(text: str):
  try:
    return ast.literal_eval(text)
  except (ValueError, SyntaxError):
    return text


def _coerce(key: str, section: str, name: str, text: str):
  """The value of one item, type-checked against the field (a float field stores a float)."""
  value, hint = _literal(text), _field_types(section)[name]
  if not _type_ok(value, hint):
    raise ConfigError(f"--grid {key}: {text!r} has the wrong type (expected {hint}).")
  float_field = hint is float or float in typing.get_args(hint)
  if float_field and isinstance(value, int) and not isinstance(value, bool):
    value = float(value)
  return value


def parse_grid_arg(text: str) -> tuple[str, tuple]:
  """`'hardware.adc_bits=4,6,8'` -> `('hardware.adc_bits', (4, 6, 8))` (key checked, values typed).

  Raises:
    ConfigError: no `=`, an unknown key, an empty list or item, a repeated value, a wrong type.
  """
  key, sep, rest = text.partition("=")
  key = key.strip()
  if not sep or not key:
    raise ConfigError(f"--grid {text!r} must look like KEY=V1,V2,... (e.g. hardware.adc_bits=4,6,8).")
  section, name = _check_key(key)
  items = [item.strip() for item in rest.split(",")]
  if not any(items):
    raise ConfigError(f"--grid {key}: the list of values is empty; give at least one (KEY=V1,V2,...).")
  if not all(items):
    raise ConfigError(f"--grid {key}: an empty value in {rest!r}; separate values with single commas.")
  values = tuple(_coerce(key, section, name, item) for item in items)
  repeated = sorted({format_value(v) for v in values if values.count(v) > 1})
  if repeated:
    raise ConfigError(f"--grid {key}: value(s) {', '.join(repeated)} listed twice.")
  return key, values


def parse_grid(texts) -> Grid:
  """The grid of `--grid` texts (at least one; each key once)."""
  texts = list(texts)
  if not texts:
    raise ConfigError("rramjax sweep needs at least one --grid KEY=V1,V2,... (e.g. --grid "
                      "hardware.adc_bits=4,6,8).")
  keys, values = [], []
  for text in texts:
    key, vals = parse_grid_arg(text)
    if key in keys:
      raise ConfigError(f"--grid {key} is given twice; list all its values in one --grid.")
    keys.append(key)
    values.append(vals)
  return Grid(tuple(keys), tuple(values))


def point_config(base: Config, keys, values) -> Config:
  """`base` with each `section.field` of `keys` set to its value, validated (`from_dict`)."""
  tree = base.to_dict()
  for key, value in zip(keys, values):
    section, name = key.split(".", 1)
    tree[section] = {**tree[section], name: value}
  return from_dict(tree)


def expand(grid: Grid, base: Config) -> list[Point]:
  """Every point of `grid` over the run config `base`, each validated.

  Each key's values are checked alone first (the message names the key and value), then every
  combination (the message names the point: a value can be valid alone and not with another,
  e.g. `hardware.adc_bits` and the bit-width limit of the shift-and-add).

  Raises:
    ConfigError: a value or a combination that fails the config's validation.
  """
  for key, values in zip(grid.keys, grid.values):
    for value in values:
      try:
        point_config(base, (key,), (value,))
      except ConfigError as err:
        raise ConfigError(f"--grid {key}={format_value(value)}: {err}") from None
  points = []
  for values in grid.combinations():
    try:
      points.append(Point(values, point_config(base, grid.keys, values)))
    except ConfigError as err:
      label = ", ".join(f"{k}={format_value(v)}" for k, v in zip(grid.keys, values))
      raise ConfigError(f"--grid point {label}: {err}") from None
  return points

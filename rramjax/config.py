"""The run configuration: typed, validated sections built from a `get_config()` file's dict.

A config file is a Python module whose `get_config(arg=None)` returns a nested dict; `arg` is the
string after a colon on the command line (`configs/fashion_mnist_small.py:smoke`). Unknown keys
and out-of-range values are rejected here with the key's full path.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import math
import pathlib
import types
import typing
from typing import Any, Mapping

from rramjax.data import DATASETS
from rramjax.errors import ConfigError
from rramjax.hardware.config import (FIDELITIES, KERNEL_POSITIONS, OU_BACKENDS, OU_PATHS,
                                     HardwareConfig)
from rramjax.mapper.options import MapperConfig
from rramjax.plan import MAX_CODE


# The prune section's choices. `rramjax.patterns` implements them (GRANULARITIES, ALLOCATION_RULES)
# but imports jax, and this module must not (the numpy-only mapper reads run configs): the test
# suite checks that the two lists agree.
GRANULARITIES = ("kernel", "ou_group")
ALLOCATION_RULES = ("uniform", "first_dense", "erk")
LIBRARIES = ("greedy", "patdnn", "patdnn_default")


def _check(cond: bool, path: str, msg: str):
  if not cond:
    raise ConfigError(f"Config key {path}: {msg}")


@dataclasses.dataclass(frozen=True)
class DataConfig:
  name: str = "fashion_mnist"
  data_dir: str | None = None          # Fashion-MNIST IDX folder (else $RRAMJAX_FASHION_MNIST_DIR)
  tfds_data_dir: str | None = None     # tensorflow-datasets folder for CIFAR
  pad_to: int | None = None            # zero-pad images to this side (28 -> 32 for VGG16)
  normalize: str = "unit"              # 'unit' ([0,1], needed by the crossbar) or 'standard'
  augment: str = "none"                # 'none' or 'crop_flip'
  on_device: bool = False              # keep the whole split on the accelerator
  train_limit: int | None = None       # use only the first N training examples (smoke runs)
  test_limit: int | None = None

  def validate(self, p):
    _check(self.name in DATASETS, f"{p}.name",
           f"unknown data set {self.name!r}; use one of {', '.join(DATASETS)}.")
    _check(self.normalize in ("unit", "standard"), f"{p}.normalize", "use 'unit' or 'standard'.")
    _check(self.augment in ("none", "crop_flip"), f"{p}.augment", "use 'none' or 'crop_flip'.")
    for key in ("pad_to", "train_limit", "test_limit"):
      v = getattr(self, key)
      _check(v is None or v > 0, f"{p}.{key}", f"must be positive or None, got {v!r}.")


@dataclasses.dataclass(frozen=True)
class ModelConfig:
  name: str = "vgg_small"
  width: float = 1.0
  hidden: tuple = ()

  def validate(self, p):
    _check(self.width > 0, f"{p}.width", f"must be > 0, got {self.width!r}.")
    _check(all(isinstance(h, int) and h > 0 for h in self.hidden), f"{p}.hidden",
           "must be a tuple of positive ints.")


@dataclasses.dataclass(frozen=True)
class TrainConfig:
  batch_size: int = 128
  eval_batch_size: int = 1000
  optimizer: str = "adam"              # 'adam', 'adamw' or 'sgd' (momentum, nesterov)
  momentum: float = 0.9
  weight_decay: float = 0.0
  schedule: str = "cosine"             # per phase: 'cosine' decay to 0 or 'constant'
  label_smoothing: float = 0.0
  pretrain_epochs: int = 6
  pretrain_lr: float = 2e-3
  admm_epochs: int = 0
  admm_lr: float = 1e-3
  finetune_epochs: int = 0
  finetune_lr: float = 5e-4
  hwtune_epochs: int = 0               # masked fine-tuning at crossbar.train_fidelity (last phase)
  hwtune_lr: float = 2e-4
  hwtune_steps: int | None = None      # steps per hwtune epoch (None: a whole epoch)
  log_every: int = 50                  # steps between JSON-lines metric records
  # The run stops (TrainingDivergedError) when a logged loss is non-finite or above
  # divergence_factor * max(the loss at the epoch's first step, ln(number of classes)).
  divergence_factor: float = 10.0
  # Data parallelism (rramjax.train.parallel): devices on the batch axis of a mesh, parameters
  # replicated; 1 = one device, 0 = every device. The global batch_size must split evenly.
  devices: int = 1
  # Host CPU devices to split the machine into before jax starts (rramjax.train.parallel.split_cpu):
  # with devices 0 or > 1 a CPU run then spreads each batch over its cores; 0 = one per core.
  # No effect on a GPU's devices.
  cpu_devices: int = 1

  def validate(self, p):
    _check(isinstance(self.devices, int) and self.devices >= 0, f"{p}.devices",
           f"must be an int >= 0 (0: every device), got {self.devices!r}.")
    _check(isinstance(self.cpu_devices, int) and self.cpu_devices >= 0, f"{p}.cpu_devices",
           f"must be an int >= 0 (0: one per core), got {self.cpu_devices!r}.")
    for key in ("batch_size", "eval_batch_size", "log_every"):
      v = getattr(self, key)
      _check(isinstance(v, int) and v > 0, f"{p}.{key}", f"must be a positive int, got {v!r}.")
    _check(self.hwtune_steps is None or (isinstance(self.hwtune_steps, int) and self.hwtune_steps > 0),
           f"{p}.hwtune_steps", f"must be a positive int or None, got {self.hwtune_steps!r}.")
    for key in ("pretrain_epochs", "admm_epochs", "finetune_epochs", "hwtune_epochs"):
      v = getattr(self, key)
      _check(isinstance(v, int) and v >= 0, f"{p}.{key}", f"must be an int >= 0, got {v!r}.")
    for key in ("pretrain_lr", "admm_lr", "finetune_lr", "hwtune_lr"):
      v = getattr(self, key)
      _check(math.isfinite(v) and v > 0, f"{p}.{key}", f"must be > 0, got {v!r}.")
    _check(self.optimizer in ("adam", "adamw", "sgd"), f"{p}.optimizer", "use adam, adamw or sgd.")
    _check(self.schedule in ("cosine", "constant"), f"{p}.schedule", "use cosine or constant.")
    _check(0 <= self.momentum < 1, f"{p}.momentum", "must lie in [0, 1).")
    _check(self.weight_decay >= 0, f"{p}.weight_decay", "must be >= 0.")
    _check(0 <= self.label_smoothing < 1, f"{p}.label_smoothing", "must lie in [0, 1).")
    _check(self.divergence_factor > 1, f"{p}.divergence_factor",
           f"must be > 1 (a loss this many times its start stops the run), got {self.divergence_factor!r}.")


@dataclasses.dataclass(frozen=True)
class PruneConfig:
  """Pattern + connectivity pruning targets and the ADMM schedule (docs/MODEL.md section 2)."""
  enabled: bool = False
  patterns_per_layer: Any = 8          # one int for every 3x3 layer, or a list per layer
  library: str = "greedy"              # 'greedy', 'patdnn' (top-k counting) or 'patdnn_default'
  pattern_size: int = 4                # kept positions per pattern for library extraction
  sparsity: float | None = 0.86        # overall 3x3-conv weight sparsity (allocation rule below)
  keep_ratios: Any = None              # per-layer kernel keep ratios (overrides sparsity)
  allocation: str = "uniform"          # how `sparsity` becomes per-layer keep ratios
  rho: float = 5e-3                    # ADMM penalty, multiplied by rho_growth at every Z/Y update
  rho_growth: float = 1.5
  rho_max: float = 0.5
  admm_update_every: int = 0           # steps between Z/Y/dual updates (0: once per epoch)
  # 'kernel': every kernel picks its own pattern; 'ou_group': the filters of one column group of the
  # packed mapping (hardware.ou_cols // columns_per_weight filters, in order) share each input
  # channel's pattern and are removed together (docs/MODEL.md section 8).
  granularity: str = "kernel"
  # With 'ou_group': 'all' layers share patterns in groups, or only the 'multi_ou' ones, whose
  # kernel column (9 * Cin rows) spans more than one OU; the others keep kernel granularity
  # (sharing there saves no OU: docs/MODEL.md section 8).
  ou_group_layers: str = "all"
  # With 'ou_group': which filters form a group. 'given': consecutive filters as initialised;
  # 'greedy': when ADMM begins, each layer's filters are reordered (with their batch norm and the
  # next layer's input channels: the same function) so that a group's filters prefer the same
  # patterns (`rramjax.patterns.grouping`, docs/MODEL.md section 8). No effect at 'kernel'.
  filter_order: str = "given"

  def validate(self, p):
    _check(self.granularity in GRANULARITIES, f"{p}.granularity", "use kernel or ou_group.")
    _check(self.ou_group_layers in ("all", "multi_ou"), f"{p}.ou_group_layers", "use all or multi_ou.")
    _check(self.filter_order in ("given", "greedy"), f"{p}.filter_order", "use given or greedy.")
    _check(self.library in LIBRARIES, f"{p}.library", "use greedy, patdnn or patdnn_default.")
    _check(self.allocation in ALLOCATION_RULES, f"{p}.allocation", "use uniform, first_dense or erk.")
    _check(isinstance(self.pattern_size, int) and 1 <= self.pattern_size <= KERNEL_POSITIONS,
           f"{p}.pattern_size", f"must be an int in 1..{KERNEL_POSITIONS}, got {self.pattern_size!r}.")
    ppl, top = self.patterns_per_layer, MAX_CODE  # codes 1..MAX_CODE: the nonempty patterns
    counts = ppl if isinstance(ppl, (list, tuple)) else [ppl]
    _check(all(isinstance(k, int) and 1 <= k <= top for k in counts), f"{p}.patterns_per_layer",
           f"each count must be an int in 1..{top} (there are {top} nonempty 3x3 patterns), "
           f"got {ppl!r}.")
    if self.keep_ratios is None:
      _check(self.sparsity is not None and 0 <= self.sparsity < 1, f"{p}.sparsity",
             f"must lie in [0, 1) when keep_ratios is None, got {self.sparsity!r}.")
    else:
      ratios = self.keep_ratios if isinstance(self.keep_ratios, (list, tuple)) else [self.keep_ratios]
      _check(all(isinstance(r, (int, float)) and 0 < r <= 1 for r in ratios), f"{p}.keep_ratios",
             f"each kernel keep ratio must lie in (0, 1], got {self.keep_ratios!r}.")
    _check(isinstance(self.admm_update_every, int) and self.admm_update_every >= 0,
           f"{p}.admm_update_every", f"must be an int >= 0, got {self.admm_update_every!r}.")
    _check(self.rho > 0 and self.rho_growth >= 1 and self.rho_max >= self.rho, f"{p}.rho",
           "need rho > 0, rho_growth >= 1 and rho_max >= rho.")


@dataclasses.dataclass(frozen=True)
class CrossbarConfig:
  """Which hardware fidelity the fine-tuning and the evaluation see (docs/MODEL.md section 3)."""
  train_fidelity: str = "ideal"        # fidelity during masked fine-tuning
  eval_fidelity: str = "ideal"         # fidelity of the hardware evaluation
  eval_seeds: int = 1                  # noise seeds evaluated (vmapped) when noise is on
  calib_examples: int = 256            # examples used to calibrate activation / ADC scales
  act_percentile: float = 99.99        # input clipping level of each layer: this percentile
  eval_limit: int | None = None        # test examples of the hardware evaluation (None: all)
  eval_read_noise_lsb: tuple = ()      # extra hardware evaluations at these read-noise levels
  eval_bn_batches: int = 0             # > 0: every final hardware row also evaluated with the batch
                                       # norms' statistics re-estimated at its crossbar over this
                                       # many training batches (docs/MODEL.md section 9)
  ou_path: str = "planned"             # 'planned': the OUs of the run's mapping (mapper.scheme,
                                       # docs/MODEL.md section 7); 'reference': every kernel over
                                       # its taps (section 3, the slow model)
  backend: str | None = None           # the planned path's kernels: numba, pallas, xla (None: auto)

  def validate(self, p):
    for key in ("train_fidelity", "eval_fidelity"):
      _check(getattr(self, key) in FIDELITIES, f"{p}.{key}", f"use one of {FIDELITIES}.")
    _check(isinstance(self.eval_seeds, int) and self.eval_seeds >= 1, f"{p}.eval_seeds", "must be >= 1.")
    _check(isinstance(self.calib_examples, int) and self.calib_examples >= 1,
           f"{p}.calib_examples", "must be >= 1.")
    _check(0 < self.act_percentile <= 100, f"{p}.act_percentile", "must lie in (0, 100].")
    _check(self.eval_limit is None or (isinstance(self.eval_limit, int) and self.eval_limit > 0),
           f"{p}.eval_limit", f"must be a positive int or None, got {self.eval_limit!r}.")
    _check(all(isinstance(v, (int, float)) and v >= 0 for v in self.eval_read_noise_lsb),
           f"{p}.eval_read_noise_lsb", "must be a list of read-noise levels >= 0 (in ADC LSB).")
    _check(isinstance(self.eval_bn_batches, int) and not isinstance(self.eval_bn_batches, bool)
           and self.eval_bn_batches >= 0, f"{p}.eval_bn_batches",
           f"must be an int >= 0 (0: no re-estimation), got {self.eval_bn_batches!r}.")
    _check(self.ou_path in OU_PATHS, f"{p}.ou_path",
           f"use one of {OU_PATHS}, got {self.ou_path!r}.")
    _check(self.backend is None or self.backend in OU_BACKENDS, f"{p}.backend",
           f"use one of {OU_BACKENDS} or None (the platform's), got {self.backend!r}.")


_SECTIONS = {"data": DataConfig, "model": ModelConfig, "train": TrainConfig, "prune": PruneConfig,
             "crossbar": CrossbarConfig, "mapper": MapperConfig}


@dataclasses.dataclass(frozen=True)
class Config:
  name: str
  seed: int
  data: DataConfig
  model: ModelConfig
  train: TrainConfig
  prune: PruneConfig
  crossbar: CrossbarConfig
  hardware: HardwareConfig
  mapper: MapperConfig  # the mapping the run reports and its cost model (rramjax.mapper.options)

  def to_dict(self) -> dict:
    return dataclasses.asdict(self)


def _type_ok(value, annotation) -> bool:
  """Loose runtime type check: ints for int fields, numbers for float fields, and so on."""
  if annotation is Any or annotation == "Any":
    return True
  origin = typing.get_origin(annotation)
  if origin in (types.UnionType, typing.Union):
    return any(_type_ok(value, a) for a in typing.get_args(annotation))
  if annotation is type(None):
    return value is None
  if annotation is bool:
    return isinstance(value, bool)
  if annotation is int:
    return isinstance(value, int) and not isinstance(value, bool)
  if annotation is float:
    return isinstance(value, (int, float)) and not isinstance(value, bool)
  if annotation is tuple:
    return isinstance(value, (list, tuple))
  return isinstance(value, annotation)


def _section(cls, values: Mapping[str, Any], path: str):
  if not isinstance(values, Mapping):
    raise ConfigError(f"Config key {path} must be a dict, got {type(values).__name__}.")
  hints = typing.get_type_hints(cls)
  known = {f.name for f in dataclasses.fields(cls)}
  unknown = sorted(set(values) - known)
  if unknown:
    raise ConfigError(f"Unknown config key(s) {[f'{path}.{k}' for k in unknown]}; "
                      f"known keys of {path}: {sorted(known)}.")
  for key, value in values.items():
    if not _type_ok(value, hints[key]):
      raise ConfigError(f"Config key {path}.{key} has the wrong type: got {value!r}, "
                        f"expected {hints[key]}.")
  fixed = {k: tuple(v) if isinstance(v, list) and hints[k] is tuple else v for k, v in values.items()}
  section = cls(**fixed)
  section.validate(path)
  return section


def from_dict(values: Mapping[str, Any]) -> Config:
  """Validates a nested dict into a `Config`; every error names the offending key."""
  values = dict(values)
  top = {"name", "seed", "hardware", *_SECTIONS}
  unknown = sorted(set(values) - top)
  if unknown:
    raise ConfigError(f"Unknown top-level config key(s) {unknown}; known keys: {sorted(top)}.")
  name = values.get("name", "run")
  seed = values.get("seed", 0)
  _check(isinstance(name, str) and name.replace("_", "").replace("-", "").isalnum(), "name",
         f"must be a short identifier, got {name!r}.")
  _check(isinstance(seed, int) and not isinstance(seed, bool) and seed >= 0, "seed",
         f"must be an int >= 0, got {seed!r}.")
  sections = {k: _section(cls, values.get(k, {}), k) for k, cls in _SECTIONS.items()}
  hw_values = values.get("hardware", {})
  if not isinstance(hw_values, Mapping):
    raise ConfigError("Config key hardware must be a dict of HardwareConfig fields.")
  hardware = HardwareConfig.from_dict(hw_values)
  return Config(name=name, seed=seed, hardware=hardware, **sections)


def _set_path(values: dict, dotted: str, value: Any):
  *parents, leaf = dotted.split(".")
  node = values
  for key in parents:
    node = node.setdefault(key, {})
    if not isinstance(node, dict):
      raise ConfigError(f"Override {dotted!r}: {key!r} is not a section.")
  node[leaf] = value


def parse_override(text: str) -> tuple[str, Any]:
  """'train.batch_size=64' -> ('train.batch_size', 64); values are Python literals or strings.

  Example:
    >>> parse_override("train.batch_size=64"), parse_override("model.name=vgg16")
    (('train.batch_size', 64), ('model.name', 'vgg16'))
  """
  import ast  # pylint: disable=g-import-not-at-top
  if "=" not in text:
    raise ConfigError(f"Override {text!r} must look like section.key=value.")
  key, raw = text.split("=", 1)
  try:
    value = ast.literal_eval(raw)
  except (ValueError, SyntaxError):
    value = raw
  return key.strip(), value


def load_config(spec: str, overrides: list[str] | tuple[str, ...] = ()) -> Config:
  """Loads `path/to/config.py[:arg]`, applies `key=value` overrides and validates.

  Args:
    spec: a config file, optionally with the argument its `get_config(arg)` receives.
    overrides: `section.key=value` texts applied in order (`--set` on the command line).

  Returns:
    The validated `Config`; keys the file leaves out take their defaults.

  Example:
    >>> import pathlib, tempfile
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "tiny.py"
    >>> _ = path.write_text(
    ...     "def get_config(arg=None):\\n"
    ...     "  return {'name': 'tiny', 'train': {'batch_size': 32 if arg == 'smoke' else 128}}\\n")
    >>> config = load_config(f"{path}:smoke", ["train.pretrain_epochs=1"])
    >>> config.name, config.train.batch_size, config.train.pretrain_epochs, config.model.name
    ('tiny', 32, 1, 'vgg_small')
    >>> load_config(str(path), ["train.batch_size=0"])
    Traceback (most recent call last):
    rramjax.errors.ConfigError: Config key train.batch_size: must be a positive int, got 0.
  """
  path_text, _, arg = spec.partition(":")
  path = pathlib.Path(path_text)
  if not path.is_file():
    raise ConfigError(f"Config file {path_text!r} not found; pass a file such as "
                      "configs/fashion_mnist_small.py (optionally with ':smoke').")
  module_spec = importlib.util.spec_from_file_location(f"rramjax_config_{path.stem}", path)
  module = importlib.util.module_from_spec(module_spec)
  try:
    module_spec.loader.exec_module(module)
  except Exception as e:  # a config file is user code: say which file broke
    raise ConfigError(f"Config file {path_text!r} failed to load: {type(e).__name__}: {e}") from e
  if not hasattr(module, "get_config"):
    raise ConfigError(f"Config file {path_text!r} defines no get_config(arg=None).")
  try:
    values = module.get_config(arg or None)
  except Exception as e:  # an unknown variant or a bug in the file: name the file, no deep traceback
    raise ConfigError(f"{path_text}: get_config({arg!r}) failed: {type(e).__name__}: {e}") from e
  if not isinstance(values, dict):
    raise ConfigError(f"{path_text}: get_config() must return a dict, got {type(values).__name__}.")
  for text in overrides:
    _set_path(values, *parse_override(text))
  return from_dict(values)

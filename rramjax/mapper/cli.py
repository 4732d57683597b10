"""The `rramjax map` subcommand: map a mask file or a run's masks, print the table, write JSON/CSV.

Usage:
  rramjax map MASKS.npz --out DIR [--plot] [--input-size 32] [--pool-after 1,3,6,9,12]
  rramjax map RUN_DIR --out DIR [--scheme best] [--filter-order greedy] ...

A run folder is mapped from its own `masks.npz` with the run's `hardware` and `mapper` settings
(its `config.json`); flags override them. A mask file is mapped with the paper's hardware and the
default mapper settings, its layers' output sizes taken, in order, from `--input-size` and
`--pool-after` when `--input-size` is given, else from the file's `out_hw`, else from a 32x32
input with VGG16's pooling.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import pathlib

import numpy as np

from rramjax.config import from_dict
from rramjax.errors import ConfigError, MaskError
from rramjax.hardware.config import HardwareConfig
from rramjax.mapper.cost import map_layer, map_run
from rramjax.mapper.masks import load_mask_file, pooled_out_hw
from rramjax.mapper.options import ADC_ENERGY, OBJECTIVES, OU_ENERGY, SCHEMES, MapperConfig
from rramjax.mapper.plots import plot_report
from rramjax.mapper.report import format_table, write_csv, write_json
from rramjax.plan import FILTER_ORDERS
from rramjax.presets import VGG16_PLAN, pool_after
from rramjax.paths import check_output_dir

DEFAULT_INPUT_SIZE = 32
DEFAULT_POOL_AFTER = ",".join(map(str, pool_after(VGG16_PLAN)))  # VGG16: 1,3,6,9,12
RUN_MASKS, RUN_CONFIG = "masks.npz", "config.json"
# Flag -> MapperConfig field; None (not given) keeps the run's (or the default) setting.
_MAPPER_FLAGS = {"scheme": "scheme", "filter_order": "filter_order", "objective": "objective",
                 "ou_energy": "ou_energy", "adc_energy": "adc_energy"}


def add_map_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
  """Adds the `map` subcommand's arguments to `parser` and returns it."""
  parser.add_argument("masks", help="an .npz of HWIO conv masks (conv_00, conv_01, ...; optional "
                      "out_hw), or a run folder (its masks.npz and config.json)")
  parser.add_argument("--out", required=True, help="directory for mapping.json, mapping.csv and plots")
  parser.add_argument("--plot", action="store_true", help="also write PNG figures")
  parser.add_argument("--input-size", type=int, default=None,
                      help=f"image side; with --pool-after gives each layer's output size "
                           f"(default: the npz's out_hw, else {DEFAULT_INPUT_SIZE})")
  parser.add_argument("--pool-after", default=DEFAULT_POOL_AFTER,
                      help="zero-based conv layers followed by a 2x2 pool (comma-separated)")
  parser.add_argument("--sign-encoding", choices=("offset", "differential"), default=None,
                      help="weight sign encoding (differential doubles the columns; default: the "
                           "run's, else offset)")
  parser.add_argument("--scheme", choices=SCHEMES, default=None,
                      help="the report's own scheme (default: the run's mapper.scheme, else pattern)")
  parser.add_argument("--filter-order", choices=FILTER_ORDERS, default=None,
                      help="the packed mapping's filter order (default: the run's, else given)")
  parser.add_argument("--objective", choices=OBJECTIVES, default=None, help="what 'best' minimises")
  parser.add_argument("--ou-energy", choices=OU_ENERGY, default=None, help="RRAM energy per OU or per row")
  parser.add_argument("--adc-energy", choices=ADC_ENERGY, default=None,
                      help="ADC energy per conversion or by the bits a tile's sums need")
  return parser


def is_run_folder(path) -> bool:
  """A run folder holds the run's `config.json`."""
  return os.path.isdir(path) and os.path.isfile(os.path.join(path, RUN_CONFIG))


def read_run_config(run_dir):
  """The validated `Config` of a run folder, from its `config.json`.

  Raises:
    ConfigError: no or an unreadable config.json, or one that does not validate.
  """
  path = pathlib.Path(run_dir) / RUN_CONFIG
  try:
    values = json.loads(path.read_text())
  except (OSError, ValueError) as err:
    raise ConfigError(f"{str(path)!r} cannot be read as a run's config ({err}); pass a run folder "
                      "made by `rramjax run` or an .npz of masks.") from err
  return from_dict(values)


def run_settings(run_dir) -> tuple[HardwareConfig, MapperConfig]:
  """The `hardware` and `mapper` settings of a run folder (see `read_run_config`)."""
  config = read_run_config(run_dir)
  return config.hardware, config.mapper


def _pool_after(text: str) -> list[int]:
  try:
    return [int(item) for item in text.split(",") if item.strip()]
  except ValueError as err:
    raise MaskError(f"--pool-after must be comma-separated layer indices, got {text!r}.") from err


def _out_hw(args, stored, num_layers: int) -> np.ndarray:
  if args.input_size is None and stored is not None:
    return stored
  size = DEFAULT_INPUT_SIZE if args.input_size is None else args.input_size
  return pooled_out_hw(num_layers, size, _pool_after(args.pool_after))


def _settings(args) -> tuple[HardwareConfig, MapperConfig]:
  """The run's (or the default) hardware and mapper settings with the flags applied."""
  hw, mapper = run_settings(args.masks) if is_run_folder(args.masks) else (HardwareConfig(), MapperConfig())
  if getattr(args, "sign_encoding", None):
    hw = hw.replace(sign_encoding=args.sign_encoding)
  changes = {field: getattr(args, flag) for flag, field in _MAPPER_FLAGS.items()
             if getattr(args, flag, None) is not None}
  return hw, dataclasses.replace(mapper, **changes)


def run_map(args: argparse.Namespace, masks_file=None) -> int:
  """Runs `rramjax map`: prints the table and totals, writes `mapping.json`/`mapping.csv` (+ plots).

  Args:
    args: the parsed arguments (`add_map_arguments`).
    masks_file: the masks to map when `args.masks` is a run folder (default: its masks.npz).

  Returns:
    0 (errors raise `MaskError`, `ConfigError`, or `WorkdirError` for an unusable --out, with a
    message for the user, before anything is printed or written).
  """
  check_output_dir(args.out, "--out")
  if os.path.isdir(args.masks) and not is_run_folder(args.masks):
    raise MaskError(f"{args.masks!r} is a folder without {RUN_CONFIG}, not a run folder; pass a run's "
                    "--workdir or an .npz of masks.")
  if masks_file is None:
    masks_file = os.path.join(args.masks, RUN_MASKS) if os.path.isdir(args.masks) else args.masks
  hw, mapper = _settings(args)
  names, masks, stored = load_mask_file(masks_file)
  report = map_run(masks, _out_hw(args, stored, len(masks)), hw, mapper, names=names)
  os.makedirs(args.out, exist_ok=True)
  print(format_table(report))
  written = [write_json(report, os.path.join(args.out, "mapping.json")),
             write_csv(report, os.path.join(args.out, "mapping.csv"))]
  if args.plot:
    written += _plots(report, masks, names, hw, mapper, args.out)
  print("wrote " + ", ".join(written))
  return 0


def _plots(report, masks, names, hw, mapper, out) -> list[str]:
  """The report's figures; the occupancy figure shows the first array of the layer with the most
  tiles, mapped by the report's own scheme (the pattern mapping when 'best' chose the baseline)."""
  scheme = report["schemes"][0]
  busiest = int(np.argmax([layer[scheme].get("tiles", 0) for layer in report["layers"]]))
  mapped = map_layer(masks[busiest], hw, schemes=(scheme,), filter_order=mapper.filter_order,
                     objective=mapper.objective, cost_model=mapper.cost_model())
  placement = mapped[scheme].get("placement") or map_layer(masks[busiest], hw)["pattern"]["placement"]
  return plot_report(report, out, placement, 0, names[busiest])

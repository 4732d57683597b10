"""The `rramjax map` subcommand: map a mask file, print the table, write JSON/CSV (and plots).

Usage:
  rramjax map MASKS.npz --out DIR [--plot] [--input-size 32] [--pool-after 1,3,6,9,12]

Each conv layer's output size comes from, in order: `--input-size`/`--pool-after` when
`--input-size` is given, else the npz's `out_hw` array, else a 32x32 input with VGG16's pooling.
"""

from __future__ import annotations

import argparse
import os

import numpy as np

from rramjax.errors import MaskError
from rramjax.hardware.config import HardwareConfig
from rramjax.mapper.cost import map_layer, map_network
from rramjax.mapper.masks import load_mask_file, pooled_out_hw
from rramjax.mapper.plots import plot_report
from rramjax.mapper.report import format_table, write_csv, write_json
from rramjax.paths import check_output_dir

DEFAULT_INPUT_SIZE = 32
DEFAULT_POOL_AFTER = "1,3,6,9,12"  # VGG16: a 2x2 pool after conv layers 2, 4, 7, 10, 13


def add_map_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
  """Adds the `map` subcommand's arguments to `parser` and returns it."""
  parser.add_argument("masks", help="an .npz of HWIO conv masks (conv_00, conv_01, ...; optional "
                      "out_hw), or a run folder (its newest checkpoint is used)")
  parser.add_argument("--out", required=True, help="directory for mapping.json, mapping.csv and plots")
  parser.add_argument("--plot", action="store_true", help="also write PNG figures")
  parser.add_argument("--input-size", type=int, default=None,
                      help=f"image side; with --pool-after gives each layer's output size "
                           f"(default: the npz's out_hw, else {DEFAULT_INPUT_SIZE})")
  parser.add_argument("--pool-after", default=DEFAULT_POOL_AFTER,
                      help="zero-based conv layers followed by a 2x2 pool (comma-separated)")
  parser.add_argument("--sign-encoding", choices=("offset", "differential"), default="offset",
                      help="weight sign encoding (differential doubles the columns)")
  return parser


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


def run_map(args: argparse.Namespace) -> int:
  """Runs `rramjax map`: prints the table and totals, writes `mapping.json`/`mapping.csv` (+ plots).

  Returns:
    0 (errors raise `MaskError`, or `WorkdirError` for an unusable --out, with a message for
    the user, before anything is printed or written).
  """
  check_output_dir(args.out, "--out")
  names, masks, stored = load_mask_file(args.masks)
  hw = HardwareConfig(sign_encoding=args.sign_encoding)
  report = map_network(masks, _out_hw(args, stored, len(masks)), hw, names=names)
  os.makedirs(args.out, exist_ok=True)
  print(format_table(report))
  written = [write_json(report, os.path.join(args.out, "mapping.json")),
             write_csv(report, os.path.join(args.out, "mapping.csv"))]
  if args.plot:
    # The occupancy figure shows the first array of the layer with the most tiles.
    busiest = int(np.argmax([layer["pattern"]["tiles"] for layer in report["layers"]]))
    placement = map_layer(masks[busiest], hw)["pattern"]["placement"]
    written += plot_report(report, args.out, placement, 0, names[busiest])
  print("wrote " + ", ".join(written))
  return 0

"""The `rramjax` command: parses arguments and calls library functions, nothing more."""

from __future__ import annotations

import argparse
import json
import sys

from rramjax.errors import RramjaxError


def _add_run(sub):
  p = sub.add_parser("run", help="train (dense, pruned, hardware-aware), evaluate, map and report",
                     description="Runs the pipeline a config describes and prints the report.")
  p.add_argument("config", help="config file, optionally with a variant: configs/x.py[:smoke]")
  p.add_argument("--workdir", help="output folder (default: runs/<config name>)")
  p.add_argument("--resume", action="store_true", help="continue from the last checkpoint")
  p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                 help="override a config value, e.g. --set train.pretrain_epochs=2 (repeatable)")
  p.add_argument("--no-progress", action="store_true", help="no progress bar")


def _run(args) -> int:
  from rramjax.config import load_config  # pylint: disable=g-import-not-at-top
  from rramjax.train import train_and_evaluate  # pylint: disable=g-import-not-at-top
  from rramjax.train.report import format_summary  # pylint: disable=g-import-not-at-top
  config = load_config(args.config, args.overrides)
  workdir = args.workdir or f"runs/{config.name}"
  summary = train_and_evaluate(config, workdir, resume=args.resume, progress=not args.no_progress)
  print(format_summary(summary))
  print(f"\nWrote {workdir}/summary.json, metrics.jsonl and checkpoints/.")
  return 0


def _add_map(sub):
  p = sub.add_parser("map", help="map pruned masks onto crossbars and report area/energy/latency",
                     description="Maps HWIO masks (an .npz or a run's workdir) onto RRAM arrays.")
  try:
    from rramjax.mapper import cli as mapper_cli  # pylint: disable=g-import-not-at-top
  except ImportError as e:  # `run` stays usable; `map` says why it cannot run (see `_map`)
    p.add_argument("args", nargs=argparse.REMAINDER)
    p.set_defaults(map_import_error=e)
    return
  mapper_cli.add_map_arguments(p)


def _map(args) -> int:
  import os  # pylint: disable=g-import-not-at-top
  error = getattr(args, "map_import_error", None)
  if error is not None:
    raise RramjaxError(f"the mapper cannot be imported ({type(error).__name__}: {error}); "
                       "reinstall rramjax (`pip install -e .`) and check that numpy imports.")
  from rramjax.mapper import cli as mapper_cli  # pylint: disable=g-import-not-at-top
  if os.path.isdir(args.masks):  # a run folder: its newest checkpoint's masks
    from rramjax.train.export import export_masks  # pylint: disable=g-import-not-at-top
    os.makedirs(args.out, exist_ok=True)
    args.masks = str(export_masks(args.masks, os.path.join(args.out, "masks.npz")))
    print(f"masks of the newest checkpoint written to {args.masks}")
  return mapper_cli.run_map(args) or 0


def build_parser() -> argparse.ArgumentParser:
  parser = argparse.ArgumentParser(
      prog="rramjax", description="Design CNNs for RRAM processing-in-memory accelerators: pattern "
      "pruning, a differentiable crossbar model, and a crossbar mapper with a cost model.")
  sub = parser.add_subparsers(dest="command", required=True)
  _add_run(sub)
  _add_map(sub)
  return parser


def main(argv=None) -> int:
  args = build_parser().parse_args(argv)
  handlers = {"run": _run, "map": _map}
  try:
    return handlers[args.command](args)
  except RramjaxError as e:
    print(f"rramjax {args.command}: error: {e}", file=sys.stderr)
    return 2
  except KeyboardInterrupt:
    print("Interrupted; the last finished epoch is checkpointed: rerun with --resume.", file=sys.stderr)
    return 130


if __name__ == "__main__":
  sys.exit(main())

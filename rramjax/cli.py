"""The `rramjax` command: parses arguments and calls library functions, nothing more."""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading

from rramjax.errors import RramjaxError


def _add_run(sub):
  p = sub.add_parser("run", help="train (dense, pruned, hardware-aware), evaluate, map and report",
                     description="Runs the pipeline a config describes and prints the report.")
  p.add_argument("config", help="config file, optionally with a variant: configs/x.py[:smoke]")
  p.add_argument("--workdir", help="output folder (default: runs/<config name>, or "
                 "runs/<config name>_<variant> for a variant); a folder holding a run is "
                 "refused unless --resume or --overwrite")
  again = p.add_mutually_exclusive_group()
  again.add_argument("--resume", action="store_true",
                     help="continue the run in --workdir from its last checkpoint (same config "
                     "but for logging and evaluation keys)")
  again.add_argument("--overwrite", action="store_true",
                     help="replace the run in --workdir (its files are removed, and listed)")
  p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                 help="override a config value, e.g. --set train.pretrain_epochs=2 (repeatable)")
  p.add_argument("--no-progress", action="store_true", help="no progress bar")


def _run(args) -> int:
  from rramjax.config import load_config  # pylint: disable=g-import-not-at-top
  from rramjax.train import train_and_evaluate  # pylint: disable=g-import-not-at-top
  from rramjax.train import workdir as workdir_lib  # pylint: disable=g-import-not-at-top
  from rramjax.train.report import format_summary  # pylint: disable=g-import-not-at-top
  config = load_config(args.config, args.overrides)
  variant = args.config.partition(":")[2]
  workdir = args.workdir or str(workdir_lib.default_workdir(config.name, variant))
  try:
    summary = train_and_evaluate(config, workdir, resume=args.resume, overwrite=args.overwrite,
                                 progress=not args.no_progress)
  except KeyboardInterrupt as e:
    print(f"rramjax run: {_interrupted(e)}. {workdir_lib.where_it_stands(workdir)}", file=sys.stderr)
    return _exit_code(e)
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
  from rramjax.paths import check_output_dir  # pylint: disable=g-import-not-at-top
  check_output_dir(args.out, "--out")  # before anything is exported, printed or written
  masks_file = None
  run_masks = os.path.join(args.masks, mapper_cli.RUN_MASKS)
  if mapper_cli.is_run_folder(args.masks) and not os.path.isfile(run_masks):
    # An unfinished run: its masks come from its newest (checksum-verified) checkpoint.
    from rramjax.train.export import export_masks  # pylint: disable=g-import-not-at-top
    os.makedirs(args.out, exist_ok=True)
    masks_file = export_masks(args.masks, os.path.join(args.out, mapper_cli.RUN_MASKS))
    print(f"the run has no {mapper_cli.RUN_MASKS} yet: its newest checkpoint's masks written to {masks_file}")
  return mapper_cli.run_map(args, masks_file) or 0


def _add_sweep(sub):
  p = sub.add_parser(
      "sweep", help="accuracy and cost of a trained run over a grid of hardware choices",
      description="Evaluates a run's model at 'ou' and maps its masks at every point of a grid of "
      "hardware/crossbar/mapper settings; writes sweep.json, sweep.csv and plots to --out. Points "
      "that differ only in ADC bits, full scale or read noise run vectorised. Run the same "
      "command again to resume an interrupted sweep.",
      epilog="example: rramjax sweep runs/fashion_mnist_small --grid hardware.adc_bits=4,5,6,7,8 "
      "--grid hardware.read_noise_lsb=0,0.25,0.5,1.0 --seeds 2 --out sweeps/adc_noise")
  p.add_argument("run_dir", metavar="RUN_DIR", help="a run folder (rramjax run --workdir); read only")
  p.add_argument("--grid", action="append", default=[], metavar="KEY=V1,V2,...",
                 help="a hardware.*, crossbar.* or mapper.* config key and its values (repeatable: "
                 "the grid is every combination); one value sets that key for every point")
  p.add_argument("--hwtune-steps", type=int, default=0, metavar="N",
                 help="fine-tune the model N steps at each point with its crossbar in the loop "
                 "(default 0: evaluate the run's model as it is)")
  p.add_argument("--bn-batches", type=int, default=0, metavar="B",
                 help="also evaluate each point with the model's batch-norm statistics re-estimated "
                 "at the point's crossbar over B training batches (default 0: the run's own "
                 "statistics only)")
  p.add_argument("--seeds", type=int, default=None, metavar="S",
                 help="noise seeds per point with device noise (default: the run's "
                 "crossbar.eval_seeds)")
  p.add_argument("--out", required=True, help="output folder (sweep.json, sweep.csv, *.png)")
  p.add_argument("--no-progress", action="store_true", help="no progress bar")


def _sweep(args) -> int:
  from rramjax.sweep import report  # pylint: disable=g-import-not-at-top
  from rramjax.sweep.run import run_sweep  # pylint: disable=g-import-not-at-top
  try:
    run_sweep(args.run_dir, args.grid, args.out, seeds=args.seeds, hwtune_steps=args.hwtune_steps,
              bn_batches=args.bn_batches, progress=not args.no_progress)
  except KeyboardInterrupt as e:
    written = report.rows_written(args.out)
    print(f"rramjax sweep: {_interrupted(e)}. {written} point(s) are in "
          f"{args.out}/{report.JSON_FILE}: run the same command to resume.", file=sys.stderr)
    return _exit_code(e)
  return 0


def build_parser() -> argparse.ArgumentParser:
  parser = argparse.ArgumentParser(
      prog="rramjax", description="Design CNNs for RRAM processing-in-memory accelerators: pattern "
      "pruning, a differentiable crossbar model, and a crossbar mapper with a cost model.")
  sub = parser.add_subparsers(dest="command", required=True)
  _add_run(sub)
  _add_map(sub)
  _add_sweep(sub)
  return parser


class _Terminated(KeyboardInterrupt):
  """SIGTERM, raised in the main thread so that a run stops as it does on Ctrl-C."""


def _interrupted(e: KeyboardInterrupt) -> str:
  return "terminated (SIGTERM)" if isinstance(e, _Terminated) else "interrupted (SIGINT)"


def _exit_code(e: KeyboardInterrupt) -> int:
  return 143 if isinstance(e, _Terminated) else 130  # 128 + the signal's number


def _raise_terminated(signum, frame):
  del signum, frame
  raise _Terminated()


def main(argv=None) -> int:
  args = build_parser().parse_args(argv)
  handlers = {"run": _run, "map": _map, "sweep": _sweep}
  on_main = threading.current_thread() is threading.main_thread()
  previous = signal.signal(signal.SIGTERM, _raise_terminated) if on_main else None
  try:
    return handlers[args.command](args)
  except RramjaxError as e:
    print(f"rramjax {args.command}: error: {e}", file=sys.stderr)
    return 2
  except OSError as e:  # a file-system failure the checks could not foresee (disk full, ...)
    print(f"rramjax {args.command}: error: {e}", file=sys.stderr)
    return 1
  except KeyboardInterrupt as e:
    print(f"rramjax {args.command}: {_interrupted(e)}.", file=sys.stderr)
    return _exit_code(e)
  finally:
    if previous is not None:
      signal.signal(signal.SIGTERM, previous)


if __name__ == "__main__":
  sys.exit(main())

"""The Fashion-MNIST experiments of docs/RESULTS.md: pruning methods and the crossbar in the loop.

  python scripts/fashion_mnist_experiments.py --workdir runs/experiments

One base run of the config (dense pretraining -> ADMM with greedy libraries -> hard pruning ->
masked fine-tuning) and branches from its phase-end checkpoints, so every variant starts from
the same weights:
  * patdnn_default: PatDNN's one library of 8 four-entry patterns, same sparsity target, from the
    same pretrained checkpoint (ADMM, pruning and fine-tuning redone);
  * patdnn: PatDNN's library extraction (top-4 counting, 8 per layer), same target;
  * no_hwtune: the base pruned model evaluated at 'ou' (fine-tuned without the hardware);
  * hwtune_ideal: the base pruned model fine-tuned N more steps WITHOUT the hardware;
  * hwtune_ou: the base pruned model fine-tuned N steps with the 'ou' crossbar in the loop.
The three hardware variants are evaluated at 'ou' with read noise off and at the given level
(several seeds, vmapped). Prints a table and writes experiments.json; rerunning resumes.
"""

from __future__ import annotations

import argparse
import datetime
import json
import pathlib
import platform
import shutil
import sys
import time

import jax

from rramjax.config import load_config
from rramjax.train import train_and_evaluate
from rramjax.train.metrics import read_metrics


def _phase_end(workdir: pathlib.Path, phase: str) -> int:
  """Epoch count after the last epoch of `phase`, from the run's metrics."""
  records = read_metrics(workdir / "metrics.jsonl")
  return max(r["epoch"] for r in records if r.get("phase") == phase and "test_accuracy" in r)


def _branch(base: pathlib.Path, target: pathlib.Path, epoch: int):
  """A new run folder whose only checkpoint is the base run's after `epoch` epochs."""
  if (target / "checkpoints").exists():
    return  # resume the branch itself
  (target / "checkpoints").mkdir(parents=True)
  shutil.copytree(base / "checkpoints" / str(epoch), target / "checkpoints" / str(epoch))
  lines = (base / "metrics.jsonl").read_text().splitlines()
  kept = [l for l in lines if json.loads(l).get("epoch", 0) <= epoch]
  (target / "metrics.jsonl").write_text("\n".join(kept) + "\n")


def _run(spec, overrides, workdir, progress):
  config = load_config(spec, overrides)
  t0 = time.time()
  summary = train_and_evaluate(config, workdir, resume=True, progress=progress, log=print)
  summary["wall_s"] = round(time.time() - t0, 1)
  return summary


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--config", default="configs/fashion_mnist_small.py")
  parser.add_argument("--workdir", default="runs/experiments")
  parser.add_argument("--hwtune-steps", type=int, default=150)
  parser.add_argument("--read-noise", type=float, default=0.5, help="realistic read noise (LSB); 0 evaluates read noise off only")
  parser.add_argument("--seeds", type=int, default=4)
  parser.add_argument("--set", dest="overrides", action="append", default=[],
                      help="extra config overrides for every run")
  parser.add_argument("--skip", default="", help="comma-separated variants to skip")
  parser.add_argument("--progress", action="store_true")
  args = parser.parse_args(argv)
  root = pathlib.Path(args.workdir)
  skip = set(filter(None, args.skip.split(",")))
  common = list(args.overrides)
  no_hw = ["train.hwtune_epochs=0", "crossbar.eval_fidelity='ideal'", "crossbar.eval_read_noise_lsb=[]"]
  noise_levels = f"[{args.read_noise}]" if args.read_noise > 0 else "[]"  # 0: noise-off row only
  hw_eval = ["crossbar.eval_fidelity='ou'", f"crossbar.eval_read_noise_lsb={noise_levels}",
             f"crossbar.eval_seeds={args.seeds}"]
  results = {"command": " ".join([sys.executable.split("/")[-1], *sys.argv]),
             "device": f"{jax.devices()[0].device_kind} ({platform.processor() or platform.machine()}, "
                       f"{jax.device_count()} device)",
             "date": datetime.date.today().isoformat(), "runs": {}}

  print("== base: dense -> ADMM (greedy) -> prune -> fine-tune ==")
  base = root / "base"
  results["runs"]["base"] = _run(args.config, common + no_hw, base, args.progress)
  results["dense_accuracy"] = results["runs"]["base"]["phase_end_accuracy"]["pretrain"]
  pre_end, ft_end = _phase_end(base, "pretrain"), _phase_end(base, "finetune")

  for name, library in (("patdnn_default", "patdnn_default"), ("patdnn", "patdnn")):
    if name in skip:
      continue
    print(f"== {name}: same pretrained weights, library {library} ==")
    _branch(base, root / name, pre_end)
    results["runs"][name] = _run(args.config, common + no_hw + [f"prune.library='{library}'"],
                                 root / name, args.progress)

  hw_runs = {"no_hwtune": ["train.hwtune_epochs=0"],
             "hwtune_ideal": ["train.hwtune_epochs=1", f"train.hwtune_steps={args.hwtune_steps}",
                              "crossbar.train_fidelity='ideal'"],
             "hwtune_ou": ["train.hwtune_epochs=1", f"train.hwtune_steps={args.hwtune_steps}",
                           "crossbar.train_fidelity='ou'"]}
  for name, extra in hw_runs.items():
    if name in skip:
      continue
    print(f"== {name}: from the pruned, fine-tuned base ==")
    _branch(base, root / name, ft_end)
    results["runs"][name] = _run(args.config, common + hw_eval + extra, root / name, args.progress)

  (root / "experiments.json").write_text(json.dumps(results, indent=2, default=float))
  print(format_results(results))
  return 0


def format_results(results: dict) -> str:
  runs = results["runs"]
  lines = [f"device: {results['device']}; date {results['date']}",
           f"dense test accuracy (end of pretraining): {100 * results['dense_accuracy']:.2f}%", "",
           "| run | library | sparsity | patterns/layer | test acc. (ideal) | delta vs dense |",
           "|---|---|---|---|---|---|"]
  for name in ("base", "patdnn_default", "patdnn"):
    if name in runs:
      r = runs[name]
      acc = r["test"]["accuracy"]
      lines.append(f"| {name} | {r.get('library', name if name != 'base' else 'greedy')} | "
                   f"{100 * r['pruning']['overall_sparsity']:.2f}% | "
                   f"{','.join(map(str, r['pruning']['pattern_counts']))} | {100 * acc:.2f}% | "
                   f"{100 * (acc - results['dense_accuracy']):+.2f} |")
  lines += ["", "| run | ideal, whole test set | ideal, hardware examples | ou, no read noise | "
            "ou, read noise (mean +- std over seeds) | ou (no noise) vs ideal pruned |",
            "|---|---|---|---|---|---|"]
  reference = None  # the ideal pruned model (no_hwtune) on the hardware examples
  if "no_hwtune" in runs:
    reference = next(h for h in runs["no_hwtune"]["hardware"] if h["fidelity"] == "ideal")
  elif "hwtune_ou" in runs:
    reference = next(h for h in runs["hwtune_ou"]["hardware"] if h["model"] == "before hwtune")
  for name in ("no_hwtune", "hwtune_ideal", "hwtune_ou"):
    if name in runs:
      r = runs[name]
      ideal = next(h for h in r["hardware"] if h["fidelity"] == "ideal" and h["model"] == "final")
      ou = [h for h in r["hardware"] if h["fidelity"] == "ou" and h["model"] == "final"]
      clean = next((h for h in ou if h["read_noise_lsb"] == 0), None)
      noisy = next((h for h in ou if h["read_noise_lsb"] > 0), None)
      gap = (f"{100 * (clean['accuracy_mean'] - reference['accuracy_mean']):+.2f} points"
             if reference and clean else "-")
      lines.append(f"| {name} | {100 * r['test']['accuracy']:.2f}% | {100 * ideal['accuracy_mean']:.2f}% "
                   f"({ideal['examples']}) | "
                   + (f"{100 * clean['accuracy_mean']:.2f}%" if clean else "-") + " | "
                   + (f"{100 * noisy['accuracy_mean']:.2f} +- {100 * noisy['accuracy_std']:.2f}% "
                      f"({noisy['read_noise_lsb']} LSB, {noisy['seeds']} seeds)" if noisy else "-")
                   + f" | {gap} |")
  return "\n".join(lines)


if __name__ == "__main__":
  sys.exit(main())

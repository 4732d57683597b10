"""The run's final report: summary.json's content and the text printed at the end of a run.

The summary holds the ideal test accuracy (and its value at each phase end), the pruning report
and pattern table, the hardware table (every row beside the ideal model on the same test
examples), the masks for the mapper (masks.npz) and the mapping's area / energy / latency.
"""

from __future__ import annotations

import json
import pathlib
from typing import Callable

import numpy as np

from rramjax import patterns
from rramjax.config import Config
from rramjax.train.metrics import read_metrics
from rramjax.train.step import conv_kernels
from rramjax.train.targets import library_codes

MASKS_FILE = "masks.npz"

# `evaluate_at(state, fidelity, hw, model) -> row`: one row of the hardware table.
RowEvaluator = Callable


def phase_end_accuracy(metrics_path: str | pathlib.Path) -> dict[str, float]:
  """Ideal test accuracy after each phase's last epoch, from a run's metrics.jsonl (in order)."""
  path = pathlib.Path(metrics_path)
  out = {}
  if path.exists():
    for r in read_metrics(path):
      if "test_accuracy" in r and "phase" in r:
        out.pop(r["phase"], None)  # keep phase order by last epoch
        out[r["phase"]] = float(r["test_accuracy"])
  return out


BN_MODEL = "BN re-est."  # the label of the rows with re-estimated batch-norm statistics

# `reestimate(state, fidelity, hw) -> state`: batch-norm statistics re-estimated at that crossbar.
Reestimator = Callable


def hardware_rows(config: Config, state: dict, reference: dict | None,
                  evaluate_at: RowEvaluator, reestimate: Reestimator | None = None) -> list[dict]:
  """The hardware table's rows: the ideal models first (the references), then the hardware.

  With `crossbar.eval_bn_batches` > 0, each of the final model's rows is repeated (model
  `BN_MODEL`) with its batch norms' statistics re-estimated at that row's fidelity and crossbar
  first: the run's statistics describe the crossbar it was trained with (its ADC clipping and read
  noise), not the ideal model or another noise level (docs/MODEL.md section 9).

  Args:
    config: the run's config (`crossbar.eval_fidelity`, `crossbar.eval_read_noise_lsb`,
      `crossbar.eval_bn_batches`).
    state: the final state (calibrated).
    reference: the state before hwtune (the ideal pruned model), or None.
    evaluate_at: evaluates one row (`hardware_glue.hardware_eval` with the run's data bound).
    reestimate: re-estimates the statistics (`Trainer.reestimate_bn`); needed when
      `crossbar.eval_bn_batches` > 0.
  """
  hw, fidelity = config.hardware, config.crossbar.eval_fidelity
  points = [("ideal", hw), (fidelity, hw)] + [
      (fidelity, hw.replace(read_noise_lsb=float(level)))
      for level in config.crossbar.eval_read_noise_lsb]
  rows = [] if reference is None else [evaluate_at(reference, "ideal", hw, "before hwtune")]
  rows += [evaluate_at(state, f, h, "final") for f, h in points]
  if config.crossbar.eval_bn_batches:
    if reestimate is None:
      raise ValueError("crossbar.eval_bn_batches > 0 needs a `reestimate` function.")
    batches = config.crossbar.eval_bn_batches
    rows += [{**evaluate_at(reestimate(state, f, h), f, h, BN_MODEL), "bn_batches": batches}
             for f, h in points]
  return rows


def reference_row(rows) -> dict | None:
  """The ideal row every hardware row is compared with: the model before hwtune when evaluated
  (the ideal pruned model), else the final model at 'ideal'."""
  ideal = [r for r in rows if r["fidelity"] == "ideal"]
  before = [r for r in ideal if r.get("model") == "before hwtune"]
  return (before or ideal or [None])[0]


def format_hardware_table(rows) -> str:
  """The hardware rows as a table; each row's difference (points) from `reference_row`."""
  ref = reference_row(rows)
  ideal = None if ref is None else ref["accuracy_mean"]
  title = "hardware evaluation (test set)"
  if ref is not None:
    title += f"; 'vs ref' = points vs the {ref.get('model', 'final')} model at 'ideal'"
  bn = [r["bn_batches"] for r in rows if r.get("model") == BN_MODEL]
  if bn:
    title += (f"\n'{BN_MODEL}' = the final model with its batch norms' statistics re-estimated at "
              f"the row's crossbar ({bn[0]} training batches)")
  lines = [title,
           f"{'model':>13} {'fidelity':>8} {'read noise':>10} {'prog noise':>10} {'seeds':>5} "
           f"{'examples':>8} {'accuracy':>16}" + (f" {'vs ref':>7}" if ideal is not None else "")]
  for r in rows:
    line = (f"{r.get('model', 'final'):>13} {r['fidelity']:>8} {r['read_noise_lsb']:>10.2f} "
            f"{r['prog_noise']:>10.3f} "
            f"{r['seeds']:>5} {r['examples']:>8} "
            f"{100 * r['accuracy_mean']:>8.2f} +- {100 * r['accuracy_std']:.2f}%")
    if ideal is not None:
      line += f" {100 * (r['accuracy_mean'] - ideal):>+7.2f}"
    lines.append(line)
  return "\n".join(lines)


def pruning_summary(state: dict, plot_path: str | pathlib.Path) -> dict:
  """The pruning report of a pruned state (JSON-able), its pattern table and library plot."""
  kernels = [np.asarray(k) for k in conv_kernels(state["params"])]
  libraries = [library_codes(m) for m in state["libraries"]]
  report = patterns.pattern_report(kernels, [np.asarray(m) for m in state["masks"]], libraries)
  for layer, kept in zip(report["layers"], np.asarray(state["kept_energy"])):
    layer["kept_energy"] = float(kept)  # at the hard projection (the weights are pruned now)
  pruning = {k: v for k, v in report.items() if k != "layers"}
  pruning["layers"] = [
      {k: v for k, v in layer.items() if k not in ("pictures", "shape", "outside_library")}
      for layer in report["layers"]]
  pruning["keep_ratios"] = [float(r) for r in np.asarray(state["keep_ratios"])]
  png = patterns.plot_libraries(libraries, str(plot_path),
                                usage=[layer["usage"] for layer in report["layers"]])
  return {"pruning": pruning, "pattern_table": patterns.format_pattern_report(report),
          "libraries_png": png}


def write_mapping(workdir: pathlib.Path, masks, out_hw, hw, mapper_config) -> dict:
  """Writes masks.npz and mapping.json into the run folder; the summary's mapping entries.

  The mapping uses the run's `mapper` settings: its scheme first (the report's ratios are its),
  then the others, side by side.
  """
  from rramjax import mapper  # pylint: disable=g-import-not-at-top
  masks = [np.asarray(m) for m in masks]
  out_hw = np.asarray(out_hw)
  mapper.save_masks(workdir / MASKS_FILE, masks, out_hw)
  report = mapper.map_run(masks, out_hw, hw, mapper_config)
  mapper.write_json(report, str(workdir / "mapping.json"))
  return {"mapping": {"totals": report["totals"]}, "mapping_table": mapper.format_table(report),
          "masks_file": str(workdir / MASKS_FILE)}


def final_report(config: Config, state: dict, *, workdir: str | pathlib.Path, epochs: int,
                 test: dict, hardware: list[dict] | None, out_hw) -> dict:
  """The run's summary: test accuracy, pruning report, hardware evaluation and mapping.

  Args:
    config: the run's config.
    state: the final state.
    workdir: the run folder (metrics.jsonl is read; masks.npz, mapping.json and
      pattern_libraries.png are written).
    epochs: the run's number of epochs.
    test: the final model's ideal test accuracy and loss.
    hardware: the hardware table's rows (`hardware_rows`), or None when not evaluated.
    out_hw: each conv layer's output size, for the mapper.

  Returns:
    The summary (JSON-able).
  """
  workdir = pathlib.Path(workdir)
  summary = {"name": config.name, "test": test, "epochs": epochs, "steps": int(state["step"]),
             "phase_end_accuracy": phase_end_accuracy(workdir / "metrics.jsonl")}
  if config.prune.enabled:
    summary.update(pruning_summary(state, workdir / "pattern_libraries.png"))
  if hardware is not None:
    summary["hardware"] = hardware
    summary["hardware_table"] = format_hardware_table(hardware)
  summary.update(write_mapping(workdir, state["masks"], out_hw, config.hardware, config.mapper))
  json.dumps(summary, default=float)  # fail here, not after the run, if something is not JSON
  return summary


def format_summary(summary: dict) -> str:
  """The report printed at the end of a run, from its summary."""
  lines = ["== rramjax report =="]
  test = summary.get("test", {})
  lines.append(f"test accuracy (ideal): {100 * test.get('accuracy', float('nan')):.2f}%  "
               f"loss {test.get('loss', float('nan')):.4f}")
  ends = summary.get("phase_end_accuracy") or {}
  if ends:
    names = {"pretrain": "pretrain (dense)", "finetune": "finetune (pruned)"}
    lines.append("test accuracy (ideal) at each phase end: " + ", ".join(
        f"{names.get(phase, phase)} {100 * acc:.2f}%" for phase, acc in ends.items()))
  for key in ("epochs", "steps", "train_time_s"):
    if key in summary:
      lines.append(f"{key}: {summary[key]}")
  for key in ("pattern_table", "hardware_table", "mapping_table"):
    if summary.get(key):
      lines += ["", summary[key]]
  return "\n".join(lines)

"""Text of the final report printed at the end of a run."""

from __future__ import annotations


def format_summary(summary: dict) -> str:
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

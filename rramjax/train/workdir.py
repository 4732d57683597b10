"""Run folders: where a run goes, when a folder may be written, and the resume contract.

A folder *holds a run* when it has any of RUN_MARKERS (config.json, metrics.jsonl,
summary.json, checkpoints/). `prepare` decides, before anything is written, what a run may do
with its folder:

  * no run there (or no folder yet): a new run; with `resume` a notice says so;
  * a run there and neither `resume` nor `overwrite`: WorkdirError naming --resume and a
    fresh --workdir;
  * `overwrite`: the old run's files are removed by `clear_run`, once every other check passed;
  * `resume`: the config must equal the recorded config.json except for RESUMABLE_KEYS
    (ConfigError listing the differing keys), and the folder must hold a checkpoint
    (CheckpointError). A folder with checkpoints but no config.json (a branch made by copying
    another run's checkpoint) resumes with the config given, which is recorded then.
"""

from __future__ import annotations

import json
import os
import pathlib
import shutil
from typing import Any, Callable

from rramjax.config import Config, from_dict
from rramjax.errors import CheckpointError, ConfigError, WorkdirError
from rramjax.paths import check_output_dir
from rramjax.train.metrics import DROPPED_PREFIX

CONFIG_FILE = "config.json"
RUN_MARKERS = (CONFIG_FILE, "metrics.jsonl", "summary.json", "checkpoints")
# Everything a run writes in its folder: what --overwrite removes (nothing else is touched).
RUN_OUTPUTS = (*RUN_MARKERS, "masks.npz", "mapping.json", "pattern_libraries.png")

# Config keys a resumed run may change, and why that is harmless: none of them changes a trained
# weight or a number already recorded in metrics.jsonl.
RESUMABLE_KEYS = {
    "train.log_every": "how often a metrics row is written",
    "train.eval_batch_size": "evaluation memory only (same accuracy, loss equal up to rounding)",
    "train.divergence_factor": "when a loss counts as diverged",
    "data.data_dir": "where the same data set is read from",
    "data.tfds_data_dir": "where the same data set is read from",
    "crossbar.eval_fidelity": "the hardware evaluation after training",
    "crossbar.eval_seeds": "the hardware evaluation after training",
    "crossbar.eval_limit": "the hardware evaluation after training",
    "crossbar.eval_read_noise_lsb": "the hardware evaluation after training",
    "crossbar.eval_bn_batches": "the hardware evaluation after training",
    "crossbar.backend": "which kernels compute the same planned crossbar (bit-exact outputs)",
}
_MISSING = object()


def default_workdir(name: str, variant: str | None = None) -> pathlib.Path:
  """`runs/<name>`, or `runs/<name>_<variant>` for a config variant.

  A name that already ends with `_<variant>` (a variant that renames the config) is not
  repeated: `fashion_mnist_small.py:wide`, named fashion_mnist_wide, goes to runs/fashion_mnist_wide.
  """
  if not variant or name.endswith(f"_{variant}"):
    return pathlib.Path("runs") / name
  return pathlib.Path("runs") / f"{name}_{variant}"


def run_files(workdir: str | os.PathLike) -> list[str]:
  """The RUN_MARKERS present in `workdir` (empty: the folder holds no run)."""
  workdir = pathlib.Path(workdir)
  return [name for name in RUN_MARKERS if os.path.lexists(workdir / name)]


def checkpoint_epochs(workdir: str | os.PathLike) -> list[int]:
  """Epochs with a committed checkpoint, oldest first (orbax writes into a temporary folder and
  renames it to the epoch number when the write is complete)."""
  folder = pathlib.Path(workdir) / "checkpoints"
  if not folder.is_dir():
    return []
  return sorted(int(p.name) for p in folder.iterdir() if p.name.isdigit() and p.is_dir())


def last_checkpoint(workdir: str | os.PathLike) -> pathlib.Path | None:
  epochs = checkpoint_epochs(workdir)
  return pathlib.Path(workdir) / "checkpoints" / str(epochs[-1]) if epochs else None


def where_it_stands(workdir: str | os.PathLike) -> str:
  """One sentence for a stopped run: the checkpoint to continue from, or that there is none."""
  last = last_checkpoint(workdir)
  if last is not None:
    return f"The last finished epoch is checkpointed in {str(last)!r}: continue with --resume."
  if run_files(workdir):
    return ("No epoch finished, so there is no checkpoint: start again with --overwrite (or a "
            "new --workdir).")
  return "Nothing was written yet: run the command again."


def _flatten(tree: dict, prefix: str = "") -> dict[str, Any]:
  out = {}
  for key, value in tree.items():
    if isinstance(value, dict) and value:
      out.update(_flatten(value, f"{prefix}{key}."))
    else:
      out[f"{prefix}{key}"] = value
  return out


def config_record(config: Config) -> dict:
  """The config as config.json stores it (tuples become lists)."""
  return json.loads(json.dumps(config.to_dict(), default=str))


def config_changes(config: Config, recorded: dict) -> dict[str, tuple[Any, Any]]:
  """Dotted keys whose value differs from the recorded config: {key: (recorded, now)}.

  A key missing from the record (written before the key existed) counts as its default.
  """
  new, old = _flatten(config_record(config)), _flatten(recorded)
  defaults = _flatten(config_record(from_dict({})))
  changes = {}
  for key in sorted(new.keys() | old.keys()):
    before = old.get(key, defaults.get(key, _MISSING))
    after = new.get(key, _MISSING)
    if before != after:
      changes[key] = (before, after)
  return changes


def _show(value) -> str:
  return "(absent)" if value is _MISSING else json.dumps(value)


def _read_recorded(path: pathlib.Path) -> dict:
  try:
    recorded = json.loads(path.read_text())
  except (OSError, ValueError) as e:
    raise ConfigError(f"{str(path)!r} cannot be read ({e}), so the run in that folder cannot be "
                      "checked against this config: pass a new --workdir, or --overwrite.") from e
  if not isinstance(recorded, dict):
    raise ConfigError(f"{str(path)!r} does not hold a config dict: pass a new --workdir, or "
                      "--overwrite.")
  return recorded


def check_resume(workdir: pathlib.Path, config: Config, warn: Callable[[str], Any]) -> None:
  """The resume contract: the same config (but RESUMABLE_KEYS) and a checkpoint to start from.

  Raises:
    ConfigError: the config differs from config.json in other keys (all of them are named).
    CheckpointError: no checkpoint in the folder.
  """
  path = workdir / CONFIG_FILE
  if path.exists():
    changes = config_changes(config, _read_recorded(path))
    blocking = {k: v for k, v in changes.items() if k not in RESUMABLE_KEYS}
    if blocking:
      listed = "; ".join(f"{k}: {_show(a)} -> {_show(b)}" for k, (a, b) in blocking.items())
      raise ConfigError(
          f"--resume continues the run recorded in {str(path)!r}, but this config differs in "
          f"{len(blocking)} key(s): {listed}. Resume with the recorded values, or start this "
          "config in a new --workdir (or --overwrite the old run).")
    if changes:
      warn(f"Resuming with changed {', '.join(changes)} (allowed: "
           f"{'; '.join(sorted(set(RESUMABLE_KEYS[k] for k in changes)))}).")
  else:
    warn(f"{str(workdir)!r} has no {CONFIG_FILE}: its checkpoint is resumed with this config, "
         "which is recorded once the checkpoint is restored.")
  if last_checkpoint(workdir) is None:
    raise CheckpointError(
        f"{str(workdir)!r} holds a run ({', '.join(run_files(workdir))}) but no checkpoint to "
        "resume from (no epoch finished, or checkpoints/ was removed): start it again with "
        "--overwrite, or use a new --workdir.")


def prepare(workdir: str | os.PathLike, config: Config, *, resume: bool, overwrite: bool,
            warn: Callable[[str], Any]) -> str:
  """Checks what a run may do with `workdir`; writes nothing.

  Args:
    workdir: the run folder (need not exist).
    config: the run's config.
    resume: continue the run in the folder (the resume contract applies).
    overwrite: replace the run in the folder (see `clear_run`).
    warn: called with notices (a new run on --resume, changed harmless keys).

  Returns:
    'new', 'resume' or 'overwrite' ('overwrite' only when the folder holds a run).

  Raises:
    WorkdirError: the folder cannot be written, or holds a run and neither flag is given.
    ConfigError, CheckpointError: see `check_resume`.
  """
  workdir = check_output_dir(workdir, "work directory")
  if resume and overwrite:
    raise WorkdirError("--resume and --overwrite exclude each other: --resume continues the run "
                       "in the folder, --overwrite replaces it.")
  found = run_files(workdir)
  if not found:
    if resume:
      warn(f"{str(workdir)!r} holds no run yet: --resume starts a new one there.")
    return "new"
  if overwrite:
    return "overwrite"
  if not resume:
    raise WorkdirError(
        f"{str(workdir)!r} already holds a run ({', '.join(found)}): continue it with --resume, "
        "or write this run to a fresh folder with --workdir NEW_FOLDER (--overwrite replaces the "
        "old run).")
  check_resume(workdir, config, warn)
  return "resume"


def clear_run(workdir: str | os.PathLike, warn: Callable[[str], Any]) -> list[str]:
  """Removes the previous run's files (RUN_OUTPUTS and set-aside metrics) and says which."""
  workdir = pathlib.Path(workdir)
  names = [n for n in RUN_OUTPUTS if os.path.lexists(workdir / n)]
  names += sorted(p.name for p in workdir.glob(f"{DROPPED_PREFIX}*.jsonl"))
  for name in names:
    path = workdir / name
    if path.is_dir() and not path.is_symlink():
      shutil.rmtree(path)
    else:
      path.unlink()
  if names:
    warn(f"--overwrite: removed the previous run's {', '.join(names)} from {str(workdir)!r}.")
  return names


def write_config(workdir: str | os.PathLike, config: Config) -> None:
  """Records the run's config in config.json (replaced whole, never half-written)."""
  path = pathlib.Path(workdir) / CONFIG_FILE
  tmp = path.with_name(CONFIG_FILE + ".tmp")
  tmp.write_text(json.dumps(config.to_dict(), indent=2, default=str))
  os.replace(tmp, path)

"""A run's masks for the mapper from its newest checkpoint, when the run has no masks.npz yet.

A finished run writes `masks.npz` itself; `rramjax map RUN_DIR` calls this only for an unfinished
one. The checkpoint is read through `Checkpointer` (checksums verified) and the run's settings
through its validated `config.json`.
"""

from __future__ import annotations

import pathlib

import numpy as np

from rramjax.data import IMAGE_SIDES
from rramjax.errors import CheckpointError
from rramjax.presets import PLANS, conv_output_sizes


def run_out_hw(config) -> np.ndarray:
  """`(L, 2)` output size of each 3x3 conv layer of a run's model on its (padded) images."""
  return np.asarray(conv_output_sizes(PLANS[config.model.name], config.data.pad_to or
                                      IMAGE_SIDES[config.data.name]))


def export_masks(workdir, out=None, epoch: int | None = None) -> pathlib.Path:
  """Writes the conv masks of a run's checkpoint (newest by default) to an `.npz` for the mapper.

  Args:
    workdir: a run folder (holds config.json and checkpoints/).
    out: output file (default `<workdir>/masks.npz`).
    epoch: which checkpoint (default: the newest).

  Returns:
    The file written (keys conv_00, conv_01, ... and out_hw).

  Raises:
    CheckpointError: no checkpoint in the folder, or one that is corrupt or unreadable.
    ConfigError: a missing or invalid config.json.
  """
  from rramjax import mapper  # pylint: disable=g-import-not-at-top
  from rramjax.mapper.cli import read_run_config  # pylint: disable=g-import-not-at-top
  from rramjax.train.checkpoint import Checkpointer  # pylint: disable=g-import-not-at-top
  workdir = pathlib.Path(workdir)
  config = read_run_config(workdir)
  if not (workdir / "checkpoints").is_dir():
    raise CheckpointError(f"{str(workdir)!r} has neither masks.npz nor checkpoints/: the run has not "
                          "finished an epoch yet; train first (rramjax run).")
  checkpointer = Checkpointer(workdir / "checkpoints")
  try:
    state, _ = checkpointer.restore(None, epoch)
  finally:
    checkpointer.close()
  if "masks" not in state:
    raise CheckpointError(f"The checkpoint in {str(workdir / 'checkpoints')!r} holds no masks.")
  out = pathlib.Path(out) if out else workdir / "masks.npz"
  mapper.save_masks(out, [np.asarray(m) for m in state["masks"]], run_out_hw(config))
  return out

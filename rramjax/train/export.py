"""Masks for the mapper from a run folder: its newest checkpoint (or its exported masks.npz)."""

from __future__ import annotations

import json
import pathlib

import numpy as np

from rramjax.errors import CheckpointError

NATIVE_SIDE = {"fashion_mnist": 28, "cifar10": 32, "cifar100": 32, "imagenet": 224}


def _out_hw(config) -> np.ndarray:
  from rramjax.models import conv_output_sizes, create_model  # pylint: disable=g-import-not-at-top
  side = config.data.pad_to or NATIVE_SIDE[config.data.name]
  channels = 1 if config.data.name == "fashion_mnist" else 3
  classes = {"fashion_mnist": 10, "cifar10": 10, "cifar100": 100, "imagenet": 1000}[config.data.name]
  model = create_model(config.model.name, num_classes=classes, in_channels=channels, input_size=side,
                       width=config.model.width, hidden=config.model.hidden)
  return np.asarray(conv_output_sizes(model.plan, side))


def export_masks(workdir, out=None, epoch: int | None = None) -> pathlib.Path:
  """Writes the conv masks of a run's checkpoint (newest by default) to an `.npz` for the mapper.

  Args:
    workdir: a run folder (holds config.json and checkpoints/).
    out: output file (default `<workdir>/masks.npz`).
    epoch: which checkpoint (default: the newest).

  Returns:
    The file written (keys conv_00, conv_01, ... and out_hw).

  Raises:
    CheckpointError: no config or checkpoint in the folder, or an unreadable checkpoint.
  """
  import orbax.checkpoint as ocp  # pylint: disable=g-import-not-at-top
  from rramjax import mapper  # pylint: disable=g-import-not-at-top
  from rramjax.config import from_dict  # pylint: disable=g-import-not-at-top
  workdir = pathlib.Path(workdir)
  config_file, ckpt_dir = workdir / "config.json", (workdir / "checkpoints").absolute()
  if not config_file.is_file() or not ckpt_dir.is_dir():
    raise CheckpointError(f"{str(workdir)!r} is not a run folder (it needs config.json and "
                          "checkpoints/); pass a run's --workdir or an .npz of masks.")
  values = json.loads(config_file.read_text())
  values["hardware"] = {k: v for k, v in values["hardware"].items()}
  config = from_dict(values)
  manager = ocp.CheckpointManager(ckpt_dir)
  try:  # the manager is closed on every path: its threads print tracebacks at exit otherwise
    epoch = manager.latest_step() if epoch is None else epoch
    if epoch is None:
      raise CheckpointError(f"No checkpoint in {str(ckpt_dir)!r}; train first (rramjax run).")
    state = manager.restore(epoch, args=ocp.args.Composite(state=ocp.args.StandardRestore())).state
    masks = [np.asarray(m) for m in state["masks"]]
  except CheckpointError:
    raise
  except Exception as e:  # damaged files raise many types
    raise CheckpointError(f"Checkpoint {str(ckpt_dir / str(epoch))!r} cannot be read "
                          f"({type(e).__name__}: {str(e)[:200]}); pick another with --epoch or "
                          "rerun the training.") from e
  finally:
    manager.close()
  out = pathlib.Path(out) if out else workdir / "masks.npz"
  mapper.save_masks(out, masks, _out_hw(config))
  return out

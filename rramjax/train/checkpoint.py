"""Orbax checkpoints of the whole training state, one per finished epoch."""

from __future__ import annotations

import pathlib
from typing import Any

import orbax.checkpoint as ocp
from orbax.checkpoint.checkpoint_managers import preservation_policy as pp

from rramjax.errors import CheckpointError


class Checkpointer:
  """Saves `{'state': pytree, 'meta': json}` per epoch; restores the newest into a template.

  Keeps the newest `max_to_keep` checkpoints and every epoch listed in `keep_epochs` (the ends
  of the phases, so that a pruned or hardware fine-tuning variant can branch from them).
  """

  def __init__(self, directory: str | pathlib.Path, max_to_keep: int = 2, keep_epochs=()):
    self.directory = pathlib.Path(directory).absolute()
    policy = pp.AnyPreservationPolicy([pp.LatestN(max_to_keep), pp.CustomSteps(list(keep_epochs))])
    self._manager = ocp.CheckpointManager(
        self.directory, options=ocp.CheckpointManagerOptions(preservation_policy=policy, create=True))

  def latest_epoch(self) -> int | None:
    return self._manager.latest_step()

  def save(self, epoch: int, state: Any, meta: dict):
    self._manager.save(epoch, args=ocp.args.Composite(
        state=ocp.args.StandardSave(state), meta=ocp.args.JsonSave(meta)), force=True)
    self._manager.wait_until_finished()

  def restore(self, template: Any, epoch: int | None = None) -> tuple[Any, dict]:
    """Restores a checkpoint into the structure of `template`.

    Raises:
      CheckpointError: no checkpoint, or one that cannot be read (corrupt, truncated, or
        written by a run with another configuration).
    """
    epoch = self.latest_epoch() if epoch is None else epoch
    if epoch is None:
      raise CheckpointError(f"No checkpoint in {str(self.directory)!r}: start without --resume.")
    try:
      out = self._manager.restore(epoch, args=ocp.args.Composite(
          state=ocp.args.StandardRestore(template), meta=ocp.args.JsonRestore()))
    except Exception as e:  # orbax raises many types for damaged files; report them as one
      raise CheckpointError(
          f"Checkpoint {str(self.directory / str(epoch))!r} cannot be restored "
          f"({type(e).__name__}: {str(e)[:300]}). It is corrupt or comes from another "
          "configuration: delete that folder to fall back to an earlier epoch, or start the "
          "run afresh without --resume.") from e
    return out.state, dict(out.meta)

  def close(self):
    self._manager.close()

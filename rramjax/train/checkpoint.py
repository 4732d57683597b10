"""Orbax checkpoints of the whole training state, one per finished epoch.

Each epoch's folder also holds `checksums.json` (SHA-256 of every file of its items), checked
before a restore: orbax restores a bit-flipped array silently, and a truncated file makes its
asynchronous readers print tracebacks after the error.

A save runs with SIGINT and SIGTERM held back (delivered as soon as it is complete): orbax
writes with background threads, and an interrupt that unwinds the main thread in the middle of
a write leaves them running into interpreter shutdown, where they fail ("cannot schedule new
futures after shutdown"), hang the exit for minutes, and crash the process (SIGSEGV) when a
second Ctrl-C cuts the shutdown short. An interrupted run therefore always ends on a complete
checkpoint or with the unfinished one abandoned (orbax's temporary folder, never renamed to an
epoch).

A restore reads the checkpoint's metadata first: entries whose shapes differ from the template's
(another configuration) are refused by name before any array is read, and the arrays are placed on
this process's first device, whatever devices wrote them (a run trained on two CPU devices restores
in a one-device process or on a GPU).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import pathlib
import signal
import threading
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import orbax.checkpoint as ocp
from orbax.checkpoint.checkpoint_managers import preservation_policy as pp

from rramjax.errors import CheckpointError

CHECKSUMS = "checksums.json"
_WHAT_TO_DO = ("Delete that folder to fall back to an earlier epoch, or start the run afresh with "
               "--overwrite (or in a new --workdir).")


def _digests(folder: pathlib.Path) -> dict[str, str]:
  """SHA-256 of every file of the orbax items (subfolders) of one epoch's folder."""
  out = {}
  for path in sorted(folder.rglob("*")):
    if path.is_file() and path.parent != folder:
      with path.open("rb") as f:
        out[path.relative_to(folder).as_posix()] = hashlib.file_digest(f, "sha256").hexdigest()
  return out


@contextlib.contextmanager
def signals_held(signums=(signal.SIGINT, signal.SIGTERM)):
  """Holds back `signums` inside the block and delivers them (once each) when it ends.

  Only the main thread receives signals; elsewhere, and for handlers not set from Python, the
  block runs unchanged.
  """
  if threading.current_thread() is not threading.main_thread():
    yield
    return
  received = []
  previous = {s: signal.getsignal(s) for s in signums}
  previous = {s: h for s, h in previous.items() if h is not None}
  for s in previous:
    signal.signal(s, lambda signum, frame: received.append(signum))
  try:
    yield
  finally:
    for s, handler in previous.items():
      signal.signal(s, handler)
    for s in dict.fromkeys(received):
      signal.raise_signal(s)


def _path(keys) -> str:
  """A leaf's path as `a.b.0`: orbax stores integer dict keys as strings."""
  return ".".join(str(getattr(k, "key", getattr(k, "idx", getattr(k, "name", k)))) for k in keys)


def _on_first_device(template: Any) -> Any:
  """`template` as abstract arrays on this process's first device.

  A leaf without a sharding would be restored onto the devices the checkpoint was written from,
  which fails when their count differs (a run trained on two CPU devices, read by a process with
  one, or on a GPU); the restored state is placed on the run's mesh afterwards anyway.
  """
  sharding = jax.sharding.SingleDeviceSharding(jax.local_devices()[0])
  return jax.tree_util.tree_map(
      lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=sharding)
      if hasattr(x, "shape") and hasattr(x, "dtype") else x, template)


class Checkpointer:
  """Saves `{'state': pytree, 'meta': json}` per epoch; restores the newest into a template.

  Keeps the newest `max_to_keep` checkpoints and every epoch listed in `keep_epochs` (the ends
  of the phases, so that a pruned or hardware fine-tuning variant can branch from them).
  """

  def __init__(self, directory: str | pathlib.Path, max_to_keep: int = 2, keep_epochs=()):
    self.directory = pathlib.Path(directory).absolute()
    policy = pp.AnyPreservationPolicy([pp.LatestN(max_to_keep), pp.CustomSteps(list(keep_epochs))])
    self._manager = ocp.CheckpointManager(
        self.directory, options=ocp.CheckpointManagerOptions(preservation_policy=policy, create=True),
        item_handlers={"state": ocp.StandardCheckpointHandler(), "meta": ocp.JsonCheckpointHandler()})

  def latest_epoch(self) -> int | None:
    return self._manager.latest_step()

  def save(self, epoch: int, state: Any, meta: dict):
    """Writes epoch's checkpoint and its checksums; returns when both are on disk.

    SIGINT/SIGTERM arriving meanwhile take effect when the save is complete (`signals_held`).
    """
    with signals_held():
      self._manager.save(epoch, args=ocp.args.Composite(
          state=ocp.args.StandardSave(state), meta=ocp.args.JsonSave(meta)), force=True)
      self._manager.wait_until_finished()
      folder = self.directory / str(epoch)
      tmp = folder / (CHECKSUMS + ".tmp")
      tmp.write_text(json.dumps(_digests(folder), indent=0))
      os.replace(tmp, folder / CHECKSUMS)

  def all_epochs(self) -> list[int]:
    return list(self._manager.all_steps())

  def verify(self, epoch: int):
    """Raises CheckpointError if a file of epoch's checkpoint is missing or changed since saving.

    A checkpoint without checksums (the run was killed just after orbax committed it) passes.
    """
    folder = self.directory / str(epoch)
    try:
      expected = json.loads((folder / CHECKSUMS).read_text())
    except FileNotFoundError:
      return
    except (OSError, ValueError) as e:
      raise CheckpointError(f"Checkpoint {str(folder)!r} has an unreadable {CHECKSUMS} ({e}). "
                            f"{_WHAT_TO_DO}") from e
    found = _digests(folder)
    bad = sorted(k for k, v in expected.items() if found.get(k) != v)
    if bad:
      raise CheckpointError(
          f"Checkpoint {str(folder)!r} is corrupt: {len(bad)} file(s) missing or changed since it "
          f"was saved ({', '.join(bad[:3])}{', ...' if len(bad) > 3 else ''}). {_WHAT_TO_DO}")

  def restore(self, template: Any, epoch: int | None = None) -> tuple[Any, dict]:
    """Restores a checkpoint into the structure of `template`.

    Raises:
      CheckpointError: no checkpoint, or one that cannot be read (corrupt, truncated, or
        written by a run with another configuration).
    """
    epoch = self.latest_epoch() if epoch is None else epoch
    if epoch is None:
      raise CheckpointError(f"No checkpoint in {str(self.directory)!r}: start afresh with --overwrite.")
    self.verify(epoch)
    stored = self._stored_tree(epoch)
    if template is None:  # whatever the checkpoint holds, shaped as its metadata says
      template = stored
    elif stored is not None:
      self._check_structure(epoch, stored, template)
    try:
      out = self._manager.restore(epoch, args=ocp.args.Composite(
          state=ocp.args.StandardRestore(_on_first_device(template)), meta=ocp.args.JsonRestore()))
    except Exception as e:  # orbax raises many types for damaged files; report them as one
      raise CheckpointError(
          f"Checkpoint {str(self.directory / str(epoch))!r} cannot be restored "
          f"({type(e).__name__}: {str(e)[:300]}). It is corrupt or comes from another "
          f"configuration. {_WHAT_TO_DO}") from e
    # Orbax returns arrays "committed" to a device; jitted steps would then compile a second
    # executable (not the uninterrupted run's). Uncommitted copies behave like a fresh run's state.
    state = jax.tree_util.tree_map(lambda x: jnp.asarray(np.asarray(x)), out.state)
    return state, dict(out.meta)

  def _stored_tree(self, epoch: int) -> Any:
    """The checkpoint's state as abstract arrays (None if its metadata cannot be read: the
    restore then reports the damage)."""
    try:
      stored = self._manager.item_metadata(epoch)["state"]
      return jax.tree_util.tree_map(lambda m: jax.ShapeDtypeStruct(tuple(m.shape), m.dtype), stored)
    except Exception:  # pylint: disable=broad-except
      return None

  def _check_structure(self, epoch: int, stored: Any, template: Any):
    """Raises CheckpointError naming the entries whose shapes differ between the checkpoint
    (`stored`, from its metadata) and `template` (a run of another configuration, e.g. another
    library size), before any array is read: a failed read leaves orbax's other readers running
    into the interpreter's exit."""
    stored, wanted = ({_path(k): tuple(v.shape) if hasattr(v, "shape") else np.shape(v)
                       for k, v in jax.tree_util.tree_leaves_with_path(tree)}
                      for tree in (stored, template))
    differ = [f"{k} {stored[k]} in the checkpoint, {wanted[k]} here" for k in wanted
              if k in stored and stored[k] != wanted[k]]
    differ += [f"{k} missing from the checkpoint" for k in wanted if k not in stored]
    differ += [f"{k} in the checkpoint only" for k in stored if k not in wanted]
    if differ:
      raise CheckpointError(
          f"Checkpoint {str(self.directory / str(epoch))!r} comes from another configuration: "
          f"{'; '.join(differ[:3])}{'; ...' if len(differ) > 3 else ''}. Resume with the config "
          f"that wrote it, or start the run afresh with --overwrite (or in a new --workdir).")

  def close(self):
    """Waits for any write in flight and stops orbax's threads (call it on every exit path)."""
    self._manager.close()

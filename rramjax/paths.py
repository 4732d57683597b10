"""Output folders checked before anything is written into them (standard library only).

Used by `rramjax run --workdir` and `rramjax map --out`, so that a folder that is a file, lies
under a file or cannot be written is a one-line error at once, not a traceback after the work.
"""

from __future__ import annotations

import os
import pathlib
import tempfile

from rramjax.errors import WorkdirError


def _nearest_existing(path: pathlib.Path) -> pathlib.Path:
  """`path` or its closest ancestor that exists (as anything: a folder, a file, a link)."""
  for candidate in (path, *path.parents):
    if os.path.lexists(candidate):
      return candidate
  return pathlib.Path(path.anchor or ".")


def _writable(folder: pathlib.Path) -> str | None:
  """None if a file can be created in `folder`, else the reason (the OS's message).

  A probe rather than `os.access`: access() says yes to root on read-only or virtual file
  systems (sysfs, procfs) where creating a file fails. The probe file is anonymous or deleted
  at once, so nothing stays behind.
  """
  try:
    with tempfile.TemporaryFile(dir=folder):
      return None
  except OSError as e:
    return e.strerror or str(e)


def check_output_dir(path: str | os.PathLike, what: str) -> pathlib.Path:
  """Checks that `path` is a folder that can be written, or can be created as one.

  Writes nothing lasting: a missing folder is not created here.

  Args:
    path: the folder.
    what: how the message names it, e.g. "--workdir" or "--out".

  Returns:
    `path` as a pathlib.Path.

  Raises:
    WorkdirError: `path` is a file, lies under a file, or cannot be written or created.
  """
  path = pathlib.Path(path)
  found = _nearest_existing(path)
  if not found.is_dir():
    if found == path:
      raise WorkdirError(f"{what} {str(path)!r} is a file, not a folder: pass a folder "
                         "(a new one is created).")
    raise WorkdirError(f"{what} {str(path)!r} lies under {str(found)!r}, which is a file, not a "
                       "folder: pass a folder elsewhere.")
  reason = _writable(found)
  if reason:
    where = "cannot be written" if found == path else f"cannot be created in {str(found)!r}"
    raise WorkdirError(f"{what} {str(path)!r} {where} ({reason}): pass a folder you can write "
                       "to, or fix its permissions.")
  return path

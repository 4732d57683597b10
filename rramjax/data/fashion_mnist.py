"""Fashion-MNIST from IDX files (Debian's `dataset-fashion-mnist` package).

The IDX format (LeCun et al.): a big-endian header `0x00 0x00 <dtype> <ndim>` followed by `ndim`
uint32 sizes and the raw data. Images have magic 2051 (uint8, 3 dims), labels 2049 (uint8, 1 dim).

References:
  Xiao, Rasul, Vollgraf, "Fashion-MNIST", arXiv:1708.07747.
"""

from __future__ import annotations

import gzip
import os
import pathlib
import zlib

import numpy as np

from rramjax.errors import DataError

DEFAULT_DIR = "/usr/share/datasets/fashion-mnist"
ENV_VAR = "RRAMJAX_FASHION_MNIST_DIR"
NUM_CLASSES = 10
_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
_HOW_TO_GET = (
    "Install Debian's package (`apt-get install -y dataset-fashion-mnist`, which puts the IDX files in "
    f"{DEFAULT_DIR}), or point the config key data.data_dir or the environment variable {ENV_VAR} "
    "at a folder holding train-images-idx3-ubyte(.gz), train-labels-idx1-ubyte(.gz), "
    "t10k-images-idx3-ubyte(.gz) and t10k-labels-idx1-ubyte(.gz).")


def resolve_dir(data_dir: str | os.PathLike | None = None) -> pathlib.Path:
  """The folder to read: the argument, else $RRAMJAX_FASHION_MNIST_DIR, else Debian's folder."""
  path = pathlib.Path(data_dir or os.environ.get(ENV_VAR) or DEFAULT_DIR)
  if not path.is_dir():
    raise DataError(f"Fashion-MNIST folder {str(path)!r} does not exist. {_HOW_TO_GET}")
  return path


def _find(folder: pathlib.Path, stem: str) -> pathlib.Path:
  for name in (stem, stem + ".gz"):
    if (folder / name).is_file():
      return folder / name
  raise DataError(f"Fashion-MNIST file {stem}(.gz) is missing from {str(folder)!r}. {_HOW_TO_GET}")


def _read_bytes(path: pathlib.Path) -> bytes:
  try:
    if path.suffix == ".gz":
      with gzip.open(path, "rb") as f:
        return f.read()
    return path.read_bytes()
  except (OSError, EOFError, gzip.BadGzipFile, zlib.error) as e:  # zlib: corrupt deflate data
    raise DataError(f"Cannot read {str(path)!r} ({type(e).__name__}: {e}); the file is corrupt or "
                    "truncated. Reinstall it (`apt-get install --reinstall dataset-fashion-mnist` "
                    f"for Debian's folder) or replace it. {_HOW_TO_GET}") from e


def read_idx(path: str | os.PathLike, *, magic: int, ndim: int) -> np.ndarray:
  """Reads one uint8 IDX file, checking its magic number, rank and length.

  Args:
    path: the file (plain or gzip-compressed).
    magic: expected magic number (2051 for images, 2049 for labels).
    ndim: expected number of dimensions.

  Returns:
    The uint8 array with the shape the header declares.
  """
  path = pathlib.Path(path)
  raw = _read_bytes(path)
  header = 4 + 4 * ndim
  if len(raw) < header:
    raise DataError(f"{str(path)!r} is truncated: {len(raw)} bytes, shorter than its IDX header.")
  found = int.from_bytes(raw[:4], "big")
  if found != magic:
    raise DataError(f"{str(path)!r} has IDX magic number {found}, expected {magic}: "
                    "not the expected Fashion-MNIST file, or corrupt.")
  shape = tuple(int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
  expected = header + int(np.prod(shape))
  if len(raw) != expected:
    raise DataError(f"{str(path)!r} holds {len(raw)} bytes but its header {shape} needs {expected}: "
                    "the file is truncated or corrupt. Reinstall it.")
  return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(shape)


def load_split(split: str, data_dir=None) -> tuple[np.ndarray, np.ndarray]:
  """Loads one split as (images uint8 [N, 28, 28, 1], labels int32 [N]), fully validated."""
  if split not in _FILES:
    raise DataError(f"Unknown Fashion-MNIST split {split!r}; use one of {sorted(_FILES)}.")
  folder = resolve_dir(data_dir)
  image_stem, label_stem = _FILES[split]
  images = read_idx(_find(folder, image_stem), magic=2051, ndim=3)
  labels = read_idx(_find(folder, label_stem), magic=2049, ndim=1)
  if images.shape[1:] != (28, 28):
    raise DataError(f"Fashion-MNIST {split} images have shape {images.shape[1:]}, expected (28, 28).")
  if images.shape[0] != labels.shape[0]:
    raise DataError(f"Fashion-MNIST {split}: {images.shape[0]} images but {labels.shape[0]} labels.")
  if labels.max(initial=0) >= NUM_CLASSES:
    raise DataError(f"Fashion-MNIST {split} labels reach {int(labels.max())}, outside 0..9: "
                    "the label file is corrupt.")
  return images[..., None], labels.astype(np.int32)

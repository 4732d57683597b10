"""The paper's CIFAR-10 and CIFAR-100 through tensorflow-datasets.

Only prepared data is read: `download=False, try_gcs=False`, so a missing data set fails in well
under a second with instructions instead of retrying the network for minutes.
"""

from __future__ import annotations

import numpy as np

from rramjax.errors import DataError

TFDS_NAMES = {"cifar10": "cifar10", "cifar100": "cifar100"}
NUM_CLASSES = {"cifar10": 10, "cifar100": 100}
_SPLITS = ("train", "test")


def _import_tfds():
  try:
    import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  except ImportError as e:
    raise DataError("The CIFAR data sets need tensorflow-datasets: "
                    "`pip install 'rramjax[tfds]'`.") from e
  return tfds


def _how_to_prepare(name: str, data_dir) -> str:
  where = data_dir or "~/tensorflow_datasets (or $TFDS_DATA_DIR)"
  return (f"Prepare it on a machine with network: `tfds build {TFDS_NAMES[name]} --data_dir DIR`, "
          f"then copy DIR here and set the config key data.tfds_data_dir (now {where}).")


def load(name: str, split: str, data_dir=None) -> tuple[np.ndarray, np.ndarray]:
  """Loads a prepared tfds data set split into memory.

  Args:
    name: 'cifar10' or 'cifar100'.
    split: 'train' or 'test'.
    data_dir: tfds data folder (None: tfds' default).

  Returns:
    (images uint8 NHWC, labels int32).
  """
  if name not in TFDS_NAMES:
    raise DataError(f"Unknown tfds data set {name!r}; use one of {sorted(TFDS_NAMES)}.")
  if split not in _SPLITS:
    raise DataError(f"Unknown split {split!r} of {name!r}; use one of {_SPLITS}.")
  tfds = _import_tfds()
  try:
    ds = tfds.load(TFDS_NAMES[name], split=split, data_dir=data_dir, download=False,
                   try_gcs=False, as_supervised=True, shuffle_files=False)
  except (AssertionError, FileNotFoundError, tfds.core.registered.DatasetNotFoundError) as e:
    raise DataError(f"Data set {name!r} ({split}) is not prepared here: {e}. "
                    f"{_how_to_prepare(name, data_dir)}") from e
  images, labels = [], []
  for image, label in tfds.as_numpy(ds):
    images.append(image)
    labels.append(label)
  if not images:
    raise DataError(f"Data set {name!r} ({split}) is empty. {_how_to_prepare(name, data_dir)}")
  return np.stack(images).astype(np.uint8), np.asarray(labels, np.int32)

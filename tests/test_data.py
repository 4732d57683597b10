"""Data: Fashion-MNIST IDX reading and its errors, the tfds guard, and the input pipeline."""

import gzip
import pathlib
import sys
import time

import numpy as np
import pytest

from rramjax import data
from rramjax.data import fashion_mnist, pipeline
from rramjax.errors import DataError

IMAGES_MAGIC, LABELS_MAGIC = 2051, 2049


def idx_bytes(array: np.ndarray, magic: int) -> bytes:
  header = magic.to_bytes(4, "big") + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
  return header + np.ascontiguousarray(array, np.uint8).tobytes()


def write_file(path: pathlib.Path, raw: bytes, gz: bool = True) -> pathlib.Path:
  path = path.with_name(path.name + ".gz") if gz else path
  path.write_bytes(gzip.compress(raw) if gz else raw)
  return path


def write_fake_set(folder: pathlib.Path, n_train=12, n_test=6, gz=True, seed=0):
  """A tiny but valid Fashion-MNIST folder; returns {split: (images, labels)} as written."""
  rng = np.random.default_rng(seed)
  folder.mkdir(parents=True, exist_ok=True)
  written = {}
  for split, n in (("train", n_train), ("test", n_test)):
    images = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
    labels = rng.integers(0, 10, size=(n,), dtype=np.uint8)
    image_stem, label_stem = fashion_mnist._FILES[split]  # pylint: disable=protected-access
    write_file(folder / image_stem, idx_bytes(images, IMAGES_MAGIC), gz)
    write_file(folder / label_stem, idx_bytes(labels, LABELS_MAGIC), gz)
    written[split] = (images, labels)
  return written


@pytest.fixture
def fake_dir(tmp_path):
  folder = tmp_path / "fmnist"
  return folder, write_fake_set(folder)


# Fashion-MNIST files ---------------------------------------------------------------------------
@pytest.mark.parametrize("gz", [True, False], ids=["gz", "plain"])
def test_valid_fake_set_loads_with_shapes_and_dtypes(tmp_path, gz):
  written = write_fake_set(tmp_path, n_train=12, n_test=6, gz=gz)
  for split, n in (("train", 12), ("test", 6)):
    ds = data.load_dataset("fashion_mnist", split, data_dir=tmp_path)
    assert ds.images.shape == (n, 28, 28, 1) and ds.images.dtype == np.uint8
    assert ds.labels.shape == (n,) and ds.labels.dtype == np.int32
    assert ds.num_classes == 10 and len(ds) == n
    np.testing.assert_array_equal(ds.images[..., 0], written[split][0])
    np.testing.assert_array_equal(ds.labels, written[split][1])


def test_missing_data_dir_says_how_to_get_the_data(tmp_path):
  missing = tmp_path / "no-such-folder"
  with pytest.raises(DataError) as e:
    data.load_dataset("fashion_mnist", "train", data_dir=missing)
  msg = str(e.value)
  assert str(missing) in msg
  assert "apt-get install -y dataset-fashion-mnist" in msg
  assert fashion_mnist.ENV_VAR in msg and "data.data_dir" in msg


def test_missing_dir_from_env_var_is_named(tmp_path, monkeypatch):
  missing = tmp_path / "env-folder"
  monkeypatch.setenv(fashion_mnist.ENV_VAR, str(missing))
  with pytest.raises(DataError, match="dataset-fashion-mnist") as e:
    data.load_dataset("fashion_mnist", "test")
  assert str(missing) in str(e.value)


def test_env_var_overrides_default_dir_and_argument_overrides_env(tmp_path, monkeypatch):
  write_fake_set(tmp_path / "a", n_train=7)
  write_fake_set(tmp_path / "b", n_train=9)
  monkeypatch.setenv(fashion_mnist.ENV_VAR, str(tmp_path / "a"))
  assert fashion_mnist.resolve_dir() == tmp_path / "a"
  assert len(data.load_dataset("fashion_mnist", "train")) == 7
  assert len(data.load_dataset("fashion_mnist", "train", data_dir=tmp_path / "b")) == 9
  monkeypatch.delenv(fashion_mnist.ENV_VAR)
  assert fashion_mnist.resolve_dir(tmp_path / "b") == tmp_path / "b"


def test_missing_file_names_the_file(fake_dir):
  folder, _ = fake_dir
  (folder / "train-labels-idx1-ubyte.gz").unlink()
  with pytest.raises(DataError, match="train-labels-idx1-ubyte") as e:
    data.load_dataset("fashion_mnist", "train", data_dir=folder)
  assert "dataset-fashion-mnist" in str(e.value)


def test_bad_magic_is_reported(fake_dir):
  folder, _ = fake_dir
  labels = np.zeros((6, 28, 28), np.uint8)  # an image-shaped file carrying the labels' magic
  write_file(folder / "t10k-images-idx3-ubyte", idx_bytes(labels, LABELS_MAGIC))
  with pytest.raises(DataError, match="magic number 2049, expected 2051") as e:
    data.load_dataset("fashion_mnist", "test", data_dir=folder)
  assert "t10k-images-idx3-ubyte" in str(e.value)


def test_truncated_idx_payload_is_reported(fake_dir):
  folder, written = fake_dir
  raw = idx_bytes(written["train"][0], IMAGES_MAGIC)
  path = write_file(folder / "train-images-idx3-ubyte", raw[: len(raw) - 100])
  with pytest.raises(DataError, match="truncated or corrupt") as e:
    data.load_dataset("fashion_mnist", "train", data_dir=folder)
  assert str(path) in str(e.value) and "(12, 28, 28)" in str(e.value)


def test_truncated_idx_header_is_reported(fake_dir):
  folder, _ = fake_dir
  write_file(folder / "train-labels-idx1-ubyte", LABELS_MAGIC.to_bytes(4, "big")[:3])
  with pytest.raises(DataError, match="shorter than its IDX header"):
    data.load_dataset("fashion_mnist", "train", data_dir=folder)


def test_truncated_gzip_stream_is_reported(fake_dir):
  folder, _ = fake_dir
  path = folder / "train-images-idx3-ubyte.gz"
  path.write_bytes(path.read_bytes()[:200])
  with pytest.raises(DataError, match="corrupt or truncated") as e:
    data.load_dataset("fashion_mnist", "train", data_dir=folder)
  assert str(path) in str(e.value) and "Reinstall" in str(e.value)


def test_corrupt_deflate_data_is_a_data_error(fake_dir):
  """A broken deflate block raises zlib.error inside gzip, not OSError: it is reported the same way."""
  folder, _ = fake_dir
  path = folder / "train-images-idx3-ubyte.gz"
  raw = bytearray(path.read_bytes())
  raw[10] = 0xFF  # the first deflate block header (after gzip's 10-byte header): an invalid type
  path.write_bytes(bytes(raw))
  with pytest.raises(DataError, match="corrupt or truncated") as e:
    data.load_dataset("fashion_mnist", "train", data_dir=folder)
  assert str(path) in str(e.value) and "invalid block type" in str(e.value)
  assert "--reinstall dataset-fashion-mnist" in str(e.value)


def test_labels_out_of_range_are_reported(fake_dir):
  folder, _ = fake_dir
  write_file(folder / "t10k-labels-idx1-ubyte", idx_bytes(np.array([0, 1, 2, 3, 4, 10]), LABELS_MAGIC))
  with pytest.raises(DataError, match=r"labels reach 10, outside 0\.\.9"):
    data.load_dataset("fashion_mnist", "test", data_dir=folder)


def test_image_label_count_mismatch_is_reported(fake_dir):
  folder, _ = fake_dir
  write_file(folder / "t10k-labels-idx1-ubyte", idx_bytes(np.zeros(5), LABELS_MAGIC))
  with pytest.raises(DataError, match="6 images but 5 labels"):
    data.load_dataset("fashion_mnist", "test", data_dir=folder)


def test_unknown_split_and_data_set_are_reported(fake_dir):
  folder, _ = fake_dir
  with pytest.raises(DataError, match="Unknown Fashion-MNIST split 'valid'"):
    data.load_dataset("fashion_mnist", "valid", data_dir=folder)
  with pytest.raises(DataError, match="Unknown data set 'mnist'.*fashion_mnist"):
    data.load_dataset("mnist", "train")
  with pytest.raises(DataError, match="Unknown data set 'imagenet'"):  # not supported: see README
    data.load_dataset("imagenet", "train")
  with pytest.raises(DataError, match="Unknown split 'validation'"):
    data.load_dataset("cifar10", "validation")


@pytest.mark.skipif(not pathlib.Path(fashion_mnist.DEFAULT_DIR).is_dir(),
                    reason="dataset-fashion-mnist is not installed")
def test_real_fashion_mnist_test_split(monkeypatch):
  monkeypatch.delenv(fashion_mnist.ENV_VAR, raising=False)
  ds = data.load_dataset("fashion_mnist", "test")
  assert ds.images.shape == (10000, 28, 28, 1) and ds.images.dtype == np.uint8
  np.testing.assert_array_equal(np.bincount(ds.labels), np.full(10, 1000))


# tensorflow-datasets ---------------------------------------------------------------------------
def test_tfds_not_installed_says_how_to_install(monkeypatch):
  monkeypatch.setitem(sys.modules, "tensorflow_datasets", None)  # makes the import fail
  with pytest.raises(DataError, match=r"pip install 'rramjax\[tfds\]'"):
    data.load_dataset("cifar10", "train")


def test_tfds_missing_data_set_fails_fast_with_instructions(tmp_path):
  pytest.importorskip("tensorflow_datasets")
  start = time.monotonic()
  with pytest.raises(DataError) as e:
    data.load_dataset("cifar10", "train", tfds_data_dir=tmp_path)
  elapsed = time.monotonic() - start
  assert elapsed < 5, f"a missing data set took {elapsed:.1f} s to fail (network retries?)"
  msg = str(e.value)
  assert "'cifar10' (train) is not prepared" in msg
  assert "tfds build cifar10" in msg and str(tmp_path) in msg and "data.tfds_data_dir" in msg


def test_tfds_mock_data_loads_through_load_dataset():
  tfds = pytest.importorskip("tensorflow_datasets")
  with tfds.testing.mock_data(num_examples=6):
    ds = data.load_dataset("cifar10", "train")
    ds100 = data.load_dataset("cifar100", "test")
  assert ds.images.shape == (6, 32, 32, 3) and ds.images.dtype == np.uint8
  assert ds.labels.shape == (6,) and ds.labels.dtype == np.int32
  assert ds.num_classes == 10 and ds.labels.min() >= 0 and ds.labels.max() < 10
  assert ds100.images.shape == (6, 32, 32, 3) and ds100.num_classes == 100
  assert ds100.labels.max() < 100
  # and the pipeline takes it: 6 examples, batch 4, remainder dropped, standard normalisation.
  (x, y), = pipeline.batches(ds, 4, seed=0, epoch=0, shuffle=True, norm="standard")
  assert x.shape == (4, 32, 32, 3) and x.dtype == np.float32 and y.shape == (4,)


# Pipeline --------------------------------------------------------------------------------------
def _toy(n=50, side=28, seed=0) -> pipeline.ArrayDataset:
  rng = np.random.default_rng(seed)
  images = rng.integers(0, 256, size=(n, side, side, 1), dtype=np.uint8)
  return pipeline.ArrayDataset("fashion_mnist", images, np.arange(n, dtype=np.int32) % 10, 10)


def _labels_of(ds, **kw):
  # The toy labels are i % 10: use the image bytes to identify examples instead.
  keys = {ds.images[i].tobytes(): i for i in range(len(ds))}
  return [[keys[(np.round(img * 255).astype(np.uint8)).tobytes()] for img in x]
          for x, _ in pipeline.batches(ds, **kw)]


def test_epoch_order_is_a_function_of_seed_and_epoch():
  a = pipeline.epoch_order(3, 1, 100)
  np.testing.assert_array_equal(a, pipeline.epoch_order(3, 1, 100))
  np.testing.assert_array_equal(np.sort(a), np.arange(100))
  assert not np.array_equal(a, pipeline.epoch_order(3, 2, 100))
  assert not np.array_equal(a, pipeline.epoch_order(4, 1, 100))


def test_shuffled_batches_are_deterministic_per_epoch_and_differ_across_epochs():
  ds = _toy()
  kw = dict(batch_size=8, seed=1, shuffle=True)
  e0 = _labels_of(ds, epoch=0, **kw)
  assert e0 == _labels_of(ds, epoch=0, **kw)
  e1 = _labels_of(ds, epoch=1, **kw)
  assert e0 != e1
  assert len(e0) == 6 and all(len(b) == 8 for b in e0)  # 50 // 8 batches, remainder dropped
  assert len(set(sum(e0, []))) == 48                     # no example twice in an epoch
  ordered = _labels_of(ds, epoch=5, batch_size=8, seed=1, shuffle=False, drop_remainder=False)
  assert sum(ordered, []) == list(range(50)) and len(ordered[-1]) == 2


def test_padding_28_to_32_and_unit_normalisation():
  ds = _toy(n=8)
  (x, y), = pipeline.batches(ds, 8, seed=0, epoch=0, shuffle=False, pad_to=32)
  assert x.shape == (8, 32, 32, 1) and x.dtype == np.float32
  np.testing.assert_array_equal(y, ds.labels)
  np.testing.assert_allclose(x[:, 2:30, 2:30], ds.images / 255.0, rtol=1e-6)
  border = np.ones((32, 32), bool)
  border[2:30, 2:30] = False
  assert np.all(x[:, border] == 0)
  assert x.min() >= 0 and x.max() <= 1
  with pytest.raises(DataError, match="Cannot pad"):
    pipeline.pad_images(ds.images, 20)


def test_standard_normalisation_uses_data_set_statistics():
  images = np.full((2, 4, 4, 1), 255, np.uint8)
  x = pipeline.normalize(images, "fashion_mnist", "standard")
  np.testing.assert_allclose(x, (1.0 - 0.2860) / 0.3530, rtol=1e-6)


def test_crop_flip_is_seeded_and_keeps_shapes():
  ds = _toy(n=16)
  kw = dict(batch_size=8, seed=2, epoch=3, shuffle=True, augment="crop_flip", pad_to=32)
  first = [x for x, _ in pipeline.batches(ds, **kw)]
  second = [x for x, _ in pipeline.batches(ds, **kw)]
  assert first[0].shape == (8, 32, 32, 1)
  np.testing.assert_array_equal(np.stack(first), np.stack(second))
  plain = [x for x, _ in pipeline.batches(ds, **{**kw, "augment": "none"})]
  assert not np.array_equal(np.stack(first), np.stack(plain))


def test_device_data_batches_equal_host_batches():
  ds = _toy(n=40)
  device = pipeline.DeviceData(ds, pad_to=32, norm="unit")
  for epoch in (0, 1):
    host = list(pipeline.batches(ds, 16, seed=7, epoch=epoch, shuffle=True, pad_to=32))
    dev = list(device.batches(16, seed=7, epoch=epoch, shuffle=True))
    assert len(host) == len(dev) == 2
    for (hx, hy), (dx, dy) in zip(host, dev):
      np.testing.assert_array_equal(np.asarray(dx), hx)
      np.testing.assert_array_equal(np.asarray(dy), hy)

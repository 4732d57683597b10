"""The paper's VGG16 configs run end to end on mock data: CIFAR through tfds.testing.mock_data,
Fashion-MNIST as a tiny in-memory set handed to the pipeline.

Their `:smoke` variants, shrunk further to what a 2-core CPU compiles in well under a minute:
one-shot pruning of the initial weights (no dense or ADMM epoch: the fashion_mnist_small smoke
runs exercise those phases), one masked fine-tuning epoch of 2 steps, the ideal evaluation. What
is tested is what the VGG16 configs add: 13 conv layers with the paper's per-layer pattern counts
and sparsity, the data sets' shapes and classes, padding to 32x32, and the mapping of 13 layers.
"""

import json

import numpy as np
import orbax.checkpoint as ocp
import pytest

from conftest import ROOT
from rramjax import data
from rramjax.config import load_config
from rramjax.presets import PAPER
from rramjax.train import train_and_evaluate

FAST = ("train.pretrain_epochs=0", "train.admm_epochs=0", "train.hwtune_epochs=0",
        "crossbar.eval_fidelity=ideal", "crossbar.eval_read_noise_lsb=[]")
EXAMPLES = 64  # per split: 2 steps of the smoke batch (32)


def _tiny_fashion_mnist() -> data.Splits:
  rng = np.random.default_rng(0)

  def split(n):
    images = rng.integers(0, 256, (n, 28, 28, 1), dtype=np.uint8)
    return data.ArrayDataset("fashion_mnist", images, rng.integers(0, 10, n).astype(np.int32), 10)

  return data.Splits(split(EXAMPLES), split(EXAMPLES // 2))


def _run(name, workdir):
  config = load_config(str(ROOT / "configs" / f"vgg16_{name}.py:smoke"), list(FAST))
  quiet = lambda *_: None
  if name == "fashion_mnist":
    return config, train_and_evaluate(config, workdir, progress=False, log=quiet,
                                      datasets=_tiny_fashion_mnist())
  tfds = pytest.importorskip("tensorflow_datasets")
  with tfds.testing.mock_data(num_examples=EXAMPLES):
    return config, train_and_evaluate(config, workdir, progress=False, log=quiet)


@pytest.mark.slow
@pytest.mark.parametrize("name, classes, paper", [
    ("cifar10", 10, "cifar10"), ("cifar100", 100, "cifar100"), ("fashion_mnist", 10, "cifar10")])
def test_vgg16_smoke_config_runs_end_to_end(name, classes, paper, tmp_path):
  config, summary = _run(name, tmp_path)
  patterns, sparsity = PAPER[paper]
  assert config.model.name == "vgg16" and config.prune.patterns_per_layer == patterns
  assert summary["epochs"] == 1 and summary["steps"] == EXAMPLES // config.train.batch_size
  assert 0 <= summary["test"]["accuracy"] <= 1 and np.isfinite(summary["test"]["loss"])
  pruning = summary["pruning"]
  assert len(pruning["layers"]) == 13
  assert all(1 <= used <= k for used, k in zip(pruning["pattern_counts"], patterns))
  assert pruning["overall_sparsity"] == pytest.approx(sparsity, abs=0.01)
  mapping = json.loads((tmp_path / "mapping.json").read_text())
  assert [layer["out_hw"][0] for layer in mapping["layers"]] == [32, 32, 16, 16, 8, 8, 8, 4, 4, 4,
                                                                2, 2, 2]
  assert mapping["totals"]["pattern"]["arrays"] < mapping["totals"]["baseline"]["arrays"]
  state = ocp.StandardCheckpointer().restore((tmp_path / "checkpoints" / "1" / "state").absolute())
  assert state["params"]["head"]["kernel"].shape[-1] == classes
  assert state["params"]["convs"]["0"]["kernel"].shape[2] == (1 if name == "fashion_mnist" else 3)

"""The CPU default: a small VGG on Fashion-MNIST (Debian's dataset-fashion-mnist).

  rramjax run configs/fashion_mnist_small.py            # the full job, about 10 min on 2 cores
  rramjax run configs/fashion_mnist_small.py:smoke      # seconds: tiny data, one epoch per phase
"""


def get_config(arg=None):
  config = {
      "name": "fashion_mnist_small",
      "seed": 0,
      "data": {"name": "fashion_mnist"},
      "model": {"name": "vgg_small", "width": 0.5},
      "train": {"batch_size": 128, "optimizer": "adam", "pretrain_epochs": 4, "pretrain_lr": 2e-3},
  }
  if arg == "smoke":
    config["data"].update(train_limit=512, test_limit=256)
    config["model"]["width"] = 0.25
    config["train"].update(batch_size=64, eval_batch_size=128, pretrain_epochs=2, log_every=2)
  elif arg is not None:
    raise ValueError(f"Unknown variant {arg!r}; use ':smoke' or nothing.")
  return config

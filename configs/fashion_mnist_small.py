"""The CPU default: the whole pipeline on a small VGG and Fashion-MNIST (Debian's package).

  rramjax run configs/fashion_mnist_small.py            # the full job, about 14 min on 2 cores (measured on a clean clone)
  rramjax run configs/fashion_mnist_small.py:smoke      # seconds: tiny data, a few steps per phase
  rramjax run configs/fashion_mnist_small.py:dense      # dense training only (4 epochs)
  rramjax run configs/fashion_mnist_small.py:wide       # width 0.5, 4 fine-tuning epochs (~45 min)

Pipeline: 4 dense epochs -> 2 ADMM epochs (greedy pattern libraries of at most 8 patterns per
layer, 86% overall 3x3-conv weight sparsity, ERK allocation) -> hard pruning -> 2 masked fine-tuning epochs ->
100 steps of fine-tuning with the bit-exact 'ou' crossbar in the loop (ADC full scale calibrated
per layer) -> evaluation at 'ou' on the first 2,000 test images (read noise off, and 0.5 LSB over
2 seeds) beside the ideal model before and after that fine-tuning -> mapping onto 512x512 arrays.
The ':wide' variant fine-tunes 150 hardware steps and evaluates 4 noise seeds.
Channels (width 0.25): 8, 8, M, 16, 16, M, 32, 32, M (the 2-core budget; see docs/RESULTS.md).
"""


def get_config(arg=None):
  config = {
      "name": "fashion_mnist_small",
      "seed": 0,
      "data": {"name": "fashion_mnist"},
      "model": {"name": "vgg_small", "width": 0.25},
      "train": {"batch_size": 128, "optimizer": "adam", "pretrain_epochs": 4, "pretrain_lr": 2e-3,
                "admm_epochs": 2, "admm_lr": 1e-3, "finetune_epochs": 2, "finetune_lr": 1e-3,
                "hwtune_epochs": 1, "hwtune_steps": 100, "hwtune_lr": 2e-4},
      "prune": {"enabled": True, "patterns_per_layer": 8, "library": "greedy", "sparsity": 0.86,
                "allocation": "erk", "rho": 5e-3, "rho_growth": 1.5, "rho_max": 0.5,
                "admm_update_every": 100},
      # The paper's hardware (HardwareConfig defaults) with the ADC full scale calibrated per layer
      # (99.99th percentile of the OU sums of a training batch) before hwtune: with the default
      # 'max' full scale the ou-tuned model stays ~1.8 points below the ideal one (docs/RESULTS.md).
      "hardware": {"adc_full_scale": "calibrated"},
      # Hardware evaluation on the first 2,000 test images (the 2-core budget; the epoch records
      # and the summary's ideal accuracy use all 10,000).
      "crossbar": {"train_fidelity": "ou", "eval_fidelity": "ou", "eval_seeds": 2,
                   "eval_read_noise_lsb": [0.5], "calib_examples": 256, "eval_limit": 2000},
  }
  if arg == "wide":  # the docs/RESULTS.md experiments: twice the channels, longer fine-tuning
    config["name"] = "fashion_mnist_wide"
    config["model"]["width"] = 0.5
    config["train"].update(finetune_epochs=4, hwtune_steps=150)
    config["crossbar"]["eval_seeds"] = 4
  if arg in ("smoke", "dense_smoke"):
    config["data"].update(train_limit=512, test_limit=256)
    config["model"]["width"] = 0.25
    config["train"].update(batch_size=64, eval_batch_size=128, pretrain_epochs=2, admm_epochs=1,
                           finetune_epochs=1, hwtune_steps=2, log_every=2)
    config["prune"]["admm_update_every"] = 4
    config["crossbar"].update(eval_seeds=2, calib_examples=64)
  if arg in ("dense", "dense_smoke"):
    config["prune"]["enabled"] = False
    config["train"].update(admm_epochs=0, finetune_epochs=0, hwtune_epochs=0)
    config["crossbar"].update(eval_fidelity="ideal", eval_read_noise_lsb=[])
  elif arg not in (None, "smoke", "wide"):
    raise ValueError(f"Unknown variant {arg!r}; use ':smoke', ':dense', ':dense_smoke', ':wide' "
                     "or nothing.")
  return config

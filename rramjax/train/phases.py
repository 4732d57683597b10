"""What each phase adds to the generic loop: extra state, penalties, transitions, reports.

Phases (DESIGN.md sections 2-3):
  pretrain  dense training, ideal convolutions;
  admm      the loss plus the ADMM penalty pulling every 3x3 layer towards its pattern library
            (extracted from the pretrained weights when ADMM begins) and its kernel keep ratio;
            Z/Y projections and dual updates every `prune.admm_update_every` steps (or epoch);
  finetune  begins with the hard projection to masks (every kernel one library pattern or
            removed); masked training, ideal convolutions;
  hwtune    masked training with the crossbar in the loop (`crossbar.train_fidelity`), after the
            activation and ADC scales are calibrated on `crossbar.calib_examples` images.

Every transition is a deterministic function of the state and the config, so a resumed run
replays exactly. The final report adds the pattern table, the hardware evaluation (N noise seeds,
vmapped), the masks for the mapper and the mapping's area / energy / latency.
"""

from __future__ import annotations

import functools
import json

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from rramjax import hardware as hw_lib
from rramjax import patterns
from rramjax.config import Config
from rramjax.errors import ConfigError
from rramjax.hardware.config import HardwareConfig
from rramjax.models import conv_output_sizes
from rramjax.train import admm
from rramjax.train.metrics import read_metrics
from rramjax.train.step import apply_masks, conv_kernels, make_eval_step, with_conv_kernels

MASKS_FILE = "masks.npz"


# Targets --------------------------------------------------------------------------------------
def library_sizes(config: Config, num_layers: int) -> list[int]:
  """Library size K per 3x3 layer (8 for PatDNN's shared default library)."""
  p = config.prune
  if p.library == "patdnn_default":
    return [len(patterns.default_patdnn_library())] * num_layers
  counts = p.patterns_per_layer
  counts = list(counts) if isinstance(counts, (list, tuple)) else [counts] * num_layers
  patterns.validate_targets(num_layers, counts, [1.0] * num_layers)
  return counts


def _codes(matrix) -> tuple[int, ...]:
  """Distinct pattern codes of a (K, 9) library matrix (padding rows repeat a pattern)."""
  rows = np.asarray(matrix) > 0.5
  codes = [int(np.sum(row << np.arange(9))) for row in rows.astype(np.int64)]
  return tuple(dict.fromkeys(c for c in codes if c))


def _matrix(codes, size: int) -> np.ndarray:
  """Codes as a (size, 9) matrix; a shorter library repeats its first pattern (harmless)."""
  matrix = np.asarray(patterns.library_matrix(codes), np.float32)
  return np.concatenate([matrix, np.repeat(matrix[:1], size - len(matrix), axis=0)])


def extract_libraries(config: Config, kernels) -> list[tuple[int, ...]]:
  """Each layer's pattern library from (pretrained) weights, by `prune.library`.

  The library is drawn from the kernels that survive a provisional connectivity pruning at the
  keep ratio the target implies for `prune.pattern_size`-entry patterns (PatDNN counts patterns
  over surviving kernels only).
  """
  p = config.prune
  sizes = library_sizes(config, len(kernels))
  if p.library == "patdnn_default":
    return [patterns.default_patdnn_library()] * len(kernels)
  provisional = keep_ratios(config, kernels, [p.pattern_size] * len(kernels))
  libraries = []
  for w, k, r in zip(kernels, sizes, provisional):
    alive = np.asarray(patterns.connectivity_mask(w, r))
    if p.library == "patdnn":
      lib = patterns.extract_library_patdnn(w, k, p.pattern_size, kernel_mask=alive)
    else:
      lib = patterns.extract_library_greedy(w, k, kernel_mask=alive)
    libraries.append(tuple(lib))
  return libraries


def keep_ratios(config: Config, kernels, pattern_sizes) -> list[float]:
  """Kernel keep ratio per layer: `prune.keep_ratios`, or the allocation rule for `prune.sparsity`."""
  p = config.prune
  n = len(kernels)
  if p.keep_ratios is not None:
    ratios = list(p.keep_ratios) if isinstance(p.keep_ratios, (list, tuple)) else [p.keep_ratios] * n
    patterns.validate_targets(n, [1] * n, ratios)
    return [float(r) for r in ratios]
  return patterns.keep_ratios_for_sparsity([w.shape for w in kernels], pattern_sizes, p.sparsity,
                                           rule=p.allocation)


def expected_pattern_sizes(kernels, libraries) -> list[float]:
  """Mean size of the pattern each layer's kernels project onto (usage-weighted)."""
  sizes = []
  for w, lib in zip(kernels, libraries):
    _, mask = patterns.project_to_library(w, lib)
    sizes.append(float(np.count_nonzero(np.asarray(mask))) / (w.shape[2] * w.shape[3]))
  return sizes


def check_plan(config: Config, plan, template: dict) -> None:
  """Rejects pruning targets the network cannot take, before any training."""
  if not config.prune.enabled:
    return
  n = len(template["masks"])
  library_sizes(config, n)
  if config.prune.keep_ratios is not None:
    keep_ratios(config, template["masks"], [config.prune.pattern_size] * n)
  if not any(e.phase == "finetune" for e in plan):
    raise ConfigError("Config key train.finetune_epochs: pruning needs at least one fine-tuning "
                      "epoch (the hard projection to masks happens when fine-tuning begins).")


# State ----------------------------------------------------------------------------------------
def init_extra_state(config: Config, kernels) -> dict:
  """State beyond weights and masks; its structure is fixed by the config (for checkpoints)."""
  n = len(kernels)
  extra = {"hw_state": hw_lib.init_hw_state(n, config.hardware),
           "hw_calibrated": jnp.zeros((), jnp.int32)}
  if config.prune.enabled:
    extra["libraries"] = [jnp.zeros((k, 9), jnp.float32) for k in library_sizes(config, n)]
    extra["keep_ratios"] = jnp.ones((n,), jnp.float32)
    extra["admm"] = {name: [jnp.zeros_like(w) for w in kernels] for name in admm.AdmmState._fields}
    extra["rho"] = jnp.asarray(config.prune.rho, jnp.float32)
    extra["kept_energy"] = jnp.ones((n,), jnp.float32)  # squared weight kept by the projection
  return extra


def trainable_hw_key(config: Config):
  """The hardware state trained beside the weights: the ADC full scale when it is learned."""
  return "adc_full_scale" if config.hardware.adc_full_scale == "learned" else None


def trainable(state: dict, config: Config) -> dict:
  out = {"params": state["params"]}
  key = trainable_hw_key(config)
  if key:
    out["hw"] = state["hw_state"][key]
  return out


def train_fidelity(config: Config, phase: str) -> str:
  return config.crossbar.train_fidelity if phase == "hwtune" else "ideal"


def conv_builder(config: Config, fidelity: str, hw: HardwareConfig | None = None):
  """`(masks, hw_state, key) -> conv_fn(x, kernel, layer)` at one fidelity."""
  hw = hw or config.hardware

  def build(masks, hw_state, key):
    conv = hw_lib.make_conv_fn(fidelity, hw, hw_state, key)
    return lambda x, kernel, layer: conv(x, kernel, masks[layer], layer)

  return build


def _admm_state(state) -> admm.AdmmState:
  return admm.AdmmState(**state["admm"])


def penalty(config: Config, phase: str):
  if phase != "admm":
    return None
  return lambda params, state: admm.admm_penalty(conv_kernels(params), _admm_state(state), state["rho"])


@functools.partial(jax.jit, static_argnames=("ratios",))
def _admm_update(kernels, admm_state, libraries, ratios):
  return admm.admm_update(kernels, admm_state, libraries, list(ratios))


def _ratios(state) -> tuple[float, ...]:
  return tuple(float(r) for r in np.asarray(state["keep_ratios"]))


def _admm_step(config: Config, state: dict) -> dict:
  """Z/Y projections and dual updates, then rho *= rho_growth (capped at rho_max).

  References: Boyd et al., "Distributed Optimization and Statistical Learning via ADMM" (2011),
  section 3.4.1 (varying the penalty parameter).
  """
  p = config.prune
  new = _admm_update(conv_kernels(state["params"]), _admm_state(state), state["libraries"],
                     _ratios(state))
  rho = jnp.minimum(state["rho"] * p.rho_growth, p.rho_max)
  # Scaled duals are y / rho: when rho grows they shrink by the same factor (Boyd et al. 3.4.1).
  scale = state["rho"] / rho
  new = new._replace(u=[u * scale for u in new.u], v=[v * scale for v in new.v])
  return {**state, "admm": new._asdict(), "rho": rho}


def step_hook(trainer, epoch):
  """(every, fn): the loop calls `state = fn(state)` every `every` steps of the epoch."""
  every = trainer.config.prune.admm_update_every
  if epoch.phase == "admm" and every:
    return every, functools.partial(_admm_step, trainer.config)
  return 0, None


# Transitions ----------------------------------------------------------------------------------
def _start_pruning(config: Config, state: dict) -> dict:
  """Libraries from the current weights, keep ratios for the target, ADMM variables."""
  kernels = [np.asarray(k) for k in conv_kernels(state["params"])]
  libraries = extract_libraries(config, kernels)
  ratios = keep_ratios(config, kernels, expected_pattern_sizes(kernels, libraries))
  mats = [jnp.asarray(_matrix(lib, m.shape[0])) for lib, m in zip(libraries, state["libraries"])]
  admm_state = admm.admm_init(conv_kernels(state["params"]), mats, ratios)
  return {**state, "libraries": mats, "keep_ratios": jnp.asarray(ratios, jnp.float32),
          "admm": admm_state._asdict(), "rho": jnp.asarray(config.prune.rho, jnp.float32)}


def _hard_prune(state: dict) -> dict:
  kernels = conv_kernels(state["params"])
  pruned, masks = admm.admm_hard_prune(kernels, state["libraries"], list(_ratios(state)))
  masks = [m.astype(k.dtype) for m, k in zip(masks, kernels)]
  kept = jnp.stack([jnp.sum(jnp.square(p)) / jnp.maximum(jnp.sum(jnp.square(k)), 1e-30)
                    for p, k in zip(pruned, kernels)])
  return {**state, "params": with_conv_kernels(state["params"], pruned), "masks": masks,
          "kept_energy": kept.astype(jnp.float32)}


def _collector(trainer):
  """A jitted function giving every conv layer's input for a batch (eval mode, ideal convs)."""
  if not hasattr(trainer, "_collect_inputs"):
    graph = trainer.graph_eval

    @jax.jit
    def collect(params, batch_stats, masks, images):
      inputs = []

      def record(x, kernel, layer):
        del layer
        inputs.append(x)
        return jax.lax.conv_general_dilated(x, kernel, (1, 1), "SAME",
                                            dimension_numbers=("NHWC", "HWIO", "NHWC"))

      nnx.merge(graph, apply_masks(params, masks), batch_stats)(images, record)
      return inputs

    trainer._collect_inputs = collect  # pylint: disable=protected-access
  return trainer._collect_inputs  # pylint: disable=protected-access


def calibrate(trainer, state: dict, hw: HardwareConfig | None = None) -> dict:
  """Sets activation clipping levels (and the ADC full scale when not 'max') from data."""
  config = trainer.config
  hw = hw or config.hardware
  images = trainer.calibration_images()
  inputs = _collector(trainer)(state["params"], state["batch_stats"], state["masks"], images)
  hw_state = hw_lib.calibrate_act_scales(state["hw_state"], inputs,
                                         percentile=config.crossbar.act_percentile)
  if hw.adc_full_scale != "max":
    kernels = [k * m for k, m in zip(conv_kernels(state["params"]), state["masks"])]
    hw_state = hw_lib.calibrate_adc_full_scale(hw_state, inputs, kernels, state["masks"], hw)
  return {**state, "hw_state": hw_state, "hw_calibrated": jnp.ones((), jnp.int32)}


def begin_phase(trainer, state: dict, phase: str) -> dict:
  config = trainer.config
  if phase == "admm":
    state = _start_pruning(config, state)
  elif phase == "finetune" and config.prune.enabled:
    if config.train.admm_epochs == 0:  # one-shot pruning: libraries from the pretrained weights
      state = _start_pruning(config, state)
    state = _hard_prune(state)
  elif phase == "hwtune":
    state = calibrate(trainer, state)
  return state


def end_epoch(trainer, state: dict, epoch) -> dict:
  if epoch.phase == "admm":
    state = _admm_step(trainer.config, state)
  return state


def epoch_report(trainer, state: dict, epoch) -> dict:
  del trainer
  if epoch.phase != "admm":
    return {}
  res = admm.admm_residuals(conv_kernels(state["params"]), _admm_state(state))
  return {"admm_pattern_residual": float(res["pattern_relative"]),
          "admm_connectivity_residual": float(res["connectivity_relative"]),
          "rho": float(state["rho"])}


# Final report ---------------------------------------------------------------------------------
def has_noise(hw: HardwareConfig) -> bool:
  return bool(hw.read_noise_lsb or hw.prog_noise or hw.stuck_at_0_rate or hw.stuck_at_max_rate)


def hardware_eval(trainer, state: dict, fidelity: str, hw: HardwareConfig | None = None,
                  seeds: int | None = None, limit: int | None = None, model: str = "final") -> dict:
  """Test accuracy at one fidelity; with noise, `seeds` noise draws vmapped: mean and std.

  Scales are calibrated first if the state has not been calibrated (no hwtune phase). `model`
  only labels the row ('final', or 'before hwtune' for the reference model).
  """
  config = trainer.config
  hw = hw or config.hardware
  if fidelity != "ideal" and not int(state["hw_calibrated"]):
    state = calibrate(trainer, state, hw)
  seeds = (seeds or config.crossbar.eval_seeds) if has_noise(hw) and fidelity == "ou" else 1
  cache = trainer.__dict__.setdefault("_hw_evals", {})
  if (fidelity, hw) not in cache:
    step = make_eval_step(trainer.graph_eval, conv_builder(config, fidelity, hw))
    cache[(fidelity, hw)] = jax.jit(jax.vmap(step, in_axes=(None, None, None, None, 0)))
  keys = jax.random.split(jax.random.key(config.seed + 1000), seeds)
  limit = limit if limit is not None else config.crossbar.eval_limit
  acc, loss = trainer.evaluate_with(cache[(fidelity, hw)], state, keys, limit)
  noisy = fidelity == "ou"  # device noise exists only in the crossbar model
  return {"model": model, "fidelity": fidelity, "read_noise_lsb": hw.read_noise_lsb if noisy else 0.0,
          "prog_noise": hw.prog_noise if noisy else 0.0,
          "seeds": seeds, "examples": len(trainer.test_ds.take(limit)),
          "accuracy_mean": float(acc.mean()), "accuracy_std": float(acc.std()),
          "accuracy_per_seed": [float(a) for a in acc], "loss_mean": float(loss.mean())}


def reference_row(rows) -> dict | None:
  """The ideal row every hardware row is compared with: the model before hwtune when evaluated
  (the ideal pruned model), else the final model at 'ideal'."""
  ideal = [r for r in rows if r["fidelity"] == "ideal"]
  before = [r for r in ideal if r.get("model") == "before hwtune"]
  return (before or ideal or [None])[0]


def format_hardware_table(rows) -> str:
  """The hardware rows as a table; each row's difference (points) from `reference_row`."""
  ref = reference_row(rows)
  ideal = None if ref is None else ref["accuracy_mean"]
  title = "hardware evaluation (test set)"
  if ref is not None:
    title += f"; 'vs ref' = points vs the {ref.get('model', 'final')} model at 'ideal'"
  lines = [title,
           f"{'model':>13} {'fidelity':>8} {'read noise':>10} {'prog noise':>10} {'seeds':>5} "
           f"{'examples':>8} {'accuracy':>16}" + (f" {'vs ref':>7}" if ideal is not None else "")]
  for r in rows:
    line = (f"{r.get('model', 'final'):>13} {r['fidelity']:>8} {r['read_noise_lsb']:>10.2f} "
            f"{r['prog_noise']:>10.3f} "
            f"{r['seeds']:>5} {r['examples']:>8} "
            f"{100 * r['accuracy_mean']:>8.2f} +- {100 * r['accuracy_std']:.2f}%")
    if ideal is not None:
      line += f" {100 * (r['accuracy_mean'] - ideal):>+7.2f}"
    lines.append(line)
  return "\n".join(lines)


def _mapping(trainer, state: dict) -> tuple[dict, str]:
  from rramjax import mapper  # pylint: disable=g-import-not-at-top
  masks = [np.asarray(m) for m in state["masks"]]
  out_hw = np.asarray(conv_output_sizes(trainer.plan_conv, trainer.side))
  mapper.save_masks(trainer.workdir / MASKS_FILE, masks, out_hw)
  report = mapper.map_network(masks, out_hw, trainer.config.hardware)
  mapper.write_json(report, str(trainer.workdir / "mapping.json"))
  return report, mapper.format_table(report)


def _phase_end_accuracy(trainer) -> dict[str, float]:
  """Ideal test accuracy after each phase's last epoch, from the run's metrics.jsonl (in order)."""
  path = trainer.workdir / "metrics.jsonl"
  out = {}
  if path.exists():
    for r in read_metrics(path):
      if "test_accuracy" in r and "phase" in r:
        out.pop(r["phase"], None)  # keep phase order by last epoch
        out[r["phase"]] = float(r["test_accuracy"])
  return out


def final_report(trainer, state: dict, reference: dict | None = None) -> dict:
  """The run's summary: test accuracy, pruning report, hardware evaluation and mapping.

  Args:
    trainer: the run's Trainer.
    state: the final state.
    reference: the state before the hwtune phase (the ideal pruned model), evaluated at 'ideal'
      on the hardware examples as the reference of the hardware rows; None to skip.
  """
  config = trainer.config
  summary = {"name": config.name, "test": trainer.evaluate(state), "epochs": len(trainer.plan),
             "steps": int(state["step"]), "phase_end_accuracy": _phase_end_accuracy(trainer)}
  kernels = [np.asarray(k) for k in conv_kernels(state["params"])]
  if config.prune.enabled:
    libraries = [_codes(m) for m in state["libraries"]]
    report = patterns.pattern_report(kernels, [np.asarray(m) for m in state["masks"]], libraries)
    for layer, kept in zip(report["layers"], np.asarray(state["kept_energy"])):
      layer["kept_energy"] = float(kept)  # at the hard projection (the weights are pruned now)
    summary["pruning"] = {k: v for k, v in report.items() if k != "layers"}
    summary["pruning"]["layers"] = [
        {k: v for k, v in layer.items() if k not in ("pictures", "shape", "outside_library")}
        for layer in report["layers"]]
    summary["pruning"]["keep_ratios"] = [float(r) for r in np.asarray(state["keep_ratios"])]
    summary["pattern_table"] = patterns.format_pattern_report(report)
    summary["libraries_png"] = patterns.plot_libraries(
        libraries, str(trainer.workdir / "pattern_libraries.png"),
        usage=[layer["usage"] for layer in report["layers"]])
  rows = []
  if config.crossbar.eval_fidelity != "ideal":
    # Ideal models on the same test examples first: the references of the hardware rows.
    if reference is not None:
      rows.append(hardware_eval(trainer, reference, "ideal", model="before hwtune"))
    rows.append(hardware_eval(trainer, state, "ideal"))
    rows.append(hardware_eval(trainer, state, config.crossbar.eval_fidelity))
    for level in config.crossbar.eval_read_noise_lsb:
      hw = config.hardware.replace(read_noise_lsb=float(level))
      rows.append(hardware_eval(trainer, state, config.crossbar.eval_fidelity, hw))
    summary["hardware"] = rows
    summary["hardware_table"] = format_hardware_table(rows)
  mapping, table = _mapping(trainer, state)
  summary["mapping"] = {"totals": mapping["totals"]}
  summary["mapping_table"] = table
  summary["masks_file"] = str(trainer.workdir / MASKS_FILE)
  json.dumps(summary, default=float)  # fail here, not after the run, if something is not JSON
  return summary

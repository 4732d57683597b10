"""Seeded bugs ("mutants"): does the test suite notice each one? A check for tests that cannot fail.

  python scripts/mutants.py                  # every mutant, one at a time (about 15 min on 2 cores)
  python scripts/mutants.py --only adc       # the mutants whose name contains 'adc'
  python scripts/mutants.py --list

Each mutant is a one-line source patch (a flipped comparison or sign, a deleted masking line, an
off-by-one...). For each, the package and its tests are copied to a temporary folder, the patch
is applied there (the working tree is never touched) and the mutant's targeted tests run against
the copy. A mutant is *caught* when they fail, *survives* when they pass: a survivor points at a
behaviour no test pins down (or at an equivalent mutant: say why beside it). The unmutated copy
runs every targeted test first; the check stops if that is not green.

Exit status: 0 when every mutant is caught, 1 when some survive, 2 when the baseline fails.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import pathlib
import shutil
import subprocess
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]
COPIED = ("rramjax", "tests", "configs", "pyproject.toml")
LOOP_STEP = ("tests/test_train_loop.py", "-k", "revives or donates or counts_each or traces_once_over")
REFERENCE_RUN = ("tests/test_train_loop.py", "-k", "reference_run_is_complete")


@dataclasses.dataclass(frozen=True)
class Mutant:
  name: str
  path: str        # file in the repository
  old: str         # a unique piece of its text ...
  new: str         # ... and what the bug puts there
  tests: tuple     # pytest arguments that should catch it
  note: str = ""   # why a known survivor is acceptable


MUTANTS = (
    # The train step: masked weights stay zero.
    Mutant("step: gradient masking deleted", "rramjax/train/step.py",
           '    grads["params"] = apply_masks(grads["params"], state["masks"])\n', "", LOOP_STEP),
    Mutant("step: new weights not masked", "rramjax/train/step.py",
           '"params": apply_masks(trainable["params"], state["masks"]),', '"params": trainable["params"],',
           LOOP_STEP),
    Mutant("step: state not donated", "rramjax/train/step.py",
           "@functools.partial(jax.jit, donate_argnums=0)", "@jax.jit", LOOP_STEP),
    Mutant("step: padded eval rows counted", "rramjax/train/step.py",
           "correct = (jnp.argmax(logits, -1) == labels) & valid",
           "correct = jnp.argmax(logits, -1) == labels", LOOP_STEP),
    Mutant("loop: eval divides by padded size", "rramjax/train/loop.py",
           "correct, loss, n = correct + c, loss + l, n + int(valid.sum())",
           "correct, loss, n = correct + c, loss + l, n + len(valid)", LOOP_STEP),
    # ADMM in the loop.
    Mutant("loop: ADMM hook also on the epoch's last step", "rramjax/train/loop.py",
           "if hook_every and (i + 1) % hook_every == 0 and i + 1 < epoch.steps:",
           "if hook_every and (i + 1) % hook_every == 0 and i + 1 <= epoch.steps:", REFERENCE_RUN),
    Mutant("pruning: rho capped from below", "rramjax/train/pruning.py",
           'rho = jnp.minimum(state["rho"] * p.rho_growth, p.rho_max)',
           'rho = jnp.maximum(state["rho"] * p.rho_growth, p.rho_max)', REFERENCE_RUN),
    Mutant("admm: dual update sign", "rramjax/train/admm.py",
           "u.append(u_l + w - z_l)", "u.append(u_l - w + z_l)", ("tests/test_admm.py",)),
    Mutant("admm: penalty halves dropped", "rramjax/train/admm.py",
           "return 0.5 * rho * total", "return rho * total", ("tests/test_admm.py",)),
    # Pattern libraries, projection, connectivity.
    Mutant("library: size penalty sign", "rramjax/patterns/library.py",
           "lam = size_penalty * energy.mean() if len(sizes) > 1 else 0.0",
           "lam = -size_penalty * energy.mean() if len(sizes) > 1 else 0.0",
           ("tests/test_patterns_library.py",)),
    Mutant("library: penalised value sign", "rramjax/patterns/library.py",
           "self.value = self.score - lam * masks.sum(1)[pick]",
           "self.value = self.score + lam * masks.sum(1)[pick]", ("tests/test_patterns_library.py",)),
    Mutant("library: gain estimate penalty sign", "rramjax/patterns/library.py",
           "penalised = scores - lam * jnp.sum(cand_masks, axis=1) - value[:, None]",
           "penalised = scores + lam * jnp.sum(cand_masks, axis=1) - value[:, None]",
           ("tests/test_patterns_library.py",)),
    Mutant("library: greedy's first pick penalty sign", "rramjax/patterns/library.py",
           "alone = cand_masks @ energy.sum(0) - len(energy) * lam * cand_masks.sum(1)",
           "alone = cand_masks @ energy.sum(0) + len(energy) * lam * cand_masks.sum(1)",
           ("tests/test_patterns_library.py",)),
    Mutant("library: best start not kept", "rramjax/patterns/library.py",
           "library = max(starts, key=lambda lib: _objective(energy, lam, lib))",
           "library = starts[-1]", ("tests/test_patterns_library.py",)),
    Mutant("projection: least weight kept", "rramjax/patterns/projection.py",
           "choice = jnp.argmax(patterns @ jnp.square(w_row)).astype(jnp.int32)",
           "choice = jnp.argmin(patterns @ jnp.square(w_row)).astype(jnp.int32)",
           ("tests/test_patterns_projection.py",)),
    Mutant("connectivity: rounding off by one", "rramjax/patterns/connectivity.py",
           "math.floor(keep_ratio * num_kernels + 0.5)", "math.floor(keep_ratio * num_kernels + 1.5)",
           ("tests/test_patterns_projection.py", "tests/test_patterns_targets.py", "tests/test_admm.py")),
    Mutant("codes: bit order reversed", "rramjax/plan.py",
           "POSITION_BITS = 1 << np.arange(POSITIONS)",
           "POSITION_BITS = 1 << (POSITIONS - 1 - np.arange(POSITIONS))",
           ("tests/test_patterns_codes.py", "tests/test_plan.py")),
    # The crossbar model.
    Mutant("hardware config: ADC top code off by one", "rramjax/hardware/config.py",
           "    return self.adc_levels - 1\n", "    return self.adc_levels\n",
           ("tests/test_hardware_crossbar.py",)),
    Mutant("quant: ADC gradient passes above the top code", "rramjax/hardware/quant.py",
           "inside = (code >= 0) & (code <= max_code)", "inside = code >= 0",
           ("tests/test_hardware_crossbar.py",)),
    Mutant("quant: round half down", "rramjax/hardware/quant.py",
           "  return jnp.floor(x + 0.5)\n", "  return jnp.ceil(x - 0.5)\n",
           ("tests/test_hardware_quant.py", "tests/test_hardware_crossbar.py")),
    Mutant("quant: the ADC code through jnp.round (no Pallas Triton lowering)", "rramjax/hardware/quant.py",
           "  return round_half_up(sums / lsb)\n", "  return jnp.round(sums / lsb)\n",
           ("tests/test_hardware_planned.py", "-k", "lowers_for_cuda")),
    Mutant("hardware config: ADC step one bit too coarse", "rramjax/hardware/config.py",
           "return 2 ** max(0, self.ou_sum_bits - self.adc_bits)",
           "return 2 ** max(1, self.ou_sum_bits - self.adc_bits)",
           ("tests/test_hardware_quant.py", "tests/test_hardware_crossbar.py")),
    Mutant("fidelity: activation percentile ignored", "rramjax/hardware/fidelity.py",
           "value = float(jnp.percentile(jnp.asarray(x, jnp.float32), percentile))",
           "value = float(jnp.max(jnp.asarray(x, jnp.float32)))", ("tests/test_hardware_fidelity.py",)),
    # The mapper.
    Mutant("mapper: OU tiles rounded down", "rramjax/plan.py",
           "col_tiles = -(-num_cols // hw.ou_cols)", "col_tiles = num_cols // hw.ou_cols",
           ("tests/test_mapper.py", "tests/test_plan.py")),
    Mutant("mapper: lower bound rounded down", "rramjax/mapper/cost.py",
           '"arrays_lower_bound": -(-cells // capacity),', '"arrays_lower_bound": cells // capacity,',
           ("tests/test_mapper.py",)),
    # Design-space sweeps.
    Mutant("sweep: an equal-cost point never dominates", "rramjax/sweep/report.py",
           "if not np.any((costs <= costs[i]) & (accuracies >= accuracies[i])",
           "if not np.any((costs < costs[i]) & (accuracies >= accuracies[i])",
           ("tests/test_sweep.py", "-k", "pareto")),
    Mutant("sweep: noise-free points evaluated at every seed", "rramjax/sweep/evaluate.py",
           "count = {u: len(keys) if owners[u][1] else 1 for u in members}",
           "count = {u: len(keys) for u in members}", ("tests/test_sweep.py", "-k", "one_by_one")),
    Mutant("sweep: 'max' full scale one code too wide", "rramjax/sweep/evaluate.py",
           "full_scale = np.full_like(full_scale, hw.adc_lsb * top)",
           "full_scale = np.full_like(full_scale, hw.adc_lsb * (top + 1))",
           ("tests/test_sweep.py", "-k", "one_by_one")),
    Mutant("sweep: calibration ignores the point's OUs", "rramjax/sweep/evaluate.py",
           "hw=setup.calibration[0], plans=setup.plans)", "hw=setup.calibration[0], plans=None)",
           ("tests/test_sweep.py", "-k", "one_by_one")),
    # Data and checkpoints.
    Mutant("data: one batch order for every epoch", "rramjax/data/pipeline.py",
           "return np.random.default_rng([seed, epoch]).permutation(n)",
           "return np.random.default_rng([seed, 0]).permutation(n)", ("tests/test_data.py",)),
    Mutant("grouping: batch norm statistics not permuted", "rramjax/models/vgg.py",
           '"norms": {**stat_norms, key: {n: v[order] for n, v in stat_norms[key].items()}}}',
           '"norms": {**stat_norms, key: {n: v for n, v in stat_norms[key].items()}}}',
           ("tests/test_patterns_grouping.py",)),
    Mutant("grouping: dense rows permuted as filter-major", "rramjax/models/vgg.py",
           "rows = kernel.reshape(-1, cout, kernel.shape[1])[:, order, :].reshape(kernel.shape)",
           "rows = kernel.reshape(cout, -1, kernel.shape[1])[order].reshape(kernel.shape)",
           ("tests/test_patterns_grouping.py",)),
    Mutant("grouping: greedy adds the filter that loses most", "rramjax/patterns/grouping.py",
           "pick = free[np.argmin(lost)]", "pick = free[np.argmax(lost)]",
           ("tests/test_patterns_grouping.py",)),
    Mutant("checkpoint: checksums never compared", "rramjax/train/checkpoint.py",
           "bad = sorted(k for k, v in expected.items() if found.get(k) != v)", "bad = []",
           ("tests/test_train_loop.py", "-k", "corrupt and flip")),
)


def _copy_tree(dest: pathlib.Path) -> None:
  for name in COPIED:
    src = ROOT / name
    if src.is_dir():
      shutil.copytree(src, dest / name, ignore=shutil.ignore_patterns("__pycache__"))
    else:
      shutil.copy2(src, dest / name)


def _apply(mutant: Mutant, tree: pathlib.Path) -> None:
  path = tree / mutant.path
  text = path.read_text()
  if text.count(mutant.old) != 1:
    raise SystemExit(f"mutant {mutant.name!r}: its text occurs {text.count(mutant.old)} times in "
                     f"{mutant.path} (needs exactly one); update the mutant.")
  path.write_text(text.replace(mutant.old, mutant.new))


def _pytest(tree: pathlib.Path, args, timeout: int) -> tuple[bool, float]:
  """Runs pytest on the copy; (passed, seconds)."""
  env = {**os.environ, "PYTHONPATH": str(tree),
         # One compilation cache for every copy (only executables are stored: results unchanged).
         "JAX_COMPILATION_CACHE_DIR": str(ROOT / ".pytest_cache" / "jax-compilation-cache")}
  start = time.monotonic()
  try:
    out = subprocess.run([sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider",
                          *args], cwd=tree, env=env, capture_output=True, text=True,
                         timeout=timeout, check=False)
  except subprocess.TimeoutExpired:
    return False, time.monotonic() - start  # a hang counts as caught, as a test run would fail
  return out.returncode == 0, time.monotonic() - start


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--only", default="", help="run the mutants whose name contains this text")
  parser.add_argument("--list", action="store_true", help="list the mutants and exit")
  parser.add_argument("--timeout", type=int, default=900, help="seconds per test run")
  args = parser.parse_args(argv)
  chosen = [m for m in MUTANTS if args.only in m.name]
  if args.list or not chosen:
    print("\n".join(f"{m.name}  ({m.path})" for m in MUTANTS))
    return 0
  with tempfile.TemporaryDirectory(prefix="rramjax-mutants-") as tmp:
    base = pathlib.Path(tmp) / "base"
    _copy_tree(base)
    for mutant in chosen:  # every patch applies before anything runs
      _apply(mutant, base)
    shutil.rmtree(base)
    _copy_tree(base)
    for tests in dict.fromkeys(m.tests for m in chosen):
      passed, seconds = _pytest(base, tests, args.timeout)
      print(f"baseline {'green' if passed else 'FAILING'}: {' '.join(tests)} ({seconds:.0f} s)",
            flush=True)
      if not passed:
        return 2
    survivors = []
    for i, mutant in enumerate(chosen):
      tree = pathlib.Path(tmp) / f"mutant{i}"
      _copy_tree(tree)
      _apply(mutant, tree)
      passed, seconds = _pytest(tree, mutant.tests, args.timeout)
      verdict = "SURVIVED" if passed else "caught"
      print(f"{verdict:>8}  {mutant.name}  ({seconds:.0f} s)"
            + (f"  [{mutant.note}]" if passed and mutant.note else ""), flush=True)
      if passed:
        survivors.append(mutant)
      shutil.rmtree(tree)
  print(f"\n{len(chosen) - len(survivors)}/{len(chosen)} mutants caught")
  return 1 if survivors else 0


if __name__ == "__main__":
  sys.exit(main())

"""Shared test setup.

XLA compilation dominates the short training runs of the tests (a cold smoke run compiles for
tens of seconds, a warm one for about one), so the session turns on JAX's persistent compilation
cache before anything imports jax. It lives in .pytest_cache (git-ignored), is shared by the
xdist workers and by the `rramjax` subprocesses the tests start (they inherit the environment),
and only stores executables: results are unchanged. Set JAX_COMPILATION_CACHE_DIR to use another
folder.
"""

import fcntl
import json
import os
import pathlib
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]

os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", str(ROOT / ".pytest_cache" / "jax-compilation-cache"))
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES", "0")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # tensorflow (tfds tests) start-up noise

# The smoke pipeline without the crossbar-in-the-loop phase (the bit-exact 'ou' model takes minutes
# on a CPU): 2 dense epochs, 1 ADMM epoch, hard pruning, 1 masked fine-tuning epoch, 4 steps each.
SMOKE_SPEC = "configs/fashion_mnist_small.py:smoke"
SMOKE_OVERRIDES = ("train.hwtune_epochs=0", "crossbar.eval_fidelity=ideal",
                   "crossbar.eval_read_noise_lsb=[]", "data.train_limit=256", "data.test_limit=128",
                   "prune.admm_update_every=2")
# The dense part of the smoke run (2 epochs of 4 steps): the pruning phases run end to end through
# the CLI in test_train_loop.py (the resumed run), so the shared CLI run stays short.
DENSE = (*SMOKE_OVERRIDES, "prune.enabled=False", "train.admm_epochs=0", "train.finetune_epochs=0")
SCRIPT = pathlib.Path(sys.executable).parent / "rramjax"


def set_args(overrides) -> list[str]:
  """`--set k=v` arguments for the CLI."""
  return [arg for text in overrides for arg in ("--set", text)]


def run_cli(*args, cwd=ROOT, timeout=600) -> subprocess.CompletedProcess:
  """Runs `python -m rramjax ARGS` with this interpreter; captures text output."""
  return subprocess.run([sys.executable, "-m", "rramjax", *map(str, args)], cwd=cwd,
                        capture_output=True, text=True, timeout=timeout, check=False)


@pytest.fixture(scope="session")
def repo_root() -> pathlib.Path:
  return ROOT


def run_once(tmp_path_factory, name: str, produce):
  """`produce(folder) -> JSON-able result`, run once per test session, even across xdist workers.

  Under xdist, module fixtures would run once per worker that needs them; the expensive ones
  (training runs) go through here: the first worker produces into a folder every worker shares,
  under a file lock, and the others wait and read the result. Tests must copy what they modify.
  """
  if "PYTEST_XDIST_WORKER" not in os.environ:
    return produce(tmp_path_factory.mktemp(name))
  shared = tmp_path_factory.getbasetemp().parent / f"shared-{name}"  # the session's, not a worker's
  shared.mkdir(exist_ok=True)
  with open(shared / "lock", "w") as lock:
    fcntl.flock(lock, fcntl.LOCK_EX)
    try:
      done = shared / "result.json"
      if done.exists():
        return json.loads(done.read_text())
      result = produce(shared / "data")
      done.write_text(json.dumps(result))
      return result
    finally:
      fcntl.flock(lock, fcntl.LOCK_UN)


@pytest.fixture(scope="session")
def dense_cli_run(tmp_path_factory):
  """`rramjax run <smoke> --workdir W` with DENSE, through the console script (as a user types it).

  Shared by test_cli.py and test_runs.py; tests copy the folder before changing anything.
  Returns (workdir, CompletedProcess).
  """

  def produce(workdir):
    cmd = [str(SCRIPT)] if SCRIPT.exists() else [sys.executable, "-m", "rramjax"]
    out = subprocess.run(cmd + ["run", SMOKE_SPEC, "--workdir", str(workdir), "--no-progress",
                                *set_args(DENSE)],
                         cwd=ROOT, capture_output=True, text=True, timeout=600, check=False)
    return {"workdir": str(workdir), "returncode": out.returncode, "stdout": out.stdout,
            "stderr": out.stderr}

  result = run_once(tmp_path_factory, "cli_dense_run", produce)
  return pathlib.Path(result["workdir"]), subprocess.CompletedProcess(
      [], result["returncode"], result["stdout"], result["stderr"])

"""Data parallelism (rramjax.train.parallel): the same losses on 1 and 4 devices for one global
batch, at the ideal and the planned `ou` fidelity, and clear errors for impossible meshes.

The 4 devices are CPU devices forced in a subprocess (`--xla_force_host_platform_device_count`
must be set before jax starts).
"""

import json
import os
import subprocess
import sys
import textwrap

import pytest

from conftest import ROOT
from rramjax.errors import ConfigError
from rramjax.train import parallel

SCRIPT = textwrap.dedent("""
    import json, sys
    import numpy as np
    import jax
    from rramjax.config import load_config
    from rramjax.data import ArrayDataset, Splits
    from rramjax.train import hardware_glue, parallel
    from rramjax.train.loop import Trainer

    rng = np.random.default_rng(0)
    def split(n):
      images = rng.integers(0, 256, (n, 28, 28, 1), dtype=np.uint8)
      return ArrayDataset("fashion_mnist", images, rng.integers(0, 10, n).astype(np.int32), 10)
    data = Splits(split(64), split(32))
    out = {"devices": jax.device_count()}
    # (ou, numba) on 1 device is left out: the numba and XLA kernels give the same codes bit for
    # bit (test_hardware_planned), so ou_xla_1 is the one-device reference of ou_numba_4.
    for fidelity, backend, counts in (("ideal", "numba", (1, 4)), ("ou", "xla", (1, 4)), ("ou", "numba", (4,))):
      for devices in counts:
        config = load_config("configs/fashion_mnist_small.py:smoke", [
            f"train.devices={devices}", "train.batch_size=16", "prune.enabled=False",
            "train.admm_epochs=0", "train.finetune_epochs=0", "train.pretrain_epochs=0",
            "train.hwtune_epochs=1", "train.hwtune_steps=3", f"crossbar.train_fidelity='{fidelity}'",
            f"crossbar.backend='{backend}'"])
        trainer = Trainer(config, "/tmp/unused", progress=False, datasets=data)
        epoch = trainer.plan[0]
        state = trainer.place(trainer.initial_state(), fidelity)
        with parallel.use_mesh(trainer.mesh):
          state = trainer.begin_phase(state, epoch.phase)
          tx, step = trainer.train_step(epoch, state["masks"])
          state = parallel.replicate(trainer.mesh, {
              **state, "opt_state": tx.init(hardware_glue.trainable(state, config))})
          losses = []
          for images, labels in list(trainer.train_batches(0))[:3]:
            state, metrics = step(state, *parallel.shard_batch(trainer.mesh, images, labels))
            losses.append(float(metrics["loss"]))
          sharding = str(jax.tree_util.tree_leaves(state["params"])[0].sharding)
        name = fidelity if fidelity == "ideal" else f"{fidelity}_{backend}"
        out[f"{name}_{devices}"] = {"losses": losses, "sharding": sharding}
    try:  # the numba kernels refuse a mesh of several CPU devices (a deadlock there)
      from rramjax import hardware
      hw = hardware.HardwareConfig()
      mask = np.ones((3, 3, 2, 2), np.float32)
      plan = hardware.make_ou_plan(mask, hw)
      with parallel.use_mesh(parallel.make_mesh(4, 16)):
        jax.jit(lambda x: hardware.crossbar_conv(x, np.ones((3, 3, 2, 2), np.float32), mask, hw,
                                                 plan=plan, backend="numba")).lower(
            np.ones((16, 4, 4, 2), np.float32))
      out["refused"] = ""
    except Exception as e:  # pylint: disable=broad-except
      out["refused"] = f"{type(e).__name__}: {e}"
    import os  # a checkpoint of an array split over the 4 devices, read back by the test (1 device)
    from rramjax.train.checkpoint import Checkpointer
    mesh = parallel.make_mesh(4, 16)
    split = jax.device_put(np.arange(8, dtype=np.float32),
                           jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec("data")))
    ckpt = Checkpointer(os.environ["RRAMJAX_TEST_CKPT"])
    ckpt.save(1, {"w": split}, {"epochs_done": 1})
    ckpt.close()
    print(json.dumps(out))
""")


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
  folder = tmp_path_factory.mktemp("four_devices") / "checkpoints"
  env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=4",
         "PYTHONPATH": str(ROOT), "RRAMJAX_TEST_CKPT": str(folder)}
  out = subprocess.run([sys.executable, "-c", SCRIPT], cwd=ROOT, env=env, capture_output=True,
                       text=True, timeout=600, check=False)
  assert out.returncode == 0, out.stderr[-3000:]
  return {**json.loads(out.stdout.strip().splitlines()[-1]), "checkpoints": str(folder)}


def test_four_devices_give_the_losses_of_one(runs):
  assert runs["devices"] == 4
  one, four = runs["ideal_1"], runs["ideal_4"]
  assert len(one["losses"]) == 3
  assert one["losses"] == pytest.approx(four["losses"], rel=2e-5, abs=2e-6)
  assert "data" in four["sharding"] and "data" not in one["sharding"]  # really on the mesh


def test_four_devices_with_the_planned_crossbar(runs):
  """The planned `ou` kernels (XLA backend) run per device (shard_map). The first loss, before any
  update, is the same; after an update the gradients, summed across devices in another order, move
  weights by float rounding, and the crossbar's quantizers turn some of those into a changed code:
  the losses then agree to a fraction of a percent, not to float precision."""
  one, four = runs["ou_xla_1"], runs["ou_xla_4"]
  assert one["losses"][0] == pytest.approx(four["losses"][0], rel=1e-6)
  assert one["losses"] == pytest.approx(four["losses"], rel=1e-2)
  assert "data" in four["sharding"]


def test_numba_kernels_run_on_one_device_of_a_cpu_mesh(runs):
  """Host callbacks deadlock on a mesh of several CPU devices: the Trainer runs the numba 'ou'
  work on one device (the losses of a one-device run, exactly), and the crossbar refuses such a
  mesh with a clear error instead of hanging."""
  one, four = runs["ou_xla_1"], runs["ou_numba_4"]  # the backends agree bit for bit on one device
  assert one["losses"] == four["losses"]
  assert "'data': 1" in four["sharding"]  # a mesh of one device
  assert runs["refused"].startswith("ConfigError") and "one device" in runs["refused"]


def test_a_checkpoint_written_on_four_devices_restores_on_one(runs):
  """A run trained on several devices (train.cpu_devices) is read by a process with another device
  count (a sweep, a resume on a GPU): the restore places the state on this process's device."""
  import jax  # pylint: disable=g-import-not-at-top
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top
  import numpy as np  # pylint: disable=g-import-not-at-top
  from rramjax.train.checkpoint import Checkpointer  # pylint: disable=g-import-not-at-top
  assert jax.device_count() == 1
  ckpt = Checkpointer(runs["checkpoints"])
  try:
    state, meta = ckpt.restore({"w": jax.ShapeDtypeStruct((8,), jnp.float32)})  # as eval_shape gives
    whole, _ = ckpt.restore(None)  # whatever it holds (the mapper's export of an unfinished run)
  finally:
    ckpt.close()
  assert meta == {"epochs_done": 1}
  np.testing.assert_array_equal(np.asarray(state["w"]), np.arange(8, dtype=np.float32))
  np.testing.assert_array_equal(np.asarray(whole["w"]), np.arange(8, dtype=np.float32))


def test_impossible_meshes_are_clear_errors():
  with pytest.raises(ConfigError, match="train.devices"):
    parallel.make_mesh(64, 64)  # this process has one CPU device
  assert parallel.make_mesh(1, 7) is None


def test_split_cpu_makes_the_host_devices_before_jax_starts():
  """`train.cpu_devices`: a fresh process gets the CPU devices asked for; once jax has started
  with another count the run keeps what there is and the warning says so."""
  script = textwrap.dedent("""
      import json
      import jax
      from rramjax.train import parallel
      first = parallel.split_cpu(3)
      warnings = []
      again = parallel.split_cpu(2, warnings.append)
      print(json.dumps({"first": first, "again": again, "devices": jax.device_count(),
                        "warnings": warnings}))
  """)
  env = {**os.environ, "PYTHONPATH": str(ROOT)}
  env.pop("XLA_FLAGS", None)
  out = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True,
                       text=True, timeout=120, check=False)
  assert out.returncode == 0, out.stderr[-3000:]
  got = json.loads(out.stdout.strip().splitlines()[-1])
  assert got["first"] == 3 and got["again"] == 3 and got["devices"] == 3
  assert len(got["warnings"]) == 1 and "already started with 3 CPU device(s)" in got["warnings"][0]


def test_cpu_devices_must_be_a_count():
  from rramjax.config import load_config  # pylint: disable=g-import-not-at-top
  with pytest.raises(ConfigError, match="train.cpu_devices"):
    load_config("configs/fashion_mnist_small.py:smoke", ["train.cpu_devices=-1"])

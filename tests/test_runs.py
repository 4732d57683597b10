"""Run folders never lose a run: refusal or --overwrite, the strict resume contract, divergence by
meaning, clean interrupts, and one-line errors for file-system and input problems.

Most tests copy the shared dense CLI run (conftest.dense_cli_run: 2 epochs of 4 steps) and
check that a refused command leaves every byte of it as it was; the checks run before any
training, so these tests cost no training. The CLI runs in process (`cli.main`) unless the exit
status of a real process (signals) or its output at exit (orbax's threads) is under test.
"""

import glob
import hashlib
import json
import pathlib
import shutil
import signal
import subprocess
import sys
import tempfile
import time

import numpy as np
import pytest

from conftest import DENSE, ROOT, SMOKE_SPEC, run_cli, set_args
from rramjax import cli
from rramjax.errors import CheckpointError, WorkdirError
from rramjax.mapper import save_masks
from rramjax.train import workdir as workdir_lib
from rramjax.train.checkpoint import Checkpointer

SPEC = str(ROOT / SMOKE_SPEC)


def snapshot(folder: pathlib.Path) -> dict:
  """Every file under `folder` with its SHA-256: equal snapshots mean nothing was touched."""
  return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
          for p in sorted(folder.rglob("*")) if p.is_file()}


def main(capsys, *argv) -> tuple[int, str, str]:
  """`rramjax ARGV` in this process: (exit status, stdout, stderr)."""
  code = cli.main([str(a) for a in argv])
  out = capsys.readouterr()
  return code, out.out, out.err


def assert_one_line_error(code, err, *needles):
  assert code == 2, err
  assert err.startswith("rramjax ") and ": error: " in err, err
  assert err.count("\n") == 1 and "Traceback" not in err, err
  for needle in needles:
    assert needle in err, err


@pytest.fixture
def run_copy(dense_cli_run, tmp_path) -> pathlib.Path:
  """A finished dense smoke run of its own (config, metrics, summary, checkpoints 1 and 2)."""
  source, out = dense_cli_run
  assert out.returncode == 0, out.stderr[-3000:]
  workdir = tmp_path / "run"
  shutil.copytree(source, workdir)
  return workdir


@pytest.fixture
def unwritable(tmp_path):
  """A folder in which creating a file fails: a read-only folder, or /sys for root (root ignores
  permissions but not sysfs); skipped where neither refuses a write."""
  folder = tmp_path / "read-only"
  folder.mkdir()
  folder.chmod(0o500)
  try:
    for candidate in (folder, pathlib.Path("/sys")):
      try:
        with tempfile.TemporaryFile(dir=candidate):
          pass
      except OSError:
        yield candidate
        return
    pytest.skip("no folder here refuses to be written (root, and /sys is writable)")
  finally:
    folder.chmod(0o700)


# Where a run goes, and a folder that holds one ------------------------------------------------
def test_default_workdir_includes_the_variant(monkeypatch, capsys):
  """`run configs/fashion_mnist_small.py:smoke` no longer lands on the main job's runs/fashion_mnist_small."""
  seen = []

  def record(config, workdir, **kwargs):
    seen.append(str(workdir))
    raise WorkdirError("stop here")

  monkeypatch.setattr("rramjax.train.train_and_evaluate", record)
  code, _, err = main(capsys, "run", SPEC, "--no-progress")
  assert code == 2 and "stop here" in err
  assert seen == [str(pathlib.Path("runs") / "fashion_mnist_small_smoke")]
  assert workdir_lib.default_workdir("fashion_mnist_small") == pathlib.Path("runs/fashion_mnist_small")
  # A variant that renames the config is not repeated.
  assert workdir_lib.default_workdir("fashion_mnist_wide", "wide") == pathlib.Path("runs/fashion_mnist_wide")


def test_a_folder_holding_a_run_is_refused_and_left_untouched(run_copy):
  """The same command twice: the second stops at once, naming --resume and --workdir."""
  before = snapshot(run_copy)
  out = run_cli("run", SMOKE_SPEC, "--workdir", run_copy, "--no-progress", *set_args(DENSE))
  assert_one_line_error(out.returncode, out.stderr, "already holds a run", "--resume",
                        "--workdir NEW_FOLDER", "config.json, metrics.jsonl, summary.json, checkpoints")
  assert snapshot(run_copy) == before


def test_overwrite_replaces_the_run_and_says_what_it_removes(run_copy, capsys):
  (run_copy / "notes.txt").write_text("mine")
  (run_copy / "metrics.dropped-20240101-000000.jsonl").write_text("{}\n")
  with (run_copy / "metrics.jsonl").open("a") as f:
    f.write(json.dumps({"step": 999, "marker": "the previous run"}) + "\n")
  code, out, err = main(capsys, "run", SPEC, "--workdir", run_copy, "--overwrite", "--no-progress",
                        *set_args(DENSE))
  assert code == 0, err
  assert ("--overwrite: removed the previous run's config.json, metrics.jsonl, summary.json, "
          "checkpoints, masks.npz, mapping.json, metrics.dropped-20240101-000000.jsonl") in err
  assert "== rramjax report ==" in out
  assert (run_copy / "notes.txt").read_text() == "mine"  # not a run's file: kept
  assert not list(run_copy.glob("metrics.dropped-*"))
  rows = [json.loads(line) for line in (run_copy / "metrics.jsonl").read_text().splitlines()]
  assert all("marker" not in r for r in rows)
  assert [r["epoch"] for r in rows if "test_accuracy" in r] == [1, 2]
  assert workdir_lib.checkpoint_epochs(run_copy) == [1, 2]


def test_resume_and_overwrite_exclude_each_other(run_copy, capsys):
  with pytest.raises(SystemExit) as e:
    cli.main(["run", SPEC, "--workdir", str(run_copy), "--resume", "--overwrite"])
  assert e.value.code == 2 and "not allowed with argument" in capsys.readouterr().err


# The resume contract ---------------------------------------------------------------------------
def test_resume_with_another_seed_or_learning_rate_names_them_and_writes_nothing(run_copy, capsys):
  before = snapshot(run_copy)
  code, _, err = main(capsys, "run", SPEC, "--workdir", run_copy, "--resume", "--no-progress",
                      *set_args(DENSE), "--set", "seed=1", "--set", "train.pretrain_lr=0.01",
                      "--set", "hardware.adc_bits=6")
  assert_one_line_error(code, err, "differs in 3 key(s)", "hardware.adc_bits: 8 -> 6",
                        "seed: 0 -> 1", "train.pretrain_lr: 0.002 -> 0.01", "new --workdir")
  assert snapshot(run_copy) == before  # config.json still describes the run that happened


def test_resume_accepts_the_harmless_keys_and_records_them(run_copy, capsys):
  """Logging and evaluation-only keys may change; the finished run only redoes its report."""
  code, out, err = main(capsys, "run", SPEC, "--workdir", run_copy, "--resume", "--no-progress",
                        *set_args(DENSE), "--set", "train.log_every=3",
                        "--set", "crossbar.eval_limit=64")
  assert code == 0, err
  assert "Resuming with changed crossbar.eval_limit, train.log_every" in err
  assert "Resumed from" in out and "after epoch 2" in out
  recorded = json.loads((run_copy / "config.json").read_text())
  assert recorded["train"]["log_every"] == 3 and recorded["crossbar"]["eval_limit"] == 64


def test_resume_without_a_checkpoint_is_an_error_and_keeps_the_metrics(run_copy, capsys):
  shutil.rmtree(run_copy / "checkpoints")
  before = snapshot(run_copy)
  code, _, err = main(capsys, "run", SPEC, "--workdir", run_copy, "--resume", "--no-progress",
                      *set_args(DENSE))
  assert_one_line_error(code, err, "no checkpoint to resume from", "--overwrite")
  assert snapshot(run_copy) == before  # metrics.jsonl not truncated, no run started


def test_resume_in_an_empty_folder_starts_a_run_and_checks_before_writing(tmp_path, capsys):
  """--resume with no run says it starts one; a failing check (no data) leaves no folder."""
  workdir = tmp_path / "new" / "run"
  code, _, err = main(capsys, "run", SPEC, "--workdir", workdir, "--resume", "--no-progress",
                      *set_args(DENSE), "--set", f"data.data_dir={tmp_path / 'no-data'}")
  assert f"{str(workdir)!r} holds no run yet: --resume starts a new one there." in err
  assert code == 2 and "dataset-fashion-mnist" in err and "Traceback" not in err
  assert not (tmp_path / "new").exists()


def test_a_branch_resumed_with_another_shape_names_the_entries_and_exits_cleanly(run_copy, tmp_path):
  """A checkpoint copied into a new folder (a branch) and resumed with a config whose state has
  other shapes (a wider model) is refused before any array is read: one line naming the entries
  and both shapes, and no orbax reader left running into the exit ("Event loop is closed")."""
  branch = tmp_path / "branch"
  shutil.copytree(run_copy / "checkpoints" / "2", branch / "checkpoints" / "2")
  out = run_cli("run", SPEC, "--workdir", branch, "--resume", "--no-progress", *set_args(DENSE),
                "--set", "model.width=0.5")
  err = out.stderr
  assert out.returncode == 2, err[-3000:]
  assert "Traceback" not in err and "Event loop is closed" not in err, err[-3000:]
  assert "comes from another configuration" in err and "in the checkpoint" in err, err
  assert "batch_stats.norms.0.mean (8,) in the checkpoint, (16,) here" in err, err
  assert not (branch / "config.json").exists()  # nothing recorded for a refused branch


def test_checkpoint_shape_check_names_every_kind_of_difference(tmp_path):
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top
  ckpt = Checkpointer(tmp_path / "checkpoints")
  try:
    ckpt.save(1, {"lib": [jnp.zeros((8, 9))], "w": jnp.ones(3)}, {"epochs_done": 1})
    with pytest.raises(CheckpointError) as e:
      ckpt.restore({"lib": [jnp.zeros((12, 9))], "v": jnp.ones(3)})
    text = str(e.value)
    assert "lib.0 (8, 9) in the checkpoint, (12, 9) here" in text, text
    assert "v missing from the checkpoint" in text and "w in the checkpoint only" in text, text
    state, meta = ckpt.restore({"lib": [jnp.zeros((8, 9))], "w": jnp.zeros(3)})
    assert meta == {"epochs_done": 1} and float(state["w"].sum()) == 3.0
  finally:
    ckpt.close()


def test_metrics_rows_past_the_checkpoint_are_moved_aside(tmp_path):
  from rramjax.train.metrics import MetricsWriter  # pylint: disable=g-import-not-at-top
  path = tmp_path / "metrics.jsonl"
  rows = [{"step": s, "train_loss": 1.0} for s in (2, 4, 6, 8)]
  path.write_text("".join(json.dumps(r) + "\n" for r in rows) + '{"step": 1')
  writer = MetricsWriter(path, resume_step=4)
  side, moved = writer.dropped
  assert moved == 3 and side.name.startswith("metrics.dropped-")
  assert side.read_text().splitlines() == [json.dumps(rows[2]), json.dumps(rows[3]), '{"step": 1']
  writer.write({"step": 5})
  assert [json.loads(line)["step"] for line in path.read_text().splitlines()] == [2, 4, 5]
  MetricsWriter(path)  # a new writer appends: nothing is truncated
  assert len(path.read_text().splitlines()) == 3


# Divergence ------------------------------------------------------------------------------------
def test_an_exploding_loss_stops_the_run_without_claiming_a_checkpoint(tmp_path, capsys):
  """Adam at lr 1e6: the loss jumps to ~1e13 (finite) in the first epoch; no checkpoint exists."""
  workdir = tmp_path / "run"
  code, _, err = main(capsys, "run", SPEC, "--workdir", workdir, "--no-progress",
                      *set_args(DENSE), "--set", "train.pretrain_lr=1e6")
  assert_one_line_error(code, err, "at step 2 (epoch 1, phase pretrain)",
                        "over train.divergence_factor (10)", "Lower train.pretrain_lr (now 1e+06)",
                        "No checkpoint exists yet")
  assert workdir_lib.checkpoint_epochs(workdir) == []
  assert "summary.json" not in snapshot(workdir)


# Interrupts --------------------------------------------------------------------------------------
def test_an_interrupt_inside_a_checkpoint_save_takes_effect_when_it_is_complete(tmp_path):
  """Ctrl-C while orbax's asynchronous write is in flight: the checkpoint is finished (checksums
  included), then KeyboardInterrupt is raised."""
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top
  previous = signal.signal(signal.SIGINT, signal.default_int_handler)
  ckpt = Checkpointer(tmp_path / "checkpoints")
  real_save = ckpt._manager.save  # pylint: disable=protected-access

  def save_then_interrupt(*args, **kwargs):
    started = real_save(*args, **kwargs)  # returns with the write still running in orbax's threads
    signal.raise_signal(signal.SIGINT)
    return started

  ckpt._manager.save = save_then_interrupt  # pylint: disable=protected-access
  try:
    with pytest.raises(KeyboardInterrupt):
      ckpt.save(1, {"w": jnp.arange(3.0)}, {"epochs_done": 1})
    assert (tmp_path / "checkpoints" / "1" / "checksums.json").is_file()
    ckpt.verify(1)
    assert ckpt.restore({"w": jnp.zeros(3)})[1] == {"epochs_done": 1}
  finally:
    ckpt.close()
    signal.signal(signal.SIGINT, previous)


@pytest.mark.parametrize("signum,status,word", [(signal.SIGINT, 130, "interrupted (SIGINT)"),
                                                (signal.SIGTERM, 143, "terminated (SIGTERM)")])
def test_a_signal_during_a_checkpoint_write_ends_cleanly(tmp_path, signum, status, word):
  """The signal lands while orbax writes the first checkpoint: the write completes, orbax's
  threads stop, and the process exits promptly with 128 + the signal (no segfault, no hang)."""
  workdir = tmp_path / "run"
  # Ctrl-C at a terminal: the child takes SIGINT as Python does in the foreground. (A suite started
  # in the background, `pytest ... &` without job control, passes SIGINT on ignored, as the shell
  # asks, and the run rightly went on.) Epochs enough that the signal lands before the run ends.
  start = ("import runpy, signal; signal.signal(signal.SIGINT, signal.default_int_handler); "
           "runpy.run_module('rramjax', run_name='__main__', alter_sys=True)")
  cmd = [sys.executable, "-c", start, "run", SMOKE_SPEC, "--workdir", str(workdir),
         "--no-progress", *set_args((*DENSE, "train.pretrain_epochs=40"))]
  with open(tmp_path / "out.log", "w") as log, open(tmp_path / "err.log", "w") as errors:
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=log, stderr=errors)
    deadline = time.monotonic() + 300
    while (not glob.glob(str(workdir / "checkpoints" / "1*")) and proc.poll() is None
           and time.monotonic() < deadline):
      time.sleep(0.001)
    proc.send_signal(signum)  # the epoch's checkpoint folder (orbax's temporary one) exists
    try:
      proc.wait(timeout=120)
    except subprocess.TimeoutExpired:
      proc.kill()
      proc.wait()
      pytest.fail("the process hung after the signal")
  err = (tmp_path / "err.log").read_text()
  assert proc.returncode == status, err[-3000:]
  assert "Traceback" not in err and "Event loop is closed" not in err, err[-3000:]
  assert f"rramjax run: {word}." in err and "continue with --resume" in err, err
  epochs = workdir_lib.checkpoint_epochs(workdir)
  assert epochs and epochs[0] == 1
  ckpt = Checkpointer(workdir / "checkpoints")
  for epoch in epochs:  # each one complete: its checksums were written after the orbax commit
    assert (workdir / "checkpoints" / str(epoch) / "checksums.json").is_file()
    ckpt.verify(epoch)
  ckpt.close()


# File-system and input errors: one line, nothing written ----------------------------------------
def test_workdir_that_is_a_file_or_under_one_is_a_clean_error(tmp_path, capsys):
  path = tmp_path / "file"
  path.write_text("data")
  code, _, err = main(capsys, "run", SPEC, "--workdir", path, "--no-progress")
  assert_one_line_error(code, err, f"work directory {str(path)!r} is a file, not a folder")
  code, _, err = main(capsys, "run", SPEC, "--workdir", path / "run", "--no-progress")
  assert_one_line_error(code, err, f"lies under {str(path)!r}, which is a file")
  assert path.read_text() == "data"


def test_workdir_that_cannot_be_written_is_a_clean_error(unwritable, capsys):
  code, _, err = main(capsys, "run", SPEC, "--workdir", unwritable / "run", "--no-progress")
  assert_one_line_error(code, err, f"cannot be created in {str(unwritable)!r}")
  code, _, err = main(capsys, "run", SPEC, "--workdir", unwritable, "--no-progress")
  assert_one_line_error(code, err, f"work directory {str(unwritable)!r} cannot be written")


@pytest.fixture
def masks_file(tmp_path) -> pathlib.Path:
  rng = np.random.default_rng(0)
  path = tmp_path / "masks.npz"
  save_masks(path, [rng.random((3, 3, 3, 4)) < 0.5, rng.random((3, 3, 4, 4)) < 0.5], out_hw=[8, 4])
  return path


def test_map_out_that_is_a_file_fails_before_the_table(masks_file, tmp_path, capsys):
  out = tmp_path / "out.txt"
  out.write_text("x")
  code, printed, err = main(capsys, "map", masks_file, "--out", out)
  assert_one_line_error(code, err, f"--out {str(out)!r} is a file")
  assert printed == ""  # the table is not printed before the error


def test_map_out_that_cannot_be_written_fails_before_the_table(masks_file, unwritable, capsys):
  code, printed, err = main(capsys, "map", masks_file, "--out", unwritable)
  assert_one_line_error(code, err, f"--out {str(unwritable)!r} cannot be written")
  assert printed == ""


def test_huge_bit_widths_fail_at_once(tmp_path, capsys):
  start = time.monotonic()
  code, _, err = main(capsys, "run", SPEC, "--workdir", tmp_path / "run", "--no-progress",
                      "--set", "hardware.weight_bits=40", "--set", "hardware.adc_bits=40")
  assert_one_line_error(code, err, "HardwareConfig.weight_bits must be <= 16")
  assert time.monotonic() - start < 5 and not (tmp_path / "run").exists()

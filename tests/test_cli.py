"""The `rramjax` command: help, clean errors (exit 2, no traceback) and an end-to-end smoke run."""

import json
import shutil
import subprocess
import sys

import pytest

from conftest import DENSE, ROOT, SCRIPT, SMOKE_SPEC, run_cli, set_args


@pytest.mark.parametrize("how", ["script", "module"])
def test_help_exits_0(how):
  cmd = [str(SCRIPT)] if how == "script" else [sys.executable, "-m", "rramjax"]
  if how == "script" and not SCRIPT.exists():
    pytest.skip("the rramjax console script is not installed next to this interpreter")
  out = subprocess.run(cmd + ["--help"], cwd=ROOT, capture_output=True, text=True, timeout=120,
                       check=False)
  assert out.returncode == 0, out.stderr
  assert "usage: rramjax" in out.stdout and "run" in out.stdout and "map" in out.stdout


def test_run_help_lists_the_options():
  out = run_cli("run", "--help")
  assert out.returncode == 0, out.stderr
  for option in ("--workdir", "--resume", "--overwrite", "--set", "--no-progress"):
    assert option in out.stdout


def test_no_command_is_a_usage_error():
  out = run_cli()
  assert out.returncode == 2 and "usage: rramjax" in out.stderr


def _clean_error(out, *needles):
  assert out.returncode == 2, (out.stdout[-2000:], out.stderr[-2000:])
  assert "Traceback" not in out.stderr, out.stderr
  assert out.stderr.startswith("rramjax run: error: "), out.stderr
  for needle in needles:
    assert needle in out.stderr, out.stderr


def test_missing_config_file_exits_2_without_traceback():
  _clean_error(run_cli("run", "missing.py"), "'missing.py' not found", "configs/fashion_mnist_small.py")


def test_bad_override_exits_2_naming_the_key():
  _clean_error(run_cli("run", SMOKE_SPEC, "--set", "train.batch_size=-1"), "train.batch_size")


def test_missing_data_exits_2_with_how_to_get_it(tmp_path):
  out = run_cli("run", SMOKE_SPEC, "--workdir", tmp_path / "run", "--no-progress",
                "--set", f"data.data_dir={tmp_path / 'no-data'}")
  _clean_error(out, str(tmp_path / "no-data"), "dataset-fashion-mnist")


def test_map_without_an_importable_mapper_is_a_clear_error(monkeypatch, capsys):
  """A broken install keeps `map` in the help and says why it cannot run (exit 2, one line)."""
  from rramjax import cli  # pylint: disable=g-import-not-at-top
  monkeypatch.setitem(sys.modules, "rramjax.mapper", None)  # makes `import rramjax.mapper` fail
  assert "{run,map,sweep}" in cli.build_parser().format_help()
  assert cli.main(["map", "masks.npz", "--out", "unused"]) == 2
  err = capsys.readouterr().err
  assert err.startswith("rramjax map: error: the mapper cannot be imported ("), err
  assert "reinstall rramjax" in err and "Traceback" not in err


def test_end_to_end_smoke_run_prints_the_report(dense_cli_run):
  workdir, out = dense_cli_run
  assert out.returncode == 0, out.stderr[-3000:]
  assert "== rramjax report ==" in out.stdout
  assert "test accuracy" in out.stdout and "conv total" in out.stdout
  summary = json.loads((workdir / "summary.json").read_text())
  assert summary["epochs"] == 2 and summary["steps"] == 8 and "mapping" in summary
  for name in ("metrics.jsonl", "config.json", "masks.npz", "mapping.json"):
    assert (workdir / name).is_file(), name


def test_resume_of_corrupt_checkpoint_exits_2_without_traceback(dense_cli_run, tmp_path):
  """A damaged checkpoint is a clean error: no traceback from orbax's asynchronous readers."""
  source, first = dense_cli_run
  assert first.returncode == 0, first.stderr[-3000:]
  workdir = tmp_path / "run"
  shutil.copytree(source, workdir)
  latest = max((p for p in (workdir / "checkpoints").iterdir() if p.name.isdigit()),
               key=lambda p: int(p.name))
  for path in (latest / "state").rglob("*"):
    if path.is_file():
      path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
  out = run_cli("run", SMOKE_SPEC, "--workdir", workdir, "--no-progress", "--resume",
                *set_args(DENSE))
  _clean_error(out, str(latest), "is corrupt", "--overwrite")

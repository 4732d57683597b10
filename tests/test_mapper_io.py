"""Mask files, reports and the `rramjax map` subcommand function."""

import argparse
import csv
import json
import os
import pathlib

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rramjax.errors import ConfigError, MaskError
from rramjax.mapper import (MapperConfig, format_table, load_mask_file, load_masks, map_network,
                            plot_report, pooled_out_hw, save_masks, write_csv, write_json)
from rramjax.mapper.cli import add_map_arguments, run_map

SETTINGS = settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def test_load_masks_in_natural_network_order(tmp_path):
  path = tmp_path / "m.npz"
  np.savez(path, conv_10=np.ones((3, 3, 1, 10)), conv_2=np.ones((3, 3, 1, 2)), out_hw=[4, 8])
  names, masks, out_hw = load_mask_file(path)
  assert names == ["conv_2", "conv_10"] and [m.shape[-1] for m in masks] == [2, 10]
  np.testing.assert_array_equal(out_hw, [[4, 4], [8, 8]])
  assert all(m.dtype == bool for m in load_masks(path))


@SETTINGS
@given(st.sampled_from(["missing", "garbage", "npy", "empty", "rank", "nan", "shape", "zero", "out_hw"]))
def test_bad_mask_files_raise_mask_error(tmp_path, kind):
  path = tmp_path / f"{kind}.npz"
  if kind == "garbage":
    path.write_bytes(b"PK\x03\x04 not really a zip")
  elif kind == "npy":
    np.save(tmp_path / "a.npy", np.ones((3, 3, 1, 1)))
    os.replace(tmp_path / "a.npy", path)
  elif kind != "missing":
    arrays = {"empty": {}, "rank": {"conv_00": np.ones((3, 3))}, "nan": {"conv_00": np.full((3, 3, 1, 1), np.nan)},
              "shape": {"conv_00": np.ones((1, 1, 2, 2))}, "zero": {"conv_00": np.ones((3, 3, 0, 1))},
              "out_hw": {"conv_00": np.ones((3, 3, 1, 1)), "out_hw": [4, 4]}}[kind]
    np.savez(path, **arrays)
  elif path.exists():
    path.unlink()
  with pytest.raises(MaskError):
    load_masks(path)


def test_pooled_out_hw_vgg16():
  sides = pooled_out_hw(13, 32, [1, 3, 6, 9, 12])[:, 0]
  assert sides.tolist() == [32, 32, 16, 16, 8, 8, 8, 4, 4, 4, 2, 2, 2]
  assert pooled_out_hw(13, 224, [1, 3, 6, 9, 12])[-1, 0] == 14


def small_report(schemes=("pattern",)):
  rng = np.random.default_rng(1)
  masks = [rng.random((3, 3, 3, 8)) < 0.3, rng.random((3, 3, 8, 16)) < 0.2]
  return map_network(masks, [8, 4], extra_layers={"fc": (np.ones((16, 10)), 1)}, keep_placement=True,
                     schemes=schemes)


@pytest.mark.parametrize("schemes", [("pattern",), ("best", "pattern", "packed")])
def test_reports_json_csv_table_and_plots(tmp_path, schemes):
  report = small_report(schemes)
  text = format_table(report)
  assert "conv_01" in text and "conv total" in text and "fc" in text
  for scheme in schemes:  # every scheme has its row in the totals, side by side
    assert any(line.startswith(scheme) for line in text.splitlines())
  data = json.loads(open(write_json(report, tmp_path / "r.json")).read())
  assert data["schema"] == "rramjax.mapper.report/2" and data["schemes"] == list(schemes)
  assert "placement" not in data["layers"][0]["pattern"]
  for scheme in schemes:
    assert data["totals"][scheme]["arrays"] == report["totals"][scheme]["arrays"]
    assert data["totals"]["ratios_by_scheme"][scheme]["speedup_balanced"] is not None
  rows = list(csv.DictReader(open(write_csv(report, tmp_path / "r.csv"))))
  assert [row["name"] for row in rows] == ["conv_00", "conv_01", "fc", "total_conv", "total_network"]
  assert float(rows[0]["pattern.ou_activations"]) == report["layers"][0]["pattern"]["ou_activations"]
  for scheme in schemes:
    assert float(rows[3][f"{scheme}.energy_efficiency"]) == pytest.approx(
        report["totals"]["ratios_by_scheme"][scheme]["energy_efficiency"])
  assert float(rows[3]["ratios.area_efficiency"]) == pytest.approx(report["totals"]["ratios"]["area_efficiency"])
  paths = plot_report(report, tmp_path / "plots", report["layers"][1][schemes[0]].get("placement")
                      or report["layers"][1]["pattern"]["placement"])
  assert len(paths) == 3 and all(os.path.getsize(p) > 1000 for p in paths)


def test_run_map_on_a_temporary_npz(tmp_path, capsys):
  rng = np.random.default_rng(2)
  path = tmp_path / "masks.npz"
  save_masks(path, [rng.random((3, 3, 3, 4)) < 0.5, rng.random((3, 3, 4, 4)) < 0.5])
  parser = add_map_arguments(argparse.ArgumentParser())
  args = parser.parse_args([str(path), "--out", str(tmp_path / "out"), "--input-size", "8", "--pool-after", "0"])
  assert run_map(args) == 0
  printed = capsys.readouterr().out
  assert "conv total" in printed
  data = json.load(open(tmp_path / "out" / "mapping.json"))
  assert [layer["out_pixels"] for layer in data["layers"]] == [64, 16]
  assert (tmp_path / "out" / "mapping.csv").exists()


def test_run_map_reads_out_hw_and_plots(tmp_path):
  path = tmp_path / "masks.npz"
  save_masks(path, [np.ones((3, 3, 2, 2)), np.ones((3, 3, 2, 2))], out_hw=[5, 3])
  args = add_map_arguments(argparse.ArgumentParser()).parse_args([str(path), "--out", str(tmp_path), "--plot"])
  run_map(args)
  data = json.load(open(tmp_path / "mapping.json"))
  assert [layer["out_pixels"] for layer in data["layers"]] == [25, 9]
  assert (tmp_path / "occupancy.png").exists() and (tmp_path / "layers.png").exists()


def make_run_folder(folder, overrides=()):
  """A run folder as `rramjax run` leaves it: config.json (the smoke config) and masks.npz."""
  from rramjax.config import load_config  # pylint: disable=g-import-not-at-top
  config = load_config(str(pathlib.Path(__file__).parents[1] / "configs/fashion_mnist_small.py"),
                       list(overrides))
  folder.mkdir(parents=True, exist_ok=True)
  (folder / "config.json").write_text(json.dumps(config.to_dict(), default=str))
  rng = np.random.default_rng(4)
  save_masks(folder / "masks.npz", [rng.random((3, 3, 1, 8)) < 0.3, rng.random((3, 3, 8, 8)) < 0.3],
             out_hw=[28, 14])
  return config


def test_run_map_on_a_run_folder_uses_its_hardware_and_mapper(tmp_path):
  run = tmp_path / "run"
  make_run_folder(run, ["hardware.sign_encoding='differential'", "mapper.scheme='packed'",
                        "mapper.ou_energy='per_row'"])
  parse = add_map_arguments(argparse.ArgumentParser()).parse_args
  assert run_map(parse([str(run), "--out", str(tmp_path / "a")])) == 0
  data = json.load(open(tmp_path / "a" / "mapping.json"))
  assert data["hardware"]["sign_encoding"] == "differential" and data["schemes"][0] == "packed"
  assert data["cost_model"]["ou_energy"] == "per_row"
  assert [layer["out_pixels"] for layer in data["layers"]] == [784, 196]
  # Flags override the run's settings.
  run_map(parse([str(run), "--out", str(tmp_path / "b"), "--scheme", "best", "--sign-encoding", "offset",
                 "--filter-order", "greedy", "--ou-energy", "per_ou"]))
  data = json.load(open(tmp_path / "b" / "mapping.json"))
  assert data["hardware"]["sign_encoding"] == "offset" and data["schemes"][0] == "best"
  assert data["filter_order"] == "greedy" and data["cost_model"]["ou_energy"] == "per_ou"


def test_run_map_rejects_a_folder_that_is_not_a_run(tmp_path):
  args = add_map_arguments(argparse.ArgumentParser()).parse_args([str(tmp_path), "--out", str(tmp_path / "o")])
  with pytest.raises(MaskError, match="not a run folder"):
    run_map(args)
  (tmp_path / "config.json").write_text("{not json")
  with pytest.raises(ConfigError, match="config.json"):
    run_map(args)


def test_mapper_config_section_of_a_run():
  from rramjax.config import from_dict, load_config  # pylint: disable=g-import-not-at-top
  spec = str(pathlib.Path(__file__).parents[1] / "configs/fashion_mnist_small.py")
  config = load_config(spec, ["mapper.scheme='best'", "mapper.objective='area'", "prune.granularity='ou_group'"])
  assert isinstance(config.mapper, MapperConfig) and config.mapper.scheme == "best"
  assert config.mapper.schemes == ("best", "pattern", "packed") and config.prune.granularity == "ou_group"
  assert from_dict(config.to_dict()) == config
  assert load_config(spec).mapper == MapperConfig()  # default: the paper's scheme, today's figures
  for override, key in (("mapper.scheme='dense'", "mapper.scheme"), ("mapper.colour=1", "mapper.colour"),
                        ("prune.granularity='filter'", "prune.granularity")):
    with pytest.raises(ConfigError, match=key):
      load_config(spec, [override])


def test_run_map_missing_file_is_a_mask_error(tmp_path):
  args = add_map_arguments(argparse.ArgumentParser()).parse_args([str(tmp_path / "none.npz"), "--out", str(tmp_path)])
  with pytest.raises(MaskError, match="does not exist"):
    run_map(args)


def test_mapper_sources_import_no_jax_flax_or_training():
  """docs/MODEL.md section 4: the mapper is numpy only (checked on the sources, not sys.modules,
  because the package's own __init__ may import the jax side)."""
  import ast
  import pathlib
  import rramjax.mapper
  for source in pathlib.Path(rramjax.mapper.__file__).parent.glob("*.py"):
    for node in ast.walk(ast.parse(source.read_text())):
      names = ([alias.name for alias in node.names] if isinstance(node, ast.Import)
               else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
      for name in names:
        assert name.split(".")[0] not in ("jax", "flax", "optax", "chex"), (source.name, name)
        assert not name.startswith(("rramjax.train", "rramjax.models", "rramjax.data")), (source.name, name)

"""What the wheel and sdist carry: the licence as an SPDX expression with its file, and the demo's reference
checkpoint as package data that loads safely."""

import fnmatch
import tomllib
import warnings
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())


def test_license_is_an_spdx_string_with_its_file_and_setuptools_does_not_warn(monkeypatch):
    project = PYPROJECT["project"]
    assert project["license"] == "MIT" and project["license-files"] == ["LICENSE"]
    assert "MIT License" in (ROOT / "LICENSE").read_text()
    assert not any(c.startswith("License ::") for c in project.get("classifiers", []))  # PEP 639: not both
    pyprojecttoml = pytest.importorskip("setuptools.config.pyprojecttoml")
    from setuptools.dist import Distribution

    monkeypatch.chdir(ROOT)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        dist = pyprojecttoml.apply_configuration(Distribution(), "pyproject.toml")
    assert [str(w.message) for w in caught if "license" in str(w.message).lower()] == []
    assert dist.metadata.license_expression == "MIT"


def test_the_demo_reference_checkpoint_is_package_data_and_loads_with_weights_only():
    from hookgnn.cli.demo import REFERENCE, ROUNDS, load_reference

    patterns = PYPROJECT["tool"]["setuptools"]["package-data"]["hookgnn"]
    relative = REFERENCE.relative_to(ROOT / "hookgnn").as_posix()
    assert any(fnmatch.fnmatch(relative, p) for p in patterns), f"{relative} is not in package-data {patterns}"
    assert REFERENCE.stat().st_size < 300_000  # a few hundred kB at most
    data = torch.load(REFERENCE, weights_only=True)
    assert data["format"] == "hookgnn-checkpoint" and data["train_config"]["seed"] == 0
    model, config = load_reference()
    assert model.max_steps == ROUNDS and not model.training and config.steps == 400


def test_a_checkpoint_of_another_model_is_refused_as_a_demo_reference(tmp_path):
    from hookgnn.cli.demo import load_reference
    from hookgnn.training import build_model, save_checkpoint

    path = tmp_path / "bfs.pt"
    save_checkpoint(path, build_model("bfs", d_hidden=4, max_steps=3), "bfs")
    with pytest.raises(ValueError, match="not a demo reference checkpoint"):
        load_reference(path)


def test_the_package_version_is_the_metadata_version():
    import hookgnn

    assert hookgnn.__version__ == PYPROJECT["project"]["version"]

"""The conda environment for learners and the pip package declare the same dependencies."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
# conda-forge names that differ from the PyPI names
CONDA_TO_PYPI = {"python-kubernetes": "kubernetes"}
CONDA_ONLY = {"python", "pip"}


def _split(requirement: str) -> tuple[str, str]:
    name, spec = re.match(r"^\s*([A-Za-z0-9_.\-]+)\s*(.*)$", requirement).groups()
    return name.lower(), spec.replace(" ", "")


def test_environment_yml_matches_pyproject_dependencies() -> None:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    pip_deps = dict(_split(r) for r in pyproject["project"]["dependencies"])

    environment = yaml.safe_load((ROOT / "environment.yml").read_text())
    assert "conda-forge" in environment["channels"]
    conda_deps = {}
    for entry in environment["dependencies"]:
        assert isinstance(entry, str), "keep environment.yml to conda packages; pip extras go in pyproject"
        name, spec = _split(entry)
        if name not in CONDA_ONLY:
            conda_deps[CONDA_TO_PYPI.get(name, name)] = spec

    assert conda_deps == pip_deps


def test_python_floor_agrees() -> None:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    environment = yaml.safe_load((ROOT / "environment.yml").read_text())
    floor = pyproject["project"]["requires-python"]
    assert f"python{floor}" in environment["dependencies"]

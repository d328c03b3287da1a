"""Packaging: the conda environment and the pip package declare the same dependencies, and a regular
(non-editable) install of the wheel carries a working workbook."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
import tomllib
import zipfile
from pathlib import Path

import pytest
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


# --- a regular install: the wheel carries the workbook ------------------------------------------------


def uv() -> str:
    """The uv that the test extra installs beside this interpreter (else one on PATH)."""
    found = shutil.which("uv", path=str(Path(sys.executable).parent)) or shutil.which("uv")
    if found is None:
        pytest.fail("uv is missing: `pip install -e '.[test]'` installs it")
    return found


def build_wheel(out: Path) -> Path:
    """The wheel, built as a registry would (source distribution first, then the wheel from it),
    so nothing is written into the checkout."""
    subprocess.run([uv(), "build", "--quiet", "--out-dir", str(out), str(ROOT)], check=True, timeout=300)
    (wheel,) = out.glob("jhtutorial-*.whl")
    return wheel


def test_the_wheel_ships_every_manifest_and_notebook(tmp_path: Path) -> None:
    from jhtutorial.manifests import MANIFEST_FILES

    wheel = build_wheel(tmp_path)
    names = set(zipfile.ZipFile(wheel).namelist())
    notebooks = sorted(p.name for p in (ROOT / "notebooks").glob("[0-9][0-9]-*.ipynb"))
    assert {f"jhtutorial/_manifests/{name}" for name in MANIFEST_FILES} <= names
    assert {f"jhtutorial/_notebooks/{name}" for name in notebooks} <= names
    assert len(notebooks) == 9


def test_a_wheel_installed_elsewhere_runs_the_tutorial_from_an_empty_folder(
    tmp_path: Path, kubeconfig: Path, namespace: str
) -> None:
    """`pip install jhtutorial-*.whl` (here uv, from its cache), then `jhtutorial up` and
    `jhtutorial run --only 00 01` from a folder that holds nothing: the manifests and the notebooks
    come from the installed package, not from this checkout."""
    began = time.monotonic()
    wheel = build_wheel(tmp_path / "dist")
    venv = tmp_path / "venv"
    subprocess.run([uv(), "venv", "--quiet", "--python", sys.executable, str(venv)], check=True, timeout=120)
    subprocess.run([uv(), "pip", "install", "--quiet", "--python", str(venv / "bin" / "python"), str(wheel)],
                   check=True, timeout=600)
    installed = time.monotonic() - began

    empty = tmp_path / "empty"
    empty.mkdir()
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("JHTUTORIAL_", "PYTHON", "VIRTUAL_ENV"))}
    env.update(KUBECONFIG=str(kubeconfig), PATH=f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}")

    def jhtutorial(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(venv / "bin" / "jhtutorial"), *args], cwd=empty, env=env,
                              capture_output=True, text=True, timeout=600, stdin=subprocess.DEVNULL)

    where = subprocess.run([str(venv / "bin" / "python"), "-c", "import jhtutorial; print(jhtutorial.__file__)"],
                           cwd=empty, env=env, capture_output=True, text=True, check=True).stdout
    assert where.startswith(str(venv)), where  # the installed copy, not this checkout

    up = jhtutorial("up", "-n", namespace)
    assert up.returncode == 0, up.stdout + up.stderr
    assert f"steps up to 06-deployments applied in namespace {namespace}" in up.stdout
    run = jhtutorial("run", "--only", "00", "01", "-n", namespace)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "all 2 notebooks passed" in run.stdout
    assert sorted(p.name for p in (empty / "output").iterdir()) == ["00-introduction.ipynb", "01-rbac.ipynb"]
    print(f"wheel built and installed into a fresh venv in {installed:.1f} s; "
          f"up + run 00 01 in {time.monotonic() - began - installed:.1f} s")

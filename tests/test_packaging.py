"""Packaging: the conda environment and the pip package declare the same dependencies, and a regular
(non-editable) install of the wheel carries a working workbook."""

from __future__ import annotations

import importlib.metadata
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
from packaging.requirements import Requirement
from packaging.version import Version

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


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel, built as a registry would (source distribution first, then the wheel from it),
    so nothing is written into the checkout."""
    out = tmp_path_factory.mktemp("dist")
    subprocess.run([uv(), "build", "--quiet", "--out-dir", str(out), str(ROOT)], check=True, timeout=300)
    (built,) = out.glob("jhtutorial-*.whl")
    return built


def test_the_wheel_ships_every_manifest_notebook_and_doc(wheel: Path) -> None:
    from jhtutorial.manifests import MANIFEST_FILES

    names = set(zipfile.ZipFile(wheel).namelist())
    notebooks = sorted(p.name for p in (ROOT / "notebooks").glob("[0-9][0-9]-*.ipynb"))
    assert {f"jhtutorial/_manifests/{name}" for name in MANIFEST_FILES} <= names
    assert {f"jhtutorial/_notebooks/{name}" for name in notebooks} <= names
    assert len(notebooks) == 9
    docs = sorted(p.relative_to(ROOT / "docs").as_posix() for p in (ROOT / "docs").rglob("*") if p.is_file())
    assert "glossary.md" in docs and any(d.startswith("img/") for d in docs)  # pages and their pictures
    assert {f"jhtutorial/_docs/{name}" for name in docs} <= names, sorted(n for n in names if "_docs" in n)


def test_a_wheel_installed_elsewhere_runs_the_tutorial_from_an_empty_folder(
    wheel: Path, tmp_path: Path, kubeconfig: Path, namespace: str
) -> None:
    """`pip install jhtutorial-*.whl` (here uv, from its cache), then `jhtutorial up` and
    `jhtutorial run --only 00 01` from a folder that holds nothing: the manifests and the notebooks
    come from the installed package, not from this checkout."""
    began = time.monotonic()
    venv = tmp_path / "venv"
    subprocess.run([uv(), "venv", "--quiet", "--python", sys.executable, str(venv)], check=True, timeout=120)
    subprocess.run([uv(), "pip", "install", "--quiet", "--python", str(venv / "bin" / "python"), str(wheel)],
                   check=True, timeout=600)
    installed = time.monotonic() - began  # the build is the fixture's, shared with the test above

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
    assert f"output/{namespace}" in run.stdout, run.stdout  # a run says where its own copies go
    copies = sorted(p.name for p in (empty / "output" / namespace).iterdir() if not p.name.startswith("."))
    assert copies == ["00-introduction.ipynb", "01-rbac.ipynb"]  # beside the run's lock file
    lab = jhtutorial("lab", "-n", namespace, "--version")  # the working copy is made before JupyterLab starts
    assert lab.returncode == 0, lab.stderr
    workbook = empty / "jhtutorial-workbook"
    assert sorted(p.name for p in workbook.iterdir() if not p.name.startswith(".")) == [
        "docs", "manifests", "notebooks"]
    assert sorted(p.name for p in (workbook / "notebooks").iterdir()) == sorted(
        p.name for p in (ROOT / "notebooks").glob("[0-9][0-9]-*.ipynb"))
    # the docs come from the installed package: the same pages the notebooks link as ../docs/
    assert (workbook / "docs" / "glossary.md").read_bytes() == (ROOT / "docs" / "glossary.md").read_bytes()
    print(f"wheel installed into a fresh venv in {installed:.1f} s; "
          f"up + run 00 01 in {time.monotonic() - began - installed:.1f} s")


# --- the declared floors ------------------------------------------------------------------------------

FLOORS_ENV = "JHTUTORIAL_EXPECT_FLOORS"  # set by `make test-lowest`, whose venv holds the lowest versions


def direct_requirements() -> list[Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return [Requirement(text) for text in [*project["dependencies"], *project["optional-dependencies"]["test"]]]


def test_this_environment_meets_every_declared_requirement_and_in_make_test_lowest_sits_on_the_floor() -> None:
    """Every direct dependency installed here satisfies pyproject; under `make test-lowest` each one is also
    the lowest release its requirement allows (31.x for kubernetes>=31), so the tests there prove the floors."""
    on_floor = os.environ.get(FLOORS_ENV) == "1"
    for requirement in direct_requirements():
        installed = Version(importlib.metadata.version(requirement.name))
        assert requirement.specifier.contains(installed, prereleases=True), (requirement, installed)
        if on_floor:
            (floor,) = [Version(s.version) for s in requirement.specifier if s.operator in (">=", "==")]
            assert installed.release[:len(floor.release)] == floor.release, (requirement, installed)

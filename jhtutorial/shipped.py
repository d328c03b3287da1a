"""Where the workbook's own files are: the manifests, the notebooks and the docs the package ships.

A wheel carries them as package data, in ``jhtutorial/_manifests``,
``jhtutorial/_notebooks`` and ``jhtutorial/_docs``. In the source checkout those
names are symbolic links to the top-level ``manifests/``, ``notebooks/`` and
``docs/``, the one copy that is edited, so an editable install and the checkout
read the same files the wheel would, through the same ``importlib.resources`` lookup.

    >>> shipped_folder("manifests").joinpath("rbac.yaml").is_file()
    True
    >>> sorted(p.name for p in shipped_folder("notebooks").glob("0[01]-*"))
    ['00-introduction.ipynb', '01-rbac.ipynb']
    >>> shipped_folder("docs").joinpath("glossary.md").is_file()
    True
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path
from typing import Literal

ShippedFolder = Literal["manifests", "notebooks", "docs"]


def shipped_folder(name: ShippedFolder) -> Path:
    """The folder of the tutorial's ``manifests``, ``notebooks`` or ``docs``, wherever the package is installed."""
    resource = files(__package__ or "jhtutorial") / f"_{name}"
    if isinstance(resource, Path) and resource.is_dir():
        return resource.resolve()  # in a checkout: the top-level folder the link names
    # a checkout made without symbolic links (git's core.symlinks=false) holds a text file there instead;
    # when neither exists, the checkout's location is kept so that errors name a real place
    return Path(__file__).resolve().parent.parent / name

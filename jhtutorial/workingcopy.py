"""The learner's working copy: the notebooks with their outputs cleared, and ``manifests/`` beside them.

``jhtutorial lab`` opens JupyterLab on this folder, so its file browser shows the
notebooks and the manifests side by side, and a lab terminal (which starts in
this folder) runs the notebooks' kubectl commands as they are printed:

    $ jhtutorial lab                              # ./jhtutorial-workbook/
    $ jhtutorial lab --workdir ~/k8s-workshop     # a folder of the learner's choice
    $ ls jhtutorial-workbook
    00-introduction.ipynb  01-rbac.ipynb  ...  08-cleanup.ipynb  manifests
    $ cd jhtutorial-workbook && kubectl apply --dry-run=client -f manifests/rbac.yaml

The reference copies (with the outputs of a clean run) stay as they are in the
package. What the learner has in the working copy is never overwritten: a second
start copies only the files that are missing and says which ones it kept.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from .readable import Readable

DEFAULT_WORKDIR = Path("jhtutorial-workbook")
MANIFEST_SUBFOLDER = "manifests"


@dataclass
class WorkingCopy(Readable):
    """What :func:`make_working_copy` did, file by file (paths relative to ``folder``)."""

    folder: Path
    copied: list[str] = field(default_factory=list)
    kept_as_copied: list[str] = field(default_factory=list)  # present and still the same as a fresh copy
    kept_changed: list[str] = field(default_factory=list)  # present and different: the learner's work

    @property
    def manifests(self) -> Path:
        return self.folder / MANIFEST_SUBFOLDER

    def lines(self) -> list[str]:
        out = [f"working copy: {self.folder}"]
        if self.copied:
            out.append(f"  copied {_files(self.copied)} (notebooks without outputs, {MANIFEST_SUBFOLDER}/)")
        if self.kept_changed:
            out.append(f"  kept {_files(self.kept_changed)} you changed, untouched: " + ", ".join(self.kept_changed))
        if self.kept_as_copied:
            out.append(f"  kept {_files(self.kept_as_copied)} already there, unchanged since the first start")
        return out


def _files(names: list[str]) -> str:
    return f"{len(names)} file" + ("" if len(names) == 1 else "s")


def cleared_notebook(notebook: Path) -> str:
    """The notebook as a learner starts it: no outputs, no execution counts, no saved widget state,
    no run metadata (papermill's timings). Sources and cell ids stay as they are."""
    import nbformat

    document = nbformat.read(notebook, as_version=4)
    for cell in document.cells:
        if cell.cell_type == "code":
            cell.outputs = []
            cell.execution_count = None
        cell.metadata.pop("execution", None)
        cell.metadata.pop("papermill", None)
    for key in ("widgets", "papermill"):
        document.metadata.pop(key, None)
    return nbformat.writes(document) + "\n"


def make_working_copy(folder: Path, notebooks: Iterable[Path], manifests: Path) -> WorkingCopy:
    """Copy into ``folder`` the ``notebooks`` (outputs cleared) and every file of ``manifests``
    (into ``folder/manifests``), each only if it is not there yet.

        >>> copy = make_working_copy(Path("jhtutorial-workbook"), notebooks(NOTEBOOK_DIR), MANIFEST_DIR)
        >>> print(copy)                                                   # doctest: +SKIP
        working copy: /home/me/jhtutorial-workbook
          copied 22 files (notebooks without outputs, manifests/)
    """
    folder = folder.expanduser().resolve()
    (folder / MANIFEST_SUBFOLDER).mkdir(parents=True, exist_ok=True)
    copy = WorkingCopy(folder)
    wanted = [(nb.name, lambda nb=nb: cleared_notebook(nb)) for nb in notebooks]
    wanted += [(f"{MANIFEST_SUBFOLDER}/{f.name}", f.read_text)
               for f in sorted(manifests.iterdir()) if f.is_file()]
    for name, text in wanted:
        target = folder / name
        fresh = text()
        try:
            # "x": created only if absent, so a file that appears meanwhile is not overwritten either
            with open(target, "x", encoding="utf-8") as out:
                out.write(fresh)
        except FileExistsError:
            kept = copy.kept_as_copied if _same_text(target, fresh) else copy.kept_changed
            kept.append(name)
        else:
            copy.copied.append(name)
    return copy


def _same_text(path: Path, text: str) -> bool:
    try:
        return path.read_text(encoding="utf-8") == text
    except (OSError, UnicodeDecodeError):
        return False

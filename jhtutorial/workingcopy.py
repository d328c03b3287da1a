"""The learner's working copy: ``notebooks/`` with their outputs cleared, ``manifests/`` and ``docs/`` beside it.

The working copy is laid out as the source checkout is, so every relative link
in the notebooks (``../docs/glossary.md``) and in the docs resolves in it exactly
as it does in the checkout and on the project's web page. ``jhtutorial lab``
opens JupyterLab on its top folder, so the file browser shows the three folders,
and a lab terminal (which starts in this folder) runs the notebooks' kubectl
commands as they are printed:

    $ jhtutorial lab                              # ./jhtutorial-workbook/
    $ jhtutorial lab --workdir ~/k8s-workshop     # a folder of the learner's choice
    $ ls jhtutorial-workbook jhtutorial-workbook/notebooks
    jhtutorial-workbook:
    docs  manifests  notebooks
    jhtutorial-workbook/notebooks:
    00-introduction.ipynb  01-rbac.ipynb  ...  08-cleanup.ipynb
    $ cd jhtutorial-workbook && kubectl apply --dry-run=client -f manifests/rbac.yaml

The reference copies (with the outputs of a clean run) stay as they are in the
package. What the learner changed in the working copy is never overwritten: a
second start copies the files that are missing and says which ones it kept. The
docs are reference reading, so a start also brings each doc the learner did not
change up to date with the installed package; to tell "not changed" from "changed",
the working copy remembers the digest of every doc it wrote (in ``.jhtutorial-docs.json``).
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from .readable import Readable

DEFAULT_WORKDIR = Path("jhtutorial-workbook")
NOTEBOOK_SUBFOLDER = "notebooks"
MANIFEST_SUBFOLDER = "manifests"
DOCS_SUBFOLDER = "docs"
DOCS_RECORD = ".jhtutorial-docs.json"  # digest of each doc as last written, to see whether the learner changed it


@dataclass
class WorkingCopy(Readable):
    """What :func:`make_working_copy` did, file by file (paths relative to ``folder``)."""

    folder: Path
    copied: list[str] = field(default_factory=list)
    refreshed: list[str] = field(default_factory=list)  # docs the learner had not changed, replaced by newer ones
    kept_as_copied: list[str] = field(default_factory=list)  # present and still the same as a fresh copy
    kept_changed: list[str] = field(default_factory=list)  # present and different: the learner's work

    @property
    def notebooks(self) -> Path:
        return self.folder / NOTEBOOK_SUBFOLDER

    @property
    def manifests(self) -> Path:
        return self.folder / MANIFEST_SUBFOLDER

    @property
    def docs(self) -> Path:
        return self.folder / DOCS_SUBFOLDER

    def lines(self) -> list[str]:
        out = [f"working copy: {self.folder}"]
        if self.copied:
            out.append(f"  copied {_files(self.copied)} ({NOTEBOOK_SUBFOLDER}/ without outputs, "
                       f"{MANIFEST_SUBFOLDER}/, {DOCS_SUBFOLDER}/)")
        if self.refreshed:
            out.append(f"  updated {_files(self.refreshed)} you had not changed to this version: "
                       + ", ".join(self.refreshed))
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


def _files_under(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file())


def make_working_copy(folder: Path, notebooks: Iterable[Path], manifests: Path, docs: Path) -> WorkingCopy:
    """Copy into ``folder`` the ``notebooks`` (outputs cleared, into ``folder/notebooks``), every file of
    ``manifests`` (into ``folder/manifests``) and of ``docs`` with its pictures (into ``folder/docs``).
    A file already there is kept, except a doc the learner has not changed since it was written, which is
    brought up to date.

        >>> copy = make_working_copy(Path("jhtutorial-workbook"), notebooks(NOTEBOOK_DIR), MANIFEST_DIR,
        ...                          shipped_folder("docs"))
        >>> print(copy)                                                   # doctest: +SKIP
        working copy: /home/me/jhtutorial-workbook
          copied 29 files (notebooks/ without outputs, manifests/, docs/)
    """
    folder = folder.expanduser().resolve()
    copy = WorkingCopy(folder)
    wanted: list[tuple[str, Callable[[], bytes]]] = [
        (f"{NOTEBOOK_SUBFOLDER}/{nb.name}", lambda nb=nb: cleared_notebook(nb).encode("utf-8")) for nb in notebooks]
    wanted += [(f"{MANIFEST_SUBFOLDER}/{f.name}", f.read_bytes) for f in sorted(manifests.iterdir()) if f.is_file()]
    reference_docs = [(f"{DOCS_SUBFOLDER}/{f.relative_to(docs).as_posix()}", f.read_bytes)
                      for f in _files_under(docs)]
    written_docs = _read_record(folder / DOCS_RECORD)
    for name, content in wanted + reference_docs:
        target = folder / name
        target.parent.mkdir(parents=True, exist_ok=True)
        fresh = content()
        is_doc = name.startswith(f"{DOCS_SUBFOLDER}/")
        if not _create_whole(target, fresh):
            present = _read_bytes(target)
            if present == fresh:
                copy.kept_as_copied.append(name)
            elif is_doc and present is not None and written_docs.get(name) == _digest(present):
                write_whole(target, fresh)  # the learner's copy is exactly what an earlier start wrote
                copy.refreshed.append(name)
            else:
                copy.kept_changed.append(name)
                continue  # the record keeps what was last written, so a later undo of the edit is seen as such
        else:
            copy.copied.append(name)
        if is_doc:
            written_docs[name] = _digest(fresh)
    _write_record(folder / DOCS_RECORD, written_docs)
    return copy


def _create_whole(target: Path, content: bytes) -> bool:
    """Write ``target`` only if it is absent (False if it is there), all at once: the content is written beside
    it, then linked in under its name, which fails if a file appeared meanwhile. Another start at the same
    moment (two labs on one working copy) thus sees no file or the whole of it, never a half-written one that
    it would take for the learner's edit."""
    part = _written_beside(target, content)
    try:
        os.link(part, target)
    except FileExistsError:
        return False
    except OSError:  # a file system without hard links: "x" still creates only if absent
        try:
            with open(target, "xb") as out:
                out.write(content)
        except FileExistsError:
            return False
    finally:
        part.unlink()
    return True


def write_whole(target: Path, content: bytes) -> None:
    """Replace ``target`` at once (rename over it): a reader sees the old content or the new, never a part."""
    os.replace(_written_beside(target, content), target)


def _written_beside(target: Path, content: bytes) -> Path:
    """``content`` in a new hidden file next to ``target``, named for this process alone."""
    part = target.with_name(f".{target.name}.{os.getpid()}-{secrets.token_hex(4)}.part")
    with open(part, "xb") as out:
        out.write(content)
    return part


def _digest(content: bytes) -> str:
    return hashlib.sha256(content).hexdigest()


def _read_bytes(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except OSError:
        return None


def _read_record(path: Path) -> dict[str, str]:
    """The digests of the docs as last written; an unreadable record counts as none (every differing doc
    is then kept as the learner's, the safe side)."""
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return {str(k): str(v) for k, v in record.items()} if isinstance(record, dict) else {}


def _write_record(path: Path, record: dict[str, str]) -> None:
    write_whole(path, (json.dumps(dict(sorted(record.items())), indent=1) + "\n").encode("utf-8"))

"""Showing files and commands in a notebook: a manifest as it is on disk, the kubectl line of a step.

    >>> nb.show_manifest("svc-hub.yaml")            # doctest: +SKIP   (the file, syntax-highlighted)
    >>> nb.show_kubectl("kubectl get pods -n alice")  # doctest: +SKIP
    $ kubectl get pods -n alice
"""

from __future__ import annotations

import html
import sys
from collections.abc import Iterator
from contextlib import contextmanager

from .. import manifests
from ..connect import Connection
from ..errors import TutorialError
from ..steps import MANIFEST_FOLDER, WHERE_TO_TYPE, get_step


def _display(markdown: str, plain: str) -> None:
    from IPython.display import display  # only in a kernel: the package imports without IPython

    display({"text/markdown": markdown, "text/plain": plain}, raw=True)


@contextmanager
def folded_answer(summary: str = "what the answer cell found (unfold when you have tried)") -> Iterator[None]:
    """Run an exercise's answer with its printed output folded away until the learner unfolds it.

    JupyterLab unfolds a hidden output as soon as its cell runs (Run All runs the answers too), so an
    answer's output would give the exercise away at a glance. Inside this block the output is captured and
    shown as a closed ``<details>`` element instead; headless runs (papermill, nbval) see the same text as
    plain output. An error still shows at once, after what was printed before it::

        with nb.folded_answer():
            print(nb.reclaim_policies(conn, volumes))
    """
    from IPython.utils.capture import capture_output  # only in a kernel: the package imports without IPython

    capturing = capture_output(display=True)
    captured = capturing.__enter__()
    try:
        yield
    finally:
        capturing.__exit__(None, None, None)  # restore the kernel's streams before showing anything
        parts = [captured.stdout.rstrip("\n"), *(out.data.get("text/plain", "") for out in captured.outputs)]
        text = "\n".join(part for part in parts if part)
        if text:
            _display_html(f"<details><summary>{html.escape(summary)}</summary>\n<pre>{html.escape(text)}</pre>\n"
                          "</details>", text)
        if captured.stderr:
            sys.stderr.write(captured.stderr)


def _display_html(markup: str, plain: str) -> None:
    from IPython.display import display

    display({"text/html": markup, "text/plain": plain}, raw=True)


def show_manifest(*names: str, excerpt: str | tuple[str, str] | None = None) -> None:
    """Show manifest files as they are in manifests/ (syntax-highlighted in JupyterLab).

    With ``excerpt``, a long file shows only its most telling lines, highlighted, with the whole file folded
    under them: a kind (``"Role"``: that object, with the comment above it) or a pair of texts (the lines from
    the first line holding the first text to the next line holding the second)."""
    for name in names:
        text = manifests.manifest_path(name).read_text().rstrip("\n")
        if excerpt is None:
            _display(f"**`manifests/{name}`**\n\n```yaml\n{text}\n```", f"# manifests/{name}\n{text}")
            continue
        lines = text.splitlines()
        first, last = excerpt_lines(lines, excerpt)
        shown = "\n".join(lines[first:last + 1])
        where = f"lines {first + 1}-{last + 1} of {len(lines)}"
        _display(f"**`manifests/{name}`**, {where}:\n\n```yaml\n{shown}\n```\n\n"
                 f"<details><summary>the whole file, <code>manifests/{name}</code></summary>\n\n"
                 f"```yaml\n{text}\n```\n\n</details>",
                 f"# manifests/{name}, {where} (the whole file is folded in JupyterLab)\n{shown}")


def excerpt_lines(lines: list[str], excerpt: str | tuple[str, str]) -> tuple[int, int]:
    """The first and last line (0-based, inclusive) of an excerpt of a manifest; see :func:`show_manifest`.

        >>> excerpt_lines(["# a", "kind: A", "---", "# the role", "kind: Role", "rules: []"], "Role")
        (3, 5)
        >>> excerpt_lines(["x", "http {", "  y", "  include z;", "}"], ("http {", "include"))
        (1, 3)
    """
    if isinstance(excerpt, tuple):
        start_text, end_text = excerpt
        start = next((i for i, line in enumerate(lines) if start_text in line), None)
        end = next((i for i in range(start or 0, len(lines)) if end_text in lines[i]), None) if start is not None else None
        if start is None or end is None:
            raise TutorialError(f"no lines from {start_text!r} to {end_text!r} in the file",
                                fix="name texts that appear in the file, in that order")
        return start, end
    documents, begin = [], 0
    for index, line in enumerate([*lines, "---"]):
        if line.strip() == "---":
            documents.append((begin, index - 1))
            begin = index + 1
    for first, last in documents:
        if any(line.strip() == f"kind: {excerpt}" for line in lines[first:last + 1]):
            return first, last
    raise TutorialError(f"no object of kind {excerpt!r} in the file", fix="name a kind the file holds")


def show_kubectl(*commands: str) -> None:
    """Show the command(s) a learner would type in a terminal, instead of running this cell.

    Commands that name files in manifests/ get a first line saying where to type them: the folder
    holding manifests/ (the working copy `jhtutorial lab` opens, where its terminals start)."""
    where = [f"# {WHERE_TO_TYPE}"] if any(f"{MANIFEST_FOLDER}/" in command for command in commands) else []
    text = "\n".join([*where, *(f"$ {command}" for command in commands)])
    _display(f"```console\n{text}\n```", text)


def show_step_command(step: str | int, conn: Connection) -> None:
    """Show the kubectl line that applies a step in the connection's namespace."""
    show_kubectl(get_step(step).kubectl(conn.namespace))


def terminal_commands(conn: Connection) -> list[str]:
    """The commands that reach this notebook's cluster and namespace from a terminal and list what is there.
    They change no file: a kubeconfig may be shared (a classroom's, the local cluster's), so the namespace
    travels as ``-n`` on every command (as in every notebook's commands) and the context, off the local
    cluster, as ``--context``, instead of ``kubectl config set-context``/``use-context``.

        $ export KUBECONFIG=~/.local/state/jhtutorial/kubeconfig
        $ kubectl get all -n jhtutorial
    """
    if conn.kubeconfig and conn.cluster_kind == "local":  # its own file, whose current context is the cluster
        return [f"export KUBECONFIG={conn.kubeconfig}", f"kubectl get all -n {conn.namespace}"]
    context = f" --context {conn.context}" if conn.context else ""
    return [f"kubectl get all -n {conn.namespace}{context}"]

"""Configuration files as text: compile the hub's Python configuration without running it, change one line.

    >>> source = 'import os\\nc = get_config()\\nc.KubeSpawner.mem_limit = "1G"\\n'
    >>> print(python_summary(source, "jupyterhub_config.py"))
    jupyterhub_config.py: 3 lines, valid Python, 1 settings, e.g.
        c.KubeSpawner.mem_limit = "1G"
    >>> set_line(source, "c.KubeSpawner.mem_limit", 'c.KubeSpawner.mem_limit = "2G"').splitlines()[-1]
    'c.KubeSpawner.mem_limit = "2G"'
"""

from __future__ import annotations

from ..errors import TutorialError

# the settings worth showing first: what runs, who may log in, what a user gets
HIGHLIGHTS = ("c.JupyterHub.spawner_class", "c.JupyterHub.authenticator_class", "c.KubeSpawner.image ",
              "c.KubeSpawner.mem_limit")


def python_summary(source: str, filename: str) -> str:
    """Compile ``source`` (a SyntaxError stops the cell, naming the line) and sum it up: its size, how many
    ``c.…`` settings it makes, and the most telling ones."""
    compile(source, filename, "exec")
    settings = [line.strip() for line in source.splitlines() if line.strip().startswith("c.")]
    shown = [line for line in settings if line.startswith(HIGHLIGHTS)]
    return "\n".join([f"{filename}: {len(source.splitlines())} lines, valid Python, {len(settings)} settings, e.g.",
                      *(f"    {line}" for line in shown)])


def set_line(source: str, starts_with: str, new_line: str) -> str:
    """``source`` with the first line that starts with ``starts_with`` replaced by ``new_line`` (what a person
    does in an editor); an error if no line starts so."""
    lines = source.splitlines(keepends=True)
    for index, line in enumerate(lines):
        if line.strip().startswith(starts_with):
            indent = line[: len(line) - len(line.lstrip())]
            lines[index] = indent + new_line + ("\n" if line.endswith("\n") else "")
            return "".join(lines)
    raise TutorialError(f"no line starts with {starts_with!r}", fix="check the text you are editing")

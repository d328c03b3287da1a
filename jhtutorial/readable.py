"""How the package's result objects show themselves in a terminal and in a notebook."""

from __future__ import annotations

from typing import Any


class Readable:
    """Mixin: ``str()`` joins :meth:`lines`; a notebook cell ending in the object shows that text.

    Without ``_repr_pretty_`` IPython would print the dataclass ``repr``, one long line.
    """

    def lines(self) -> list[str]:
        raise NotImplementedError

    def __str__(self) -> str:
        return "\n".join(self.lines())

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        printer.text(repr(self) if cycle else str(self))

"""How the package's result objects show themselves in a terminal and in a notebook."""

from __future__ import annotations

from typing import Any


class Readable:
    """Mixin: ``str()`` joins :meth:`lines`; a notebook cell ending in the object shows that text.

    Without ``_repr_pretty_`` IPython would print the ``repr``, one long line. IPython looks for it class by
    class along the MRO and stops at the first class that defines ``__repr__``, which every dataclass does:
    so each subclass gets the method in its own namespace, ahead of its generated ``__repr__``.
    """

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls._repr_pretty_ = Readable._repr_pretty_  # type: ignore[method-assign]

    def lines(self) -> list[str]:
        raise NotImplementedError

    def __str__(self) -> str:
        return "\n".join(self.lines())

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        printer.text(repr(self) if cycle else str(self))

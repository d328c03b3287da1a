"""The end of a notebook: stop what still watches the cluster, and say how to free the kernel.

Every notebook ends its last code cell with ``nb.end()``. A live view (``kubectl get pods --watch``) keeps a
watch open on the API server for as long as its kernel lives, and every notebook's kernel keeps running after
its last cell: nine of them on a two-core laptop after the series. ``end`` stops the watches this kernel
still runs and tells the learner how to shut the kernel down.

    >>> nb.end()                                   # doctest: +SKIP
    done: no watch left running in this notebook
    Free its memory: Kernel > Shut Down Kernel (or File > Close and Shut Down Notebook), then go on with the next.

The last notebook of the series ends with ``nb.end(last=True)``: there is no next one to go on with.
"""

from __future__ import annotations

from ..liveview import running_views

SHUT_DOWN = "Free its memory: Kernel > Shut Down Kernel (or File > Close and Shut Down Notebook)"
NEXT = ", then go on with the next."
LAST = ". That was the last notebook of the series."


def end(*, last: bool = False) -> None:
    """Stop every live view this kernel still runs, say what was stopped, and how to shut the kernel down
    (``last``: the series ends here, so no "go on with the next")."""
    views = running_views()
    for view in views:
        view.stop()
    stopped = f"stopped {len(views)} live view(s) still watching the cluster" if views else \
        "no watch left running in this notebook"
    print(f"done: {stopped}\n{SHUT_DOWN}{LAST if last else NEXT}")

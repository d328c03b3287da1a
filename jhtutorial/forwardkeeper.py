"""Keep a ``kubectl port-forward`` running: start it again, on the same local port, whenever it ends.

kubectl ends a port-forward for good on the first broken connection to the pod ("error: lost connection to
pod", kubernetes/kubernetes#74551), which a browser tab closed at the wrong moment or a restarted proxy pod
causes. The way in that notebook 07 leaves open for the learner's browser must outlive that, so it runs
kubectl under this keeper:

    $ python -m jhtutorial.forwardkeeper kubectl port-forward -n NS svc/proxy-public 8080:80 --address 127.0.0.1

Its output is kubectl's, line by line, each stream on its own (the way in reads "Forwarding from
127.0.0.1:PORT" from stdout; a login's way in reads kubectl's errors from stderr). If kubectl
ends before it ever forwarded (the port is taken, the Service is missing), the keeper ends with kubectl's exit
code: that is an answer, not an accident. Once it has forwarded, each restart takes the port it had, so the
learner's open tabs keep their address. When the API server says that the namespace or the Service is gone,
there is nothing left to keep: the keeper ends, and frees the port. SIGTERM ends kubectl and the keeper.
"""

from __future__ import annotations

import ctypes
import re
import signal
import subprocess
import sys
import threading
import time
from types import FrameType
from typing import IO

FORWARDING = re.compile(r"Forwarding from 127\.0\.0\.1:(\d+)")
PORT_ARGUMENT = re.compile(r"^\d*:(\d+)$")  # LOCAL:REMOTE, LOCAL empty when kubectl picks it
RESTART_PAUSE = 1.0  # seconds between an end and the next start, so a pod that is gone is not hammered
# what kubectl says when what it forwards to is gone for good (a replaced pod is found again through the Service)
GONE = re.compile(r"\(NotFound\): (namespaces|services) ")


def _end_with_the_keeper() -> None:
    """In the child: a SIGTERM when the keeper dies, even of SIGKILL (Linux's PR_SET_PDEATHSIG)."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # 1 = PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass  # not Linux: the keeper's own SIGTERM handler is what ends kubectl


def on_port(args: list[str], port: int) -> list[str]:
    """``args`` with the local side of its LOCAL:REMOTE argument set to ``port``."""
    return [f"{port}:{match.group(1)}" if (match := PORT_ARGUMENT.match(a)) else a for a in args]


def keep(args: list[str]) -> int:
    current: subprocess.Popen[str] | None = None
    stopping = False

    def stop(_signum: int, _frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True
        if current is not None and current.poll() is None:
            current.terminate()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    port: int | None = None
    while not stopping:
        current = subprocess.Popen(args if port is None else on_port(args, port), stdout=subprocess.PIPE,
                                   stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True,
                                   preexec_fn=_end_with_the_keeper)
        assert current.stdout is not None and current.stderr is not None
        errors: list[str] = []
        passing = threading.Thread(target=_pass_on, args=(current.stderr, errors), daemon=True)
        passing.start()
        for line in current.stdout:
            sys.stdout.write(line)
            sys.stdout.flush()
            found = FORWARDING.search(line)
            if found and port is None:
                port = int(found.group(1))
        code = current.wait()
        passing.join(5)
        if port is None:
            return code  # it never forwarded: the caller reads why from the output
        if any(GONE.search(line) for line in errors):
            print(f"kubectl port-forward ended: {errors[-1].strip()}; nothing to forward to, port {port} is free "
                  "again", flush=True)
            return code
        if not stopping:
            print(f"kubectl port-forward ended (exit code {code}); starting it again on port {port}", flush=True)
            time.sleep(RESTART_PAUSE)
    return 0


def _pass_on(stream: IO[str], seen: list[str]) -> None:
    """kubectl's error output, passed on as the keeper's own, and kept to read why it ended."""
    for line in stream:
        seen.append(line)
        sys.stderr.write(line)
        sys.stderr.flush()


if __name__ == "__main__":
    sys.exit(keep(sys.argv[1:]))

"""The ``jhtutorial classroom`` commands (up, status, down), for the instructor's kubeconfig.

    $ jhtutorial classroom up --learners 3 [--prefix learner] [--names a,b,c] [--output classroom] [--expires 12h]
                              [--simulated]
    $ jhtutorial classroom status [--prefix learner]       # exit 0 when every learner is through step 06
    $ jhtutorial classroom down [--prefix learner]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from .provision import DEFAULT_EXPIRES, DEFAULT_OUTPUT, DEFAULT_PREFIX

EXPIRES_TEXT = f"{DEFAULT_EXPIRES // 3600}h"


def add_commands(commands: Any, common: argparse.ArgumentParser) -> None:
    """Add ``classroom`` and its actions to the CLI's subparsers."""
    classroom = commands.add_parser("classroom", parents=[common],
                                    help="a namespace, credentials and a quota per learner; the room's progress")
    actions = classroom.add_subparsers(dest="classroom_command", required=True, metavar="ACTION")
    up = actions.add_parser("up", parents=[common], help="make the learners' namespaces and kubeconfig files (keeps existing ones)")
    up.add_argument("--learners", type=int, default=None, help="how many learners: PREFIX-1 .. PREFIX-N")
    up.add_argument("--names", type=_names, default=None, help="comma-separated namespace names instead")
    up.add_argument("--output", type=Path, default=DEFAULT_OUTPUT,
                    help=f"folder for the NAMESPACE.kubeconfig files (default: {DEFAULT_OUTPUT}/)")
    up.add_argument("--expires", type=_duration, default=DEFAULT_EXPIRES,
                    help=f"how long the credentials work: 90m, 12h, 2d (default {EXPIRES_TEXT}; at least 10m)")
    up.add_argument("--simulated", action="store_true",
                    help="local cluster: keep the learners' pods purely simulated (no process runs for them, no "
                         "hub answers); without it, with pod sandboxes, their hubs run and `up` refuses more "
                         "learners than this machine's memory holds")
    up.set_defaults(handler=_up)
    status = actions.add_parser("status", parents=[common], help="one row per learner: steps done, logged in, latest problem")
    status.set_defaults(handler=_status)
    down = actions.add_parser("down", parents=[common], help="delete the room's namespaces and kubeconfig files, nothing else")
    down.add_argument("--timeout", type=float, default=120.0, help="seconds to wait until the namespaces are gone")
    down.set_defaults(handler=_down)
    for action in (up, status, down):
        action.add_argument("--prefix", default=DEFAULT_PREFIX,
                            help=f"the room's name and its namespaces' prefix (default: {DEFAULT_PREFIX})")


def _instructor(args: argparse.Namespace):  # -> Connection
    from ..connect import connect, resolve_context

    return connect(resolve_context(args.context), create_namespace=False)


def _up(args: argparse.Namespace) -> int:
    from .provision import classroom_up

    conn = _instructor(args)
    print(f"classroom '{args.prefix}' on {conn.server}", file=sys.stderr, flush=True)
    room = classroom_up(conn, learners=args.learners, prefix=args.prefix, names=args.names, output=args.output,
                        expires=args.expires, progress=lambda line: print(line, file=sys.stderr, flush=True),
                        simulated=args.simulated)
    print(room)
    print(f"hand each learner their file; they run: KUBECONFIG=FILE jhtutorial up (or jhtutorial lab)")
    return 0


def _status(args: argparse.Namespace) -> int:
    from .progress import classroom_status

    status = classroom_status(_instructor(args), prefix=args.prefix)
    print(status)
    return 0 if status.all_done else 1


def _down(args: argparse.Namespace) -> int:
    from .provision import classroom_down

    removed = classroom_down(_instructor(args), prefix=args.prefix, timeout=args.timeout)
    print("\n".join(f"removed {item}" for item in removed) if removed else
          f"there is no classroom '{args.prefix}' to remove")
    return 0


def _names(text: str) -> list[str]:
    names = [name.strip() for name in text.split(",") if name.strip()]
    if not names:
        raise argparse.ArgumentTypeError("give at least one name, e.g. --names alice,bob")
    return names


def _duration(text: str) -> int:
    from ..errors import ClassroomError
    from .provision import parse_duration

    try:
        return parse_duration(text)
    except ClassroomError as err:
        raise argparse.ArgumentTypeError(f"{err.problem}; {err.fix}") from None

"""The `jhtutorial` command.

    $ jhtutorial cluster up            # the local simulated cluster (built on first use)
    $ jhtutorial cluster status
    $ jhtutorial cluster kubeconfig    # prints the path, for `export KUBECONFIG=...`
    $ jhtutorial cluster down

Exit codes scripts can rely on: 0 success, 1 a tutorial problem (the message
says what to do), 2 wrong usage, 3 the local cluster failed, 130 interrupted.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

from .errors import TutorialError
from .localcluster import LocalCluster


def _cluster_up(args: argparse.Namespace) -> int:
    status = LocalCluster(args.kubeconfig).up(port=args.port, nodes=args.nodes)
    return 0 if status.state == "running" else 3


def _cluster_down(args: argparse.Namespace) -> int:
    removed = LocalCluster(args.kubeconfig).down()
    print("local cluster removed" if removed else "there was no local cluster to remove")
    return 0


def _cluster_status(args: argparse.Namespace) -> int:
    status = LocalCluster(args.kubeconfig).status()
    print("\n".join(status.lines()))
    # scripts can test `jhtutorial cluster status` like `systemctl is-active`
    return 0 if status.state == "running" else 1


def _cluster_kubeconfig(args: argparse.Namespace) -> int:
    cluster = LocalCluster(args.kubeconfig)
    if not cluster.kubeconfig.exists():
        print("the local cluster is not running: start it with `jhtutorial cluster up`", file=sys.stderr)
        return 1
    print(cluster.kubeconfig)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="jhtutorial",
        description="Deploy a stripped-down JupyterHub on Kubernetes, step by step.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    cluster = commands.add_parser("cluster", help="the local simulated cluster (real control plane, kwok nodes)")
    cluster_commands = cluster.add_subparsers(dest="cluster_command", required=True, metavar="ACTION")
    kubeconfig_help = "where the local cluster's kubeconfig is written (default: ~/.local/state/jhtutorial/kubeconfig)"

    up = cluster_commands.add_parser("up", help="build (first time only) and start the cluster; reuse a running one")
    up.add_argument("--port", type=int, default=None, help="kube-apiserver port on 127.0.0.1 (default: a free one)")
    up.add_argument("--nodes", type=int, default=3, help="number of simulated nodes (default: 3)")
    up.set_defaults(handler=_cluster_up)

    down = cluster_commands.add_parser("down", help="stop the cluster and delete everything it stored")
    down.set_defaults(handler=_cluster_down)

    status = cluster_commands.add_parser("status", help="is it running; server, version, nodes, kubeconfig")
    status.set_defaults(handler=_cluster_status)

    kubeconfig = cluster_commands.add_parser("kubeconfig", help="print the path of the cluster's kubeconfig")
    kubeconfig.set_defaults(handler=_cluster_kubeconfig)

    for sub in (up, down, status, kubeconfig):
        sub.add_argument("--kubeconfig", default=None, help=kubeconfig_help)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    handler: Callable[[argparse.Namespace], int] = args.handler
    try:
        return handler(args)
    except TutorialError as err:
        print(f"error: {err}", file=sys.stderr)
        return err.exit_code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())

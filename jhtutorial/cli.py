"""The `jhtutorial` command: the tutorial from a terminal, step by step or all at once.

    $ jhtutorial up                        # apply every step in order, waiting for each
    $ jhtutorial up --through 4            # only up to step 04 (the hub's PVC)
    $ jhtutorial status                    # each step: done or not, and why
    $ jhtutorial url                       # a URL that reaches proxy-public from here
    $ jhtutorial login                     # log in as admin/admin, start the server, report each stage
    $ jhtutorial access open               # a way in that stays open (notebook 07's) until `access close`
    $ jhtutorial stop --user admin         # stop a user's server: its pod goes, its home volume stays
    $ jhtutorial down                      # remove everything the tutorial made (not the namespace)
    $ jhtutorial run                       # run the notebooks headless
    $ jhtutorial lab                       # a working copy of them in JupyterLab (./jhtutorial-workbook)

    $ jhtutorial classroom up --learners 20   # a namespace, a kubeconfig and a quota per learner
    $ jhtutorial classroom status          # one row per learner, one column per step

    $ jhtutorial cluster up                # the local simulated cluster (built on first use)
    $ jhtutorial cluster status
    $ jhtutorial cluster kubeconfig        # prints the path, for `export KUBECONFIG=...`
    $ jhtutorial cluster down

Global options (before or after the command): ``--context NAME`` picks a
kubeconfig context (as ``kubectl --context``), which otherwise comes from
``$JHTUTORIAL_CONTEXT``, then the kubeconfig's current context; ``--namespace NS``
the namespace, which otherwise comes from ``$JHTUTORIAL_NAMESPACE``, then the
context's own namespace, then ``jhtutorial``. The notebooks follow the same rule
with their ``context`` and ``namespace`` parameters, and ``jhtutorial lab``
hands its options to them through those two variables.

Output: results on stdout (``url`` prints only the URL, for ``$(jhtutorial url)``),
progress lines during long waits on stderr.

Exit codes scripts can rely on:

    0    success (status: every step done)
    1    a tutorial problem the message explains (status: some step not done)
    2    wrong usage (unknown option, an invalid namespace name)
    3    the local cluster failed (build, start, stop)
    4    no usable connection: kubeconfig, context, server, credentials
    5    a step cannot be applied as asked (out of order, refused by the server)
    6    forbidden: the credentials lack a permission
    7    a wait timed out (the message says what blocks it)
    8    the API server answered with another error
    9    the hub cannot be reached from here, or refused the login
    130  interrupted (Ctrl-C)
"""

from __future__ import annotations

import argparse
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from .errors import AccessError, TutorialError
from .localcluster import LocalCluster

PROGRESS_EVERY = 10.0  # seconds between "still waiting" lines


# --- the local cluster ---------------------------------------------------------------------------


def _cluster_up(args: argparse.Namespace) -> int:
    status = LocalCluster(args.kubeconfig).up(port=args.port, nodes=args.nodes, recreate=args.recreate)
    return 0 if status.state == "running" else 3


def _cluster_restore(args: argparse.Namespace) -> int:
    status = LocalCluster(args.kubeconfig).restore(Path(args.archive))
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


# --- the tutorial --------------------------------------------------------------------------------


def _connect(args: argparse.Namespace, *, create_namespace: bool = False):  # -> Connection
    from .connect import connect, resolve_context, resolve_namespace

    context = resolve_context(args.context)
    return connect(context, resolve_namespace(context, args.namespace), create_namespace=create_namespace)


def _up(args: argparse.Namespace) -> int:
    from .apply import apply
    from .steps import STEPS, get_step

    with_files = [step for step in STEPS if step.files]
    last = get_step(args.through) if args.through is not None else with_files[-1]
    if not last.files:  # 07 (log in) and 08 (clean up) have nothing to apply
        _say(f"step {last.key} has nothing to apply ({last.kubectl('NS')}); applying up to {with_files[-1].key}")
        last = with_files[-1]
    conn = _connect(args, create_namespace=True)
    _say(f"namespace {conn.namespace} on {conn.server} ({conn.cluster_kind})")
    for step in STEPS:
        if step.number > last.number:
            break
        if not step.files:
            continue
        result = apply(step, conn=conn)
        print("\n".join(result.lines()), flush=True)
        if step.wait_objects is not None:
            with _still_waiting(f"step {step.key}: {step.done_when}"):
                for waited in step.wait(conn, timeout=args.timeout):
                    print(f"  waited {waited.seconds:.1f} s: {waited.what}: {waited.summary}", flush=True)
    print(f"steps up to {last.key} applied in namespace {conn.namespace}")
    return 0


def _status(args: argparse.Namespace) -> int:
    from .steps import STEPS

    conn = _connect(args)
    print(f"namespace {conn.namespace} on {conn.server} ({conn.cluster_kind})")
    all_done = True
    for step in STEPS:
        if not step.files:
            continue
        status = step.check(conn)
        all_done = all_done and status.done
        print(str(status))
    if conn.cluster_kind == "local":
        from .access import backing_report

        for line in backing_report(conn):
            print(line)
    return 0 if all_done else 1


def _url(args: argparse.Namespace) -> int:
    from .access import hub_access

    conn = _connect(args)
    access = hub_access(conn, method=args.method, local_port=args.port, verify=not args.no_verify)
    if access.url is None:
        raise AccessError(f"no URL can reach the hub in namespace {conn.namespace}: {'; '.join(access.notes)}",
                          fix="the note says why the proxy pod does not run here; `jhtutorial status` lists which "
                          "pods run their programs here, `jhtutorial cluster status` shows the supervisor that runs them")
    print(access.url, flush=True)
    _say(f"how: {access.how}; by hand: {access.kubectl}")
    for note in access.notes:
        _say(f"note: {note}")
    if not access.open:
        return 0
    _say("forwarding until Ctrl-C")
    try:
        threading.Event().wait()  # the forward lives as long as this process
    except KeyboardInterrupt:
        pass
    finally:
        access.close()
    return 0


def _access(args: argparse.Namespace) -> int:
    from .wayin import close_command, close_way_in, open_way_in, recorded

    conn = _connect(args)
    if args.action == "close":
        closed = close_way_in(conn)
        print(f"closed the way in {closed.url} (kubectl port-forward, pid {closed.pid})" if closed else
              f"no way in is open for namespace {conn.namespace}", flush=True)
        return 0
    if args.action == "status":
        way = recorded(conn)
        print(f"{way.url} (kubectl port-forward, pid {way.pid})" if way else
              f"no way in is open for namespace {conn.namespace}", flush=True)
        return 0 if way else 1
    access = open_way_in(conn, local_port=args.port)
    if access.url is None:
        raise AccessError(f"no URL can reach the hub in namespace {conn.namespace}: {'; '.join(access.notes)}",
                          fix="`jhtutorial status` lists which pods run their programs here")
    print(access.url, flush=True)
    for note in access.notes:
        _say(f"note: {note}")
    _say(f"open until: {close_command(conn)}")
    return 0


def _login(args: argparse.Namespace) -> int:
    from .login import login
    from .wayin import close_command, open_way_in

    conn = _connect(args)
    # through the way in that stays open (notebook 07's), so the address printed keeps working after this command
    url = args.url or open_way_in(conn).url
    try:
        result = login(args.user, args.password, conn=conn, url=url,
                       timeout=args.timeout, progress=lambda line: print(line, flush=True))
    except TutorialError as err:
        staged = getattr(err, "result", None)
        if staged is not None and staged.notes:
            print("\n".join(staged.notes), flush=True)
        raise
    print(result.headline() + f" ({result.seconds:.1f} s)")
    for note in result.notes:
        print(f"  {note}")
    if result.server_answered and not args.url:
        print(f"  in a browser: {url}/hub/login as {args.user}, then {url}/user/{args.user}/lab "
              f"(the way in stays open; `{close_command(conn)}` closes it)")
    return 0 if result.ok else 1  # not_run: the proxy pod is purely simulated, nothing could answer


def _stop(args: argparse.Namespace) -> int:
    from .login import stop_server
    from .wayin import open_way_in

    conn = _connect(args)
    url = args.url or open_way_in(conn).url
    if url is None:
        raise AccessError(f"no URL can reach the hub in namespace {conn.namespace}",
                          fix="`jhtutorial status` says why the proxy pod does not run here")
    print(stop_server(args.user, args.password, conn=conn, url=url), flush=True)
    return 0


def _down(args: argparse.Namespace) -> int:
    from .cleanup import clean_up

    conn = _connect(args)
    with _still_waiting(f"removing the tutorial from namespace {conn.namespace}"):
        result = clean_up(conn, delete_namespace=args.delete_namespace, timeout=args.timeout,
                          progress=lambda line: print(line, flush=True))
    print(str(result))
    return 0


def _run(args: argparse.Namespace) -> int:
    from . import workbook  # papermill and the kernel machinery: imported only when asked for

    return int(workbook.run_series(args) or 0)


def _lab(args: argparse.Namespace) -> int:
    from . import workbook

    return int(workbook.lab(args) or 0)


# --- helpers ------------------------------------------------------------------------------------


def _namespace_arg(value: str) -> str:
    """argparse type: a namespace name the API server would accept (an invalid one is wrong usage)."""
    from .connect import validate_namespace
    from .errors import InvalidNamespace

    try:
        validate_namespace(value)
    except InvalidNamespace as err:
        raise argparse.ArgumentTypeError(f"{err.problem}; {err.fix}") from None
    return value


def _say(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


@contextmanager
def _still_waiting(what: str, every: float = PROGRESS_EVERY) -> Iterator[None]:
    """Print a line every ``every`` seconds while the block runs, so a long wait is visibly alive."""
    done = threading.Event()
    started = time.monotonic()

    def tick() -> None:
        while not done.wait(every):
            _say(f"  ... still waiting ({time.monotonic() - started:.0f} s): {what}")

    ticker = threading.Thread(target=tick, name="jhtutorial-cli-progress", daemon=True)
    ticker.start()
    try:
        yield
    finally:
        done.set()
        ticker.join()


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="jhtutorial",
        description="Deploy a stripped-down JupyterHub on Kubernetes, step by step.",
        epilog="exit codes: 0 ok, 1 tutorial problem, 2 usage, 3 local cluster, 4 connection, 5 step, "
        "6 forbidden, 7 wait timed out, 8 API error, 9 hub unreachable or login refused, 130 interrupted",
    )
    parser.add_argument("--context", default=None,
                        help="kubeconfig context (default: $JHTUTORIAL_CONTEXT, or the current one)")
    parser.add_argument("--namespace", "-n", type=_namespace_arg, default=None,
                        help="namespace (default: $JHTUTORIAL_NAMESPACE, the context's, or 'jhtutorial')")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    # the same options after the command; SUPPRESS keeps a value given before it
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--context", default=argparse.SUPPRESS, help="kubeconfig context")
    common.add_argument("--namespace", "-n", type=_namespace_arg, default=argparse.SUPPRESS, help="namespace")

    up = commands.add_parser("up", parents=[common], help="apply the steps in order, waiting for each")
    up.add_argument("--through", metavar="STEP", default=None,
                    help="stop after this step (number or name, e.g. 4 or pvc; default: all)")
    up.add_argument("--timeout", type=float, default=180.0, help="seconds to wait for each step (default 180)")
    up.set_defaults(handler=_up)

    status = commands.add_parser("status", parents=[common], help="each step: done or not (exit 0 when all are)")
    status.set_defaults(handler=_status)

    url = commands.add_parser("url", parents=[common], help="a URL on this machine that reaches proxy-public")
    url.add_argument("--method", default="auto", choices=["auto", "minikube", "nodeport", "port-forward", "kubectl"],
                     help="how to reach it (default: try minikube, NodePort, then a port-forward)")
    url.add_argument("--port", type=int, default=0, help="local port of a port-forward; when another program holds it, any free one, "
                     "said in a note (default: any free one)")
    url.add_argument("--no-verify", action="store_true", help="do not ask /hub/health through the URL first")
    url.set_defaults(handler=_url)

    access = commands.add_parser("access", parents=[common],
                                 help="open, show or close the way in to the hub that stays open (notebook 07's)")
    access.add_argument("action", choices=["open", "close", "status"])
    access.add_argument("--port", type=int, default=None,
                        help="local port to open it on; when taken, any free one, said in a note (default: the port "
                             "it was last open on, so a browser tab left open works again; else 8080)")
    access.set_defaults(handler=_access)

    login = commands.add_parser("login", parents=[common], help="log in, start the server, report each stage")
    login.add_argument("--user", default="admin", help="user name (default: admin)")
    login.add_argument("--password", default="admin", help="password (the tutorial's hub accepts 'admin')")
    login.add_argument("--url", default=None,
                       help="a hub URL that already answers (default: open a way in, as `jhtutorial url` does)")
    login.add_argument("--timeout", type=float, default=None,
                       help="seconds for the server to start (default: 60 on the local cluster, 300 elsewhere)")
    login.set_defaults(handler=_login)

    stop = commands.add_parser("stop", parents=[common],
                               help="stop a user's server as its Home page's button does (the claim stays)")
    stop.add_argument("--user", default="admin", help="user name (default: admin)")
    stop.add_argument("--password", default="admin", help="password (the tutorial's hub accepts 'admin')")
    stop.add_argument("--url", default=None, help="a hub URL that answers (default: the way in, opened if needed)")
    stop.set_defaults(handler=_stop)

    down = commands.add_parser("down", parents=[common], help="remove the tutorial's objects, user pods and PVCs")
    down.add_argument("--delete-namespace", action="store_true", help="also delete the namespace")
    down.add_argument("--timeout", type=float, default=120.0, help="seconds to wait until all is gone")
    down.set_defaults(handler=_down)

    run = commands.add_parser("run", parents=[common], help="run the notebooks headless (papermill)")
    run.add_argument("--timeout", type=float, default=None, help="per-notebook wait timeout parameter")
    run.add_argument("--only", nargs="+", metavar="PREFIX", default=None, help="only notebooks starting with these")
    run.add_argument("--output", default=None, help="folder for the executed copies (default: output/NAMESPACE/)")
    run.add_argument("--notebooks", default=None, help="folder of the notebooks (default: the project's)")
    run.set_defaults(handler=_run)

    lab = commands.add_parser("lab", parents=[common],
                              help="open a working copy of the notebooks in JupyterLab (--namespace/--context reach them)")
    lab.add_argument("--workdir", default=None, metavar="FOLDER",
                     help="the working copy of the notebooks and manifests/ (default: ./jhtutorial-workbook); "
                     "files already there are kept, only missing ones are copied")
    lab.add_argument("lab_args", nargs=argparse.REMAINDER, help="anything else is passed on to jupyter lab")
    lab.set_defaults(handler=_lab)

    from .classroom.command import add_commands as add_classroom_commands  # its own module: jhtutorial/classroom

    add_classroom_commands(commands, common)

    cluster = commands.add_parser("cluster", help="the local simulated cluster (real control plane, kwok nodes)")
    cluster_commands = cluster.add_subparsers(dest="cluster_command", required=True, metavar="ACTION")
    kubeconfig_help = "where the local cluster's kubeconfig is written (default: ~/.local/state/jhtutorial/kubeconfig)"

    cluster_up = cluster_commands.add_parser("up", help="build (first time only) and start the cluster; reuse a running one")
    cluster_up.add_argument("--port", type=int, default=None, help="kube-apiserver port on 127.0.0.1 (default: a free one)")
    cluster_up.add_argument("--nodes", type=int, default=3, help="number of simulated nodes (default: 3)")
    cluster_up.add_argument("--recreate", action="store_true",
                            help="start over: keep a copy of the cluster's data (it says where), delete it, create a "
                            "new one (new port and certificates: every kubeconfig handed out stops working)")
    cluster_up.set_defaults(handler=_cluster_up)

    cluster_down = cluster_commands.add_parser(
        "down", help="stop the cluster and delete it; a copy of its data is kept (it says where)")
    cluster_down.set_defaults(handler=_cluster_down)

    cluster_restore = cluster_commands.add_parser(
        "restore", help="bring back a cluster from the copy that `down` or `up --recreate` kept, and start it")
    cluster_restore.add_argument("archive", help="the .tar.gz file `down` or `up --recreate` named")
    cluster_restore.set_defaults(handler=_cluster_restore)

    cluster_status = cluster_commands.add_parser(
        "status", help="running, degraded (which component is down) or stopped; exit code 0 only when running")
    cluster_status.set_defaults(handler=_cluster_status)

    cluster_kubeconfig = cluster_commands.add_parser("kubeconfig", help="print the path of the cluster's kubeconfig")
    cluster_kubeconfig.set_defaults(handler=_cluster_kubeconfig)

    for sub in (cluster_up, cluster_down, cluster_restore, cluster_status, cluster_kubeconfig):
        sub.add_argument("--kubeconfig", default=None, help=kubeconfig_help)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)  # exits with 2 on wrong usage
    if extra:
        if args.command != "lab":
            parser.error(f"unrecognized arguments: {' '.join(extra)}")
        # `jhtutorial lab --port 9999`: options jhtutorial does not know belong to JupyterLab
        args.lab_args = [*extra, *args.lab_args]
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

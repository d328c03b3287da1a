"""Run the numbered notebooks headless, or open them in JupyterLab.

    $ jhtutorial run                          # the whole series, one line per notebook
    $ jhtutorial run --namespace alice --timeout 300
    $ jhtutorial lab                          # JupyterLab on a working copy, KUBECONFIG set
    $ jhtutorial lab --workdir ~/k8s-workshop # the working copy in a folder of your choice

Both pick the cluster the way kubectl does (``--context``, ``KUBECONFIG``,
``~/.kube/config``); when none is configured they start the local simulated
cluster and use its kubeconfig. The series runs in this one process through
papermill's Python API (one kernel per notebook, no extra interpreter start;
each notebook's kernel starts while the one before it runs), writing executed copies to ``output/NAMESPACE/`` (``--output FOLDER`` picks
another), so runs in different namespaces, started together from one folder,
each keep their own. The first failing notebook stops the run, which exits
non-zero naming the notebook, the cell and its own executed copy.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections import deque
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

from jupyter_client.client import KernelClient
from jupyter_client.manager import AsyncKernelManager

from .errors import TutorialError
from .shipped import shipped_folder

NOTEBOOK_DIR = shipped_folder("notebooks")  # the reference copies, with the outputs of a clean run
DEFAULT_OUTPUT = Path("output")  # executed copies go to a folder per namespace in it: output/NAMESPACE/
OUTPUT_LOCK = ".jhtutorial-run.lock"  # held by the run writing into an output folder
# ipykernel warns on every start that its local TCP ports are unencrypted; a kernel's
# real failures still reach the notebook (and papermill) as errors.
KERNEL_ARGUMENTS = ["--IPKernelApp.log_level=CRITICAL"]
# what every notebook's first cell imports, imported by a kernel started ahead while it waits; the
# expression binds no name (and shows nothing), so a notebook that forgot its import still fails
# how many notebooks after the running one have their kernel started: the first six notebooks take about
# a second each, less than a kernel's start, so one ahead would still leave them waiting
KERNELS_AHEAD = 2
WARM_IMPORTS = ["--IPKernelApp.exec_lines=['__import__(\"jhtutorial.notebook\") and None']"]
COMMITTED_NAMESPACE = "jhtutorial"


@contextmanager
def kernel_channels() -> Iterator[dict[str, object]]:
    """Options for papermill and nbclient: the kernel's five channels are Unix sockets in a private folder
    made for this one kernel, not TCP ports. Over TCP, jupyter_client picks the ports by binding and releasing
    them, and the kernel binds them a moment later: a kernel or any program started meanwhile (another run's)
    can take one, and the kernel dies with "Address already in use". (On Windows, which has no such sockets
    for ZeroMQ, the kernel keeps its TCP ports.)"""
    if os.name == "nt":
        yield {}
        return
    import tempfile

    from traitlets.config import Config

    with tempfile.TemporaryDirectory(prefix="jhtutorial-kernel-") as folder:
        # an absolute prefix of its own: by default the socket files are named kernel-ipc-N in the
        # kernel's working folder, which every run of the same notebooks shares
        yield {"config": Config({"KernelManager": {"transport": "ipc", "ip": os.path.join(folder, "kernel")}})}


class KernelManagerKeepingClients(AsyncKernelManager):
    """A kernel manager that keeps the clients it makes, to close their channels with the kernel: nbclient
    leaves open the channels of a kernel it was given, and a client collected with open channels logs a
    warning."""

    def __init__(self, **kwargs: object) -> None:
        super().__init__(**kwargs)
        self.made: list[KernelClient] = []

    def client(self, **kwargs: object) -> KernelClient:
        self.made.append(super().client(**kwargs))
        return self.made[-1]


class KernelAhead:
    """A notebook's kernel, started before its turn so that it boots while the notebook before it runs.

    A kernel takes one to two seconds to start and import the helper package, nine times in the series;
    started ahead, that time mostly passes while the cluster works for the notebook before. The kernel gets
    what papermill would give it (the notebook's kernel, folder and arguments, the environment of this
    moment) and imports ``jhtutorial.notebook`` at start without binding a name, so every notebook still
    begins with nothing defined. It is shut down right after its own notebook, as papermill's own would be,
    which ends what the notebook's kernel held (a port-forward it kept, for one)."""

    def __init__(self, notebook: Path) -> None:
        from jupyter_core.utils import run_sync

        self._held = ExitStack()
        options = self._held.enter_context(kernel_channels())
        self.manager = KernelManagerKeepingClients(kernel_name=kernel_name(notebook), **options)
        try:  # Popen returns at once: the kernel boots in the background
            run_sync(self.manager.start_kernel)(cwd=str(notebook.parent),
                                                extra_arguments=[*KERNEL_ARGUMENTS, *WARM_IMPORTS])
        except BaseException:
            self._held.close()
            raise
        self.options = {**options, "km": self.manager}

    def close(self) -> None:
        from jupyter_core.utils import run_sync

        try:
            for client in self.manager.made:
                client.stop_channels()
            if self.manager.has_kernel:
                run_sync(self.manager.shutdown_kernel)(now=False)
        finally:
            self._held.close()


def kernel_name(notebook: Path) -> str:
    """The kernel a notebook names in its metadata (papermill's choice too), ``python3`` when it names none."""
    import nbformat

    spec = nbformat.read(notebook, as_version=4).metadata.get("kernelspec") or {}
    return spec.get("name") or "python3"


@dataclass
class NotebookRun:
    notebook: str
    ok: bool
    seconds: float
    failure: str | None = None

    def line(self) -> str:
        verdict = "ok    " if self.ok else "FAILED"
        text = f"{verdict} {self.notebook:<28} {self.seconds:6.1f} s"
        return text if self.ok else f"{text}\n       {self.failure}"


def notebooks(folder: Path = NOTEBOOK_DIR) -> list[Path]:
    """The series in order: every `NN-name.ipynb` in the folder."""
    return sorted(p for p in folder.glob("[0-9][0-9]-*.ipynb"))


def ensure_cluster(context: str | None) -> Path | None:
    """Start the local cluster when no other one is configured; return its kubeconfig.

    Returns None when the user's own kubeconfig (or an explicit context) is used.
    """
    from .connect import cluster_configured
    from .localcluster import LocalCluster

    if context or cluster_configured():
        return None

    print("no cluster configured (no KUBECONFIG, no ~/.kube/config): using the local simulated cluster",
          file=sys.stderr, flush=True)
    return LocalCluster().up().kubeconfig


def parameters(args: argparse.Namespace) -> dict[str, object]:
    """The papermill parameters every notebook's `parameters` cell declares."""
    params: dict[str, object] = {"interactive": False}
    if args.context:
        params["context"] = args.context
    if args.namespace:
        params["namespace"] = args.namespace
    if getattr(args, "timeout", None):
        params["timeout"] = args.timeout
    return params


def run_notebook(notebook: Path, output: Path, params: dict[str, object],
                 kernel: KernelAhead | None = None) -> NotebookRun:
    """Execute one notebook headless with papermill into ``output``; never raises for a failing cell.
    ``kernel``: one started ahead for this notebook (its caller closes it); else papermill starts one."""
    import papermill

    began = time.monotonic()
    try:
        with ExitStack() as stack:
            options = kernel.options if kernel else stack.enter_context(kernel_channels())
            papermill.execute_notebook(
                str(notebook), str(output / notebook.name), parameters=params,
                cwd=str(notebook.parent), progress_bar=False, log_output=False,
                extra_arguments=KERNEL_ARGUMENTS, **options,
            )
    except papermill.PapermillExecutionError as err:
        cell = f"cell {err.exec_count}" if err.exec_count else f"cell #{err.cell_index}"
        lines = str(err.evalue or "").splitlines()
        reason = f"{cell}: {err.ename}: {lines[0] if lines else ''}"
        fixes = [line.strip() for line in lines if line.strip().startswith("-> ")]
        if fixes:  # a TutorialError says what to do: keep that line too
            reason += f"\n       {fixes[-1]}"
        return NotebookRun(notebook.stem, False, time.monotonic() - began, reason)
    return NotebookRun(notebook.stem, True, time.monotonic() - began)


def run_notebooks(series: list[Path], output: Path, params: dict[str, object]) -> Iterator[NotebookRun]:
    """Execute ``series`` in order, each notebook's kernel started ahead (KERNELS_AHEAD) while the ones
    before run; stops after the first failure (the kernels started for later notebooks are shut down unused)."""
    waiting: deque[KernelAhead] = deque()
    try:
        for index, notebook in enumerate(series):
            for ahead in series[index + len(waiting):index + KERNELS_AHEAD + 1]:
                waiting.append(KernelAhead(ahead))
            kernel = waiting.popleft()
            try:
                run = run_notebook(notebook, output, params, kernel=kernel)
            finally:
                kernel.close()
            yield run
            if not run.ok:
                return
    finally:
        for kernel in waiting:
            kernel.close()


def output_folder(args: argparse.Namespace, namespace: str) -> Path:
    """Where a run writes its executed copies: ``--output``, else ``output/NAMESPACE/``."""
    return Path(getattr(args, "output", None) or DEFAULT_OUTPUT / namespace)


@contextmanager
def claimed(folder: Path) -> Iterator[Path]:
    """Hold ``folder`` for one run's executed copies: a second run into it (another one in the same namespace,
    or with the same ``--output``) stops at once instead of overwriting this run's files. The claim is an
    flock on a file in the folder, which the system releases when the run ends, even when it is killed."""
    folder.mkdir(parents=True, exist_ok=True)
    try:
        import fcntl
    except ImportError:  # Windows has no flock: the folder per namespace still keeps runs apart
        yield folder
        return
    with open(folder / OUTPUT_LOCK, "a+") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock.seek(0)
            holder = lock.read().strip() or "another run"
            raise TutorialError(f"{holder} is writing its executed copies to {folder}/ right now",
                                fix="wait for it to finish, run in another namespace (--namespace), "
                                "or give this run a folder of its own (--output FOLDER)") from None
        lock.seek(0)
        lock.truncate()
        lock.write(f"`jhtutorial run` (pid {os.getpid()})\n")
        lock.flush()
        yield folder


def run_series(args: argparse.Namespace) -> int:
    """`jhtutorial run`: execute every notebook headless; 0 when all passed."""
    from .connect import resolve_context, resolve_namespace

    context = resolve_context(args.context)
    kubeconfig = ensure_cluster(context)
    if kubeconfig is not None:
        os.environ["KUBECONFIG"] = str(kubeconfig)  # the kernels inherit it
    series = notebooks(Path(getattr(args, "notebooks", None) or NOTEBOOK_DIR))
    only = getattr(args, "only", None)
    if only:
        series = [nb for nb in series if any(nb.name.startswith(prefix) for prefix in only)]
    if not series:
        raise TutorialError("no notebooks to run", fix=f"check the folder {NOTEBOOK_DIR}")
    namespace = resolve_namespace(context, args.namespace)
    with claimed(output_folder(args, namespace)) as output:
        print(f"namespace {namespace}: executed copies go to {output}/", flush=True)
        started = time.monotonic()
        results: list[NotebookRun] = []
        for run in run_notebooks(series, output, parameters(args)):
            results.append(run)
            print(run.line(), flush=True)
            if not run.ok:
                print(f"stopped at {run.notebook}.ipynb; the executed copy is {output / run.notebook}.ipynb",
                      flush=True)
                return 1
        print(f"all {len(results)} notebooks passed in {time.monotonic() - started:.1f} s; "
              f"executed copies in {output}/", flush=True)
    return 0


def refresh(namespace: str = COMMITTED_NAMESPACE, folder: Path = NOTEBOOK_DIR, *, timeout: float = 600,
            yes: bool = False) -> int:
    """Re-execute the committed notebooks in place, in order, from a clean namespace.

    This is how the outputs in notebooks/ are made: namespace ``namespace`` is deleted
    first, then each notebook runs with its own default parameters (interactive, as in
    JupyterLab; no papermill cell is injected) and is written back over itself. The
    first failure stops the refresh and leaves that notebook untouched. Nobody sits at a browser, so while
    07's login cell waits for the learner's login, a stand-in logs in as the learner would
    (:mod:`jhtutorial.notebook.standin`); the outputs then show the login, not a countdown that ran out.

    The committed outputs come from this machine's local simulated cluster. On any other
    cluster (``KUBECONFIG`` or ``JHTUTORIAL_CONTEXT`` pointing elsewhere) it refuses, and
    deletes nothing, unless ``yes`` (``--yes``) says that deleting the namespace there is meant.

        $ python -m jhtutorial.workbook refresh [--yes]
    """
    import nbclient
    import nbformat

    from .connect import connect, is_local_server
    from .kubeapi import NAMESPACES, KubeApi
    from .notebook.standin import StandInLearner, is_login_cell

    kubeconfig = ensure_cluster(None)
    if kubeconfig is not None:
        os.environ["KUBECONFIG"] = str(kubeconfig)
    conn = connect(namespace=namespace, create_namespace=False)
    if not is_local_server(conn.server) and not yes:
        conn.close()
        print(f"refusing to refresh: {conn.server} (context {conn.context}) is not this machine's local simulated "
              f"cluster, and a refresh deletes namespace {namespace} there and re-runs every notebook in it.\n"
              "  -> use the local cluster (export KUBECONFIG=$(jhtutorial cluster kubeconfig)), or add --yes if "
              "that is really what you want", file=sys.stderr, flush=True)
        return 2
    kube = KubeApi(conn.api)
    if kube.get_or_none(NAMESPACES.path(name=namespace)) is not None:
        print(f"deleting namespace {namespace} for a clean run", flush=True)
        kube.call("DELETE", NAMESPACES.path(name=namespace))  # 00's connect() waits until it is gone
    os.environ["JHTUTORIAL_NAMESPACE"] = namespace
    for notebook in notebooks(folder):
        began = time.monotonic()
        document = nbformat.read(notebook, as_version=4)
        # nobody sits at a browser here: at 07's login cell, a stand-in logs in as the learner would
        with kernel_channels() as channels, StandInLearner(namespace) as learner:
            client = nbclient.NotebookClient(
                document, timeout=timeout, kernel_name="python3", record_timing=False,
                resources={"metadata": {"path": str(folder)}}, extra_arguments=KERNEL_ARGUMENTS, **channels,
                on_cell_execute=lambda cell, cell_index: is_login_cell(cell.source) and learner.start(),
            )
            try:
                client.execute()
            except nbclient.exceptions.CellExecutionError as err:
                print(f"FAILED {notebook.stem}: {str(err).strip().splitlines()[-1]}", flush=True)
                return 1
        nbformat.write(document, notebook)
        login = f"; stand-in learner: {learner.outcome}" if learner.outcome != "not started" else ""
        print(f"ok     {notebook.stem:<28} {time.monotonic() - began:6.1f} s{login}", flush=True)
    return 0


#: setting defaults for the labs `jhtutorial lab` starts: JupyterLab asks every new user "Would you like to get
#: notified about official Jupyter news?" (a pop-up with a link out, while fetchNews is "none"); a workbook answers "no"
LAB_SETTING_DEFAULTS: dict[str, dict[str, object]] = {
    "@jupyterlab/apputils-extension:notification": {"fetchNews": "false", "checkForUpdates": False},
}
LAB_CONFIG_SUBFOLDER = ".jhtutorial-lab"  # in the working copy, hidden from JupyterLab's file browser
TERMINAL_COMMANDS_SUBFOLDER = "bin"  # in LAB_CONFIG_SUBFOLDER: the commands a lab terminal finds first on PATH


def write_lab_config(folder: Path) -> Path:
    """A Jupyter config folder (for ``$JUPYTER_CONFIG_PATH``) holding :data:`LAB_SETTING_DEFAULTS` as
    ``labconfig/default_setting_overrides.json``, rewritten at each start. JupyterLab reads them as the
    settings' defaults: the learner's user settings (~/.jupyter/lab/user-settings) still win, and neither they nor
    the environment's share/jupyter/lab/settings are written.

        $ cat jhtutorial-workbook/.jhtutorial-lab/labconfig/default_setting_overrides.json
    """
    import json

    from .workingcopy import write_whole

    path = folder / "labconfig" / "default_setting_overrides.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    # whole at once: a lab starting on the same working copy reads the file meanwhile
    write_whole(path, (json.dumps(LAB_SETTING_DEFAULTS, indent=2) + "\n").encode("utf-8"))
    return folder


def write_terminal_commands(folder: Path, python: str | None = None) -> Path:
    """A folder holding a ``jhtutorial`` command that runs this installation (``python -m jhtutorial.cli``,
    ``python`` being the interpreter of this process, which JupyterLab also starts the notebooks' kernels with),
    rewritten at each start. Put first on a lab terminal's PATH, the notebooks' ``jhtutorial login --user bob``
    and ``jhtutorial up --through 3`` run there as typed, against the same package as the kernel, whether
    or not the learner's shell would find a ``jhtutorial`` of its own (a virtualenv that is not activated,
    an install under ~/.local/bin that is not on PATH, another version elsewhere).

        $ cat jhtutorial-workbook/.jhtutorial-lab/bin/jhtutorial
        #!/bin/sh
        exec /home/me/venv/bin/python -m jhtutorial.cli "$@"
    """
    import shlex

    folder.mkdir(parents=True, exist_ok=True)
    command = folder / "jhtutorial"
    command.write_text("#!/bin/sh\n# the jhtutorial of the notebooks' kernel (written by `jhtutorial lab`)\n"
                       f"exec {shlex.quote(python or sys.executable)} -m jhtutorial.cli \"$@\"\n")
    command.chmod(0o755)
    return folder


def lab_environment(args: argparse.Namespace, kubeconfig: Path | None,
                    base: dict[str, str] | None = None, *, manifests: Path | None = None,
                    lab_config: Path | None = None, commands: Path | None = None) -> dict[str, str]:
    """The environment JupyterLab, its kernels and its terminals get: ``--namespace`` and ``--context``
    travel as ``JHTUTORIAL_NAMESPACE`` and ``JHTUTORIAL_CONTEXT``, which the notebooks read when their
    ``namespace`` and ``context`` parameters are None (the CLI's own rule); ``manifests`` (the working
    copy's) becomes the folder the notebooks' helpers apply, the same files a terminal's kubectl names;
    ``lab_config`` (see :func:`write_lab_config`) goes first on ``JUPYTER_CONFIG_PATH``.
    The local cluster's kubectl goes on PATH: first when KUBECONFIG is the local cluster's or no other
    kubectl is installed, else last (the learner's own kubectl, for their own cluster, keeps precedence).
    ``commands`` (see :func:`write_terminal_commands`) goes first of all, so a terminal's ``jhtutorial``
    is the kernel's."""
    import shutil

    from .connect import CONTEXT_ENV, NAMESPACE_ENV
    from .localcluster import LocalCluster, built_binaries
    from .manifests import MANIFEST_DIR_ENV

    env = dict(os.environ if base is None else base)
    if kubeconfig is not None:
        env["KUBECONFIG"] = str(kubeconfig)
    if getattr(args, "namespace", None):
        env[NAMESPACE_ENV] = args.namespace
    if getattr(args, "context", None):
        env[CONTEXT_ENV] = args.context
    if manifests is not None:
        env[MANIFEST_DIR_ENV] = str(manifests)
    if lab_config is not None:
        env["JUPYTER_CONFIG_PATH"] = os.pathsep.join(
            [str(lab_config), *filter(None, env.get("JUPYTER_CONFIG_PATH", "").split(os.pathsep))])
    binaries = built_binaries()
    if binaries is not None:
        path = env.get("PATH", os.defpath)
        local = LocalCluster(progress=lambda _message: None).kubeconfig.resolve()
        first = (Path(env.get("KUBECONFIG") or os.devnull).resolve() == local
                 or shutil.which("kubectl", path=path) is None)
        folder = str(binaries.kubectl.parent)
        env["PATH"] = f"{folder}{os.pathsep}{path}" if first else f"{path}{os.pathsep}{folder}"
    if commands is not None:
        env["PATH"] = f"{commands}{os.pathsep}{env.get('PATH', os.defpath)}"
    return env


def lab_arguments(extra: list[str], *, root: bool | None = None, shell: str | None = None) -> list[str]:
    """JupyterLab's options: the learner's own, plus

    - a terminal shell that is not a login shell (unless the learner set ``terminado_settings``): JupyterLab
      starts login shells when it has no tty (a service, a test, a notebook's ``!`` command), and a login
      shell's /etc/profile resets PATH, losing the local cluster's kubectl that the lab puts there;
    - ``--allow-root`` when this runs as root (JupyterLab refuses to start as root otherwise; CI machines
      and many containers are root), said in one line.

        >>> lab_arguments(["--port", "9999"], root=True, shell="/bin/bash")
        ['--port', '9999', '--ServerApp.terminado_settings={"shell_command": ["/bin/bash"]}', '--allow-root']
    """
    import json
    import shutil

    arguments = list(extra)
    if os.name != "nt" and not any("terminado_settings" in argument for argument in extra):
        shell = shell or os.environ.get("SHELL") or shutil.which("bash") or "/bin/sh"
        arguments.append(f"--ServerApp.terminado_settings={json.dumps({'shell_command': [shell]})}")
    if root is None:
        root = hasattr(os, "geteuid") and os.geteuid() == 0
    if root and "--allow-root" not in extra:
        print("running as root: passing --allow-root to JupyterLab, which refuses root otherwise",
              file=sys.stderr, flush=True)
        arguments.append("--allow-root")
    return arguments


def lab(args: argparse.Namespace) -> int:
    """`jhtutorial lab`: JupyterLab on the learner's working copy (see :mod:`jhtutorial.workingcopy`),
    pointed at the right cluster and namespace."""
    from .connect import resolve_context, resolve_namespace
    from .workingcopy import DEFAULT_WORKDIR, make_working_copy

    context = resolve_context(args.context)
    kubeconfig = ensure_cluster(context)
    copy = make_working_copy(Path(getattr(args, "workdir", None) or DEFAULT_WORKDIR), notebooks(NOTEBOOK_DIR),
                             shipped_folder("manifests"), shipped_folder("docs"))
    print(str(copy), file=sys.stderr, flush=True)
    lab_folder = copy.folder / LAB_CONFIG_SUBFOLDER
    os.environ.update(lab_environment(  # this process becomes JupyterLab
        args, kubeconfig, manifests=copy.manifests, lab_config=write_lab_config(lab_folder),
        commands=write_terminal_commands(lab_folder / TERMINAL_COMMANDS_SUBFOLDER)))
    if kubeconfig is not None:
        print(f"notebooks will use the local cluster (KUBECONFIG={kubeconfig})", file=sys.stderr, flush=True)
    namespace = resolve_namespace(context, args.namespace)
    print(f"notebooks will use namespace {namespace}" + (f", context {context}" if context else "")
          + " (unless a notebook's own parameters say otherwise)", file=sys.stderr, flush=True)
    command = [sys.executable, "-m", "jupyterlab", f"--notebook-dir={copy.folder}",
               *lab_arguments(getattr(args, "lab_args", []))]
    os.chdir(copy.folder)  # a terminal opened at the file browser's top starts in the server's own folder
    os.execvpe(command[0], command, os.environ)


if __name__ == "__main__":
    if sys.argv[1:2] != ["refresh"] or set(sys.argv[2:]) - {"--yes"}:
        sys.exit("usage: python -m jhtutorial.workbook refresh [--yes]   (re-executes notebooks/ in place; "
                 "--yes allows a cluster other than the local simulated one)")
    sys.exit(refresh(yes="--yes" in sys.argv[2:]))

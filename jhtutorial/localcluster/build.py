"""Build the local cluster's binaries from Go modules, once per version.

Nothing is downloaded as a prebuilt binary: kube-apiserver,
kube-controller-manager, kube-scheduler and kubectl are compiled from the
``k8s.io/kubernetes`` module, etcd from ``go.etcd.io/etcd/server/v3`` and kwok
from ``sigs.k8s.io/kwok``, all through the Go module proxy that ``go`` is set up
to use. A cold build takes tens of minutes on two cores; afterwards the
binaries sit in ``<cache>/bin/<component>-<version>/`` and are reused.

    >>> binaries = ensure_binaries()          # builds only what is missing
    >>> binaries.kubectl                      # doctest: +SKIP
    PosixPath('/root/.cache/jhtutorial/bin/kubernetes-v1.36.3/kubectl')
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, fields
from pathlib import Path

from ..errors import LocalClusterError, ToolMissing
from . import paths, versions

Progress = Callable[[str], None]

KUBERNETES_COMMANDS = ("kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubectl")
# Official release builds use these; `notest` leaves test-only code out.
KUBERNETES_BUILD_TAGS = "selinux,notest"
# A marker written last: a folder without it is an interrupted build.
COMPLETE_MARKER = ".complete.json"


def say(message: str) -> None:
    """Default progress sink: one line on stderr, flushed at once."""
    print(message, file=sys.stderr, flush=True)


@dataclass(frozen=True)
class Binaries:
    """Paths of every program the local cluster runs."""

    kube_apiserver: Path
    kube_controller_manager: Path
    kube_scheduler: Path
    kubectl: Path
    etcd: Path
    kwok: Path
    kwokctl: Path

    @classmethod
    def in_folders(cls, kubernetes: Path, etcd: Path, kwok: Path) -> Binaries:
        return cls(
            kube_apiserver=kubernetes / "kube-apiserver",
            kube_controller_manager=kubernetes / "kube-controller-manager",
            kube_scheduler=kubernetes / "kube-scheduler",
            kubectl=kubernetes / "kubectl",
            etcd=etcd / "etcd",
            kwok=kwok / "kwok",
            kwokctl=kwok / "kwokctl",
        )

    def missing(self) -> list[Path]:
        return [p for p in self.all() if not (p.is_file() and os.access(p, os.X_OK))]

    def all(self) -> list[Path]:
        return [getattr(self, f.name) for f in fields(self)]


def ensure_binaries(progress: Progress = say) -> Binaries:
    """Return the cluster's binaries, building the ones not in the cache yet."""
    prebuilt = paths.prebuilt_bin_dir()
    if prebuilt is not None:
        binaries = Binaries.in_folders(prebuilt, prebuilt, prebuilt)
        missing = binaries.missing()
        if missing:
            raise ToolMissing(
                f"JHTUTORIAL_BIN_DIR={prebuilt} lacks {', '.join(p.name for p in missing)}",
                fix="put all seven programs in that folder, or unset JHTUTORIAL_BIN_DIR to build them",
            )
        return binaries

    folders = _cache_folders()
    builders = {"kubernetes": _build_kubernetes, "etcd": _build_etcd, "kwok": _build_kwok}
    todo = [name for name, folder in folders.items() if not (folder / COMPLETE_MARKER).is_file()]
    if todo:
        go = _find_go()
        with _build_lock(progress):
            for name in todo:
                folder = folders[name]
                if (folder / COMPLETE_MARKER).is_file():  # built by whoever held the lock
                    continue
                _build_into(folder, name, lambda out: builders[name](go, out, progress), progress)
    return Binaries.in_folders(folders["kubernetes"], folders["etcd"], folders["kwok"])


def built_binaries() -> Binaries | None:
    """The cluster's binaries if they are all there already (``JHTUTORIAL_BIN_DIR`` or the cache); builds nothing."""
    prebuilt = paths.prebuilt_bin_dir()
    if prebuilt is not None:
        binaries = Binaries.in_folders(prebuilt, prebuilt, prebuilt)
    else:
        folders = _cache_folders()
        if not all((folder / COMPLETE_MARKER).is_file() for folder in folders.values()):
            return None
        binaries = Binaries.in_folders(folders["kubernetes"], folders["etcd"], folders["kwok"])
    return None if binaries.missing() else binaries


def _cache_folders() -> dict[str, Path]:
    bin_root = paths.cache_dir() / "bin"
    return {
        "kubernetes": bin_root / f"kubernetes-{versions.KUBERNETES}",
        "etcd": bin_root / f"etcd-{versions.ETCD}",
        "kwok": bin_root / f"kwok-{versions.KWOK}-{kwok_patch_digest()}",
    }


# kwok is built from a patched copy of its module (why: patches/README.md).
KWOK_PATCHES = tuple(Path(__file__).parent / "patches" / f"kwok-{versions.KWOK}-{name}.diff"
                     for name in ("exec-prefix", "client-certificates", "exec-streams"))


def kwok_patch_digest() -> str:
    """A short hash of kwok's patches: part of kwok's cache key, so a changed patch rebuilds kwok."""
    digest = hashlib.sha256()
    for patch in KWOK_PATCHES:
        digest.update(patch.read_bytes())
    return digest.hexdigest()[:12]


# --- go ----------------------------------------------------------------------


def _find_go() -> str:
    go = shutil.which("go")
    if go is None:
        raise ToolMissing(
            "building the local cluster needs Go, and `go` is not on PATH",
            fix=(
                f"install Go >= {versions.GO_MINIMUM[0]}.{versions.GO_MINIMUM[1]} (Debian/Ubuntu: the golang "
                "package of that version; elsewhere your package manager), or set JHTUTORIAL_BIN_DIR to a folder "
                "that already holds kube-apiserver, kube-controller-manager, kube-scheduler, kubectl, etcd, kwok "
                "and kwokctl"
            ),
        )
    out = subprocess.run([go, "env", "GOVERSION"], capture_output=True, text=True, check=False).stdout.strip()
    match = re.match(r"go(\d+)\.(\d+)", out)
    if match and (int(match[1]), int(match[2])) < versions.GO_MINIMUM:
        need = f"{versions.GO_MINIMUM[0]}.{versions.GO_MINIMUM[1]}"
        raise ToolMissing(
            f"`go` is {out}, the local cluster's modules need Go >= {need}",
            fix=f"install Go {need} or newer, or set GOTOOLCHAIN to a newer release for this command",
        )
    return go


def _go_env() -> dict[str, str]:
    env = dict(os.environ)
    env["CGO_ENABLED"] = "0"  # static binaries, no C toolchain needed
    env.setdefault("GOFLAGS", "-buildvcs=false")
    return env


def _run_go(go: str, args: list[str], cwd: Path, label: str, progress: Progress) -> None:
    result = subprocess.run([go, *args], cwd=cwd, env=_go_env(), capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise LocalClusterError(
            f"building {label} failed at `go {' '.join(args[:2])}`:\n{result.stderr[-3000:]}",
            fix="check that the Go module proxy is reachable (`go env GOPROXY`) and that the disk is not full",
        )


def _go_build_with_progress(go: str, args: list[str], cwd: Path, label: str, total: int, progress: Progress) -> None:
    """Run `go build -v ...`, turning its package list into periodic progress lines."""
    started = time.monotonic()
    last_report = started
    compiled = 0
    stderr_tail: list[str] = []
    with subprocess.Popen(
        [go, *args], cwd=cwd, env=_go_env(), stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True
    ) as proc:
        assert proc.stderr is not None
        for line in proc.stderr:
            # `-v` names each package as it is built; anything else is an error message
            if re.match(r"^[\w.\-]+(/[\w.\-~]+)*$", line.strip()):
                compiled += 1
            else:
                stderr_tail.append(line)
            now = time.monotonic()
            if now - last_report >= 15:
                last_report = now
                share = f"{compiled}/{total} packages" if total else f"{compiled} packages"
                progress(f"  {label}: {share} compiled, {now - started:.0f} s")
        returncode = proc.wait()
    if returncode != 0:
        raise LocalClusterError(
            f"building {label} failed:\n{''.join(stderr_tail)[-3000:]}",
            fix="check that the Go module proxy is reachable (`go env GOPROXY`) and that the disk is not full",
        )
    progress(f"  {label}: built in {time.monotonic() - started:.0f} s")


def _count_packages(go: str, packages: list[str], cwd: Path, tags: str | None) -> int:
    args = ["list", "-deps"] + (["-tags", tags] if tags else []) + packages
    result = subprocess.run([go, *args], cwd=cwd, env=_go_env(), capture_output=True, text=True, check=False)
    return len(result.stdout.split()) if result.returncode == 0 else 0


# --- the three components ---------------------------------------------------------


def _build_kubernetes(go: str, out: Path, progress: Progress) -> None:
    version = versions.KUBERNETES
    work = paths.cache_dir() / "work" / f"kubernetes-{version}"
    work.mkdir(parents=True, exist_ok=True)
    progress(f"  kubernetes {version}: reading the release's module list")
    (work / "go.mod").write_text(kubernetes_wrapper_gomod(go, version, work))
    packages = [f"k8s.io/kubernetes/cmd/{cmd}" for cmd in KUBERNETES_COMMANDS]
    _run_go(go, ["get", *(f"{p}@{version}" for p in packages)], work, f"kubernetes {version}", progress)
    total = _count_packages(go, packages, work, KUBERNETES_BUILD_TAGS)
    progress(f"  kubernetes {version}: compiling {len(packages)} commands ({total} packages)")
    _go_build_with_progress(
        go,
        ["build", "-v", "-trimpath", "-tags", KUBERNETES_BUILD_TAGS, "-ldflags", kubernetes_ldflags(version),
         "-o", str(out) + os.sep, *packages],
        work, f"kubernetes {version}", total, progress,
    )


def kubernetes_wrapper_gomod(go: str, version: str, work: Path) -> str:
    """A go.mod that builds k8s.io/kubernetes from the module proxy.

    k8s.io/kubernetes requires its ~30 staging modules (k8s.io/api, client-go,
    ...) at v0.0.0 and replaces them with ./staging folders, which a module
    download does not have. Each staging module is published on its own as
    v0.MINOR.PATCH, so we replace every one of them with that release.
    """
    result = subprocess.run(
        [go, "mod", "download", "-json", f"k8s.io/kubernetes@{version}"],
        cwd=work, env=_go_env(), capture_output=True, text=True, check=False,
    )
    if result.returncode != 0:
        raise LocalClusterError(
            f"could not fetch k8s.io/kubernetes@{version}: {result.stderr.strip()[-2000:]}",
            fix="check that the Go module proxy is reachable (`go env GOPROXY`)",
        )
    release_gomod = Path(json.loads(result.stdout)["GoMod"]).read_text()
    staging = re.findall(r"^\s*(k8s\.io/[\w.\-/]+)\s*=>\s*\./staging/", release_gomod, flags=re.M)
    if not staging:
        raise LocalClusterError(f"k8s.io/kubernetes@{version}'s go.mod names no staging modules")
    go_line = re.search(r"^go (\S+)$", release_gomod, flags=re.M)
    lines = [
        "module jhtutorial.local/kubernetes-build",
        "",
        f"go {go_line[1] if go_line else '1.26.0'}",
        "",
        f"require k8s.io/kubernetes {version}",
        "",
    ]
    lines += [f"replace {module} => {module} {versions.staging_version(version)}" for module in staging]
    return "\n".join(lines) + "\n"


def kubernetes_ldflags(version: str) -> str:
    """Stamp the version the way release builds do, so `kubectl version` tells the truth."""
    major, minor, _ = version.lstrip("v").split(".")
    flags = ["-s", "-w"]
    for package in ("k8s.io/component-base/version", "k8s.io/client-go/pkg/version"):
        flags += [
            f"-X {package}.gitVersion={version}",
            f"-X {package}.gitMajor={major}",
            f"-X {package}.gitMinor={minor}",
            f"-X {package}.gitTreeState=clean",
        ]
    return " ".join(flags)


def _build_etcd(go: str, out: Path, progress: Progress) -> None:
    # `go install go.etcd.io/etcd/server/v3@...` refuses modules with replace
    # lines, so a three-line main in a module of our own calls etcdmain.
    version = versions.ETCD
    work = paths.cache_dir() / "work" / f"etcd-{version}"
    work.mkdir(parents=True, exist_ok=True)
    (work / "main.go").write_text(
        'package main\n\nimport (\n\t"os"\n\n\t"go.etcd.io/etcd/server/v3/etcdmain"\n)\n\n'
        "func main() { etcdmain.Main(os.Args) }\n"
    )
    (work / "go.mod").write_text(
        f"module jhtutorial.local/etcd-build\n\ngo 1.26.0\n\nrequire go.etcd.io/etcd/server/v3 {version}\n"
    )
    progress(f"  etcd {version}: resolving modules")
    _run_go(go, ["mod", "tidy"], work, f"etcd {version}", progress)
    total = _count_packages(go, ["."], work, None)
    _go_build_with_progress(
        go, ["build", "-v", "-trimpath", "-ldflags", "-s -w", "-o", str(out / "etcd"), "."],
        work, f"etcd {version}", total, progress,
    )


def _build_kwok(go: str, out: Path, progress: Progress) -> None:
    version = versions.KWOK
    label = f"kwok {version}"
    progress(f"  {label}: fetching the module")
    result = subprocess.run(
        [go, "mod", "download", "-json", f"sigs.k8s.io/kwok@{version}"],
        env=_go_env(), capture_output=True, text=True, check=False, cwd=paths.cache_dir(),
    )
    if result.returncode != 0:
        raise LocalClusterError(
            f"could not fetch sigs.k8s.io/kwok@{version}: {result.stderr.strip()[-2000:]}",
            fix="check that the Go module proxy is reachable (`go env GOPROXY`)",
        )
    module = Path(json.loads(result.stdout)["Dir"])
    work = paths.cache_dir() / "work" / f"kwok-{version}-{kwok_patch_digest()}"
    if work.exists():
        shutil.rmtree(work)  # a copy from an interrupted build may be half patched
    # The module cache is read-only, and `go build -overlay` refuses files in it: patch a copy.
    shutil.copytree(module, work, copy_function=shutil.copy)
    for folder, _, files in os.walk(work):
        os.chmod(folder, 0o755)
        for name in files:
            os.chmod(os.path.join(folder, name), 0o644)
    for patch in KWOK_PATCHES:
        _apply_patch(patch, work, label)
    progress(f"  {label}: compiling kwok and kwokctl (patched: {', '.join(p.name for p in KWOK_PATCHES)})")
    total = _count_packages(go, ["./cmd/kwok", "./cmd/kwokctl"], work, None)
    _go_build_with_progress(
        go, ["build", "-v", "-trimpath", "-ldflags", "-s -w", "-o", str(out) + os.sep, "./cmd/kwok", "./cmd/kwokctl"],
        work, label, total, progress,
    )
    shutil.rmtree(work, ignore_errors=True)


def _apply_patch(patch: Path, tree: Path, label: str) -> None:
    tool = shutil.which("patch")
    if tool is None:
        raise ToolMissing(
            f"building {label} applies {patch.name} with `patch`, which is not on PATH",
            fix="install patch (Debian/Ubuntu: apt-get install patch)",
        )
    result = subprocess.run(
        [tool, "-p1", "--batch", "--forward", "--quiet", "-i", str(patch)],
        cwd=tree, capture_output=True, text=True, check=False,
    )
    if result.returncode != 0:
        raise LocalClusterError(
            f"{patch.name} does not apply to {label}:\n{(result.stdout + result.stderr)[-2000:]}",
            fix=f"the patch is written for {label}: update it together with versions.KWOK",
        )


# --- cache bookkeeping ------------------------------------------------------------


def _build_into(folder: Path, name: str, build: Callable[[Path], None], progress: Progress) -> None:
    """Build into a temporary folder, then move it into place in one step.

    A build that is killed half-way leaves only a temporary folder, never a
    cache entry that looks complete.
    """
    folder.parent.mkdir(parents=True, exist_ok=True)
    progress(f"building {folder.name} (first time only; cached in {folder.parent})")
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix=f".{folder.name}-", dir=folder.parent) as tmp:
        out = Path(tmp)
        build(out)
        (out / COMPLETE_MARKER).write_text(
            json.dumps({"component": name, "seconds": round(time.monotonic() - started, 1)}) + "\n"
        )
        if folder.exists():
            shutil.rmtree(folder)  # an incomplete folder from an older layout
        out.rename(folder)
        out.mkdir()  # so TemporaryDirectory's clean-up finds what it expects


@contextmanager
def _build_lock(progress: Progress) -> Iterator[None]:
    lock_path = paths.cache_dir() / "build.lock"
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_path, "w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            progress("another process is building the local cluster's binaries; waiting for it to finish")
            fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def cached_build_seconds() -> dict[str, float]:
    """How long each cached component took to build (read from its marker)."""
    result = {}
    for marker in (paths.cache_dir() / "bin").glob(f"*/{COMPLETE_MARKER}"):
        try:
            result[marker.parent.name] = float(json.loads(marker.read_text())["seconds"])
        except (ValueError, KeyError, OSError):
            continue
    return result

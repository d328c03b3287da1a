"""The pods' seccomp filter, installed for real in a child of the test: what it refuses, what it lets through.

Each check runs in a forked child that installs the filter (it stays on a process for good) and reports what
each system call answered; nothing here needs a cluster. The numbers in the filter's tables are checked against
the kernel's own headers where the machine has them.
"""

from __future__ import annotations

import ctypes
import errno
import json
import mmap
import os
import re
import signal
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from jhtutorial.localcluster.backing import seccomp

ARCH = seccomp.native_arch()
pytestmark = pytest.mark.skipif(ARCH not in seccomp.AUDIT_ARCH, reason=f"no syscall table for {ARCH}")
HEADERS = {"x86_64": Path("/usr/include/x86_64-linux-gnu/asm/unistd_64.h"),
           "aarch64": Path("/usr/include/asm-generic/unistd.h")}  # aarch64 uses the generic table
CLONE_NEWUSER, SIGCHLD = 0x10000000, 17


def under_filter(check: Callable[[], object], filtered: bool = True) -> object:
    """What ``check`` returns when run in a child under the filter (JSON-able), or the signal that ended it
    (``filtered=False``: the same without the filter)."""
    read_end, write_end = os.pipe()
    child = os.fork()
    if child == 0:
        try:
            os.close(read_end)
            if filtered:
                seccomp.Filter(seccomp.build()).install()
            os.write(write_end, json.dumps(check()).encode())
        finally:
            os._exit(0)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as answer:
        said = answer.read()
    _, status = os.waitpid(child, 0)
    if os.WIFSIGNALED(status):
        return signal.Signals(os.WTERMSIG(status)).name
    return json.loads(said)


def syscall(name: str, *arguments: int) -> int:
    """The errno a raw system call ends with (0: it succeeded), by the filter's own table of numbers."""
    number = seccomp.REFUSED[ARCH].get(name) or {"clone": seccomp.CLONE, "clone3": seccomp.CLONE3,
                                                "personality": seccomp.PERSONALITY, "socket": seccomp.SOCKET,
                                                }[name][ARCH]
    return raw(number, *arguments)


def raw(number: int, *arguments: int) -> int:
    libc = ctypes.CDLL(None, use_errno=True)
    ctypes.set_errno(0)
    result = libc.syscall(ctypes.c_long(number), *(ctypes.c_long(a) for a in arguments))
    return ctypes.get_errno() if result == -1 else 0


def test_its_numbers_are_the_kernels() -> None:
    header = HEADERS[ARCH]
    if not header.exists():
        pytest.skip(f"no kernel headers at {header} (Debian/Ubuntu: linux-libc-dev)")
    known = {name: int(number) for name, number in re.findall(r"#define __NR_(\w+)\s+(\d+)", header.read_text())}
    tables = {**seccomp.REFUSED[ARCH], "clone": seccomp.CLONE[ARCH], "clone3": seccomp.CLONE3[ARCH],
              "personality": seccomp.PERSONALITY[ARCH], "socket": seccomp.SOCKET[ARCH]}
    newest = max(known.values())
    for name, number in tables.items():
        if name in known:
            assert number == known[name], name
        else:  # newer than these headers: the numbers above them are the same on every architecture
            assert number > newest, (name, number, newest)
    assert seccomp.LAST_KNOWN >= newest


# Each a call a runtime's default profile refuses, as a program would make it (arguments need not be valid:
# the filter answers before the kernel looks at them)
REFUSED_CALLS: dict[str, Callable[[], int]] = {
    "unshare a user namespace": lambda: syscall("unshare", CLONE_NEWUSER),
    "clone into a user namespace": lambda: syscall("clone", CLONE_NEWUSER | SIGCHLD, 0, 0, 0, 0),
    "setns": lambda: syscall("setns", 0, 0),
    "mount": lambda: syscall("mount", 0, 0, 0, 0, 0),
    "keyctl (the session keyring's id)": lambda: syscall("keyctl", 0, -3, 0),
    "ptrace (PTRACE_TRACEME)": lambda: syscall("ptrace", 0, 0, 0, 0),
    "perf_event_open": lambda: syscall("perf_event_open", 0, 0, -1, -1, 0),
    "bpf": lambda: syscall("bpf", 0, 0, 0),
    "io_uring_setup": lambda: syscall("io_uring_setup", 1, 0),
    "personality(ADDR_NO_RANDOMIZE)": lambda: syscall("personality", 0x0040000),
    "socket(AF_VSOCK), a virtual machine's channel to its host": lambda: syscall("socket", seccomp.AF_VSOCK, 1, 0),
}


def test_it_refuses_what_runtimes_refuse() -> None:
    # only ever called in the filtered child: unfiltered, the first would move the test into a user namespace
    refused = under_filter(lambda: {name: call() for name, call in REFUSED_CALLS.items()})
    assert refused == dict.fromkeys(REFUSED_CALLS, errno.EPERM), refused


def test_what_it_does_not_know_is_not_there() -> None:
    """clone3, whose flags it cannot read, and any system call newer than its table: ENOSYS, so that the C library
    falls back (to clone) as on an older kernel."""
    answers = under_filter(lambda: [syscall("clone3", 0, 0), raw(seccomp.LAST_KNOWN + 1)])
    assert answers == [errno.ENOSYS, errno.ENOSYS]


@pytest.mark.skipif(ARCH != "x86_64", reason="x32 and i386 calls exist on x86_64")
def test_other_conventions_of_the_same_machine_are_refused() -> None:
    # getpid in x32's numbering (bit 30 set): refused, not mistaken for an allowed number
    assert under_filter(lambda: raw(39 | seccomp.X32_SYSCALL_BIT)) == errno.EPERM

    def i386_getpid() -> int:
        # mov eax, 20 (getpid in i386's table); int 0x80; ret: a 32-bit system call from a 64-bit process
        code = mmap.mmap(-1, mmap.PAGESIZE, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)
        code.write(bytes([0xB8, 20, 0, 0, 0, 0xCD, 0x80, 0xC3]))
        address = ctypes.addressof(ctypes.c_char.from_buffer(code))
        return int(ctypes.CFUNCTYPE(ctypes.c_int)(address)())

    unfiltered = under_filter(i386_getpid, filtered=False)
    if unfiltered == "SIGSEGV":
        pytest.skip("this kernel runs no 32-bit system calls (no IA32 emulation)")
    assert isinstance(unfiltered, int) and unfiltered > 0  # unfiltered, the kernel answers it (the child's pid)
    assert under_filter(i386_getpid) == "SIGSYS"  # filtered, the process is killed


def test_ordinary_programs_still_work_under_it() -> None:
    def run() -> dict[str, object]:
        programs = {
            "a shell with a pipeline and a background job": ["sh", "-c", "yes | head -n 2 | wc -l; (true &); wait"],
            "Python starting a thread and a subprocess": [
                "python3", "-c", "import subprocess, threading; t = threading.Thread(target=print, args=('t',)); "
                "t.start(); t.join(); print(subprocess.run(['echo', 's'], capture_output=True, text=True).stdout)"],
            "unshare -Ur": ["unshare", "-Ur", "true"],
            "setarch -R": ["setarch", "-R", "true"],
        }
        done = {name: subprocess.run(argv, capture_output=True, text=True) for name, argv in programs.items()}
        return {name: [result.returncode, result.stdout.split(), result.stderr.strip()]
                for name, result in done.items()} | {
            "Seccomp": Path("/proc/self/status").read_text().split("\nSeccomp:")[1].split()[0],
            "personality query": syscall("personality", 0xFFFFFFFF),
        }

    seen = under_filter(run)
    assert seen["a shell with a pipeline and a background job"] == [0, ["2"], ""]
    assert seen["Python starting a thread and a subprocess"] == [0, ["t", "s"], ""]
    assert seen["unshare -Ur"][0] != 0 and "Operation not permitted" in seen["unshare -Ur"][2], seen
    assert seen["setarch -R"][0] != 0 and "Operation not permitted" in seen["setarch -R"][2], seen
    assert seen["Seccomp"] == "2" and seen["personality query"] == 0


def test_a_machine_it_has_no_table_for_is_named() -> None:
    assert "not of riscv64" in (seccomp.unsupported_reason("riscv64") or "")
    with pytest.raises(ValueError, match="riscv64"):
        seccomp.build("riscv64")
    assert seccomp.unsupported_reason() is None  # this machine
    for arch in seccomp.AUDIT_ARCH:  # every jump of every table fits classic BPF's one byte
        assert len(seccomp.build(arch)) // 8 < 256

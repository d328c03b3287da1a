"""The seccomp filter of every process in a pod's sandbox: what ``seccompProfile: RuntimeDefault`` means here.

A container runtime puts a seccomp filter on every container's processes: a
small program the kernel runs at each system call, which refuses those that a
program in a container has no business making and that are where the kernel's
security bugs keep being found (new user namespaces above all). This module
builds the local cluster's equivalent as classic BPF and installs it with
``prctl(PR_SET_SECCOMP)``, with nothing but the standard library (``ctypes``,
``struct``): ``sandbox_init.py`` and ``sandbox_enter.py`` load it by its path
before they enter a sandbox, so it imports nothing of the project.

    >>> program = build("x86_64")
    >>> len(program) % 8, len(program) // 8 < 256   # sock_filter entries; every jump fits in a byte
    (0, True)

**A denylist, and why.** The runtimes' profiles (moby's ``default.json``,
containerd's) list the ~350 system calls a container may make and refuse the
rest. A pod here runs the machine's own programs (Python, Node.js, nginx, a
shell, whatever a learner starts in a terminal), so a list of what is allowed
would have to be kept for each architecture and each new C library, and a
call it forgot breaks a program in ways hard to trace. This filter lists what
is refused instead (the same families the runtimes leave out of their list, each
named below), and closes the denylist's one real gap, system calls newer than
it: every number above :data:`LAST_KNOWN` gets ENOSYS, as on an older kernel, so
a call added to Linux later is refused until someone decides about it (runc
answers calls newer than its profile the same way).

What it refuses (EPERM unless said):

- namespaces and mounts: ``unshare``, ``setns``, ``clone`` with any
  ``CLONE_NEW*`` flag (flags are the first argument on x86_64 and aarch64),
  ``clone3`` (ENOSYS: its flags are in a struct a filter cannot read, and
  glibc falls back to ``clone`` on ENOSYS, as with runtimes), ``mount``,
  ``umount2``, ``pivot_root`` and the new mount API (``open_tree``,
  ``open_tree_attr``, ``move_mount``, ``fsopen``, ``fsconfig``, ``fsmount``,
  ``fspick``, ``mount_setattr``);
- the kernel's keyrings (``add_key``, ``request_key``, ``keyctl``), BPF and
  performance counters (``bpf``, ``perf_event_open``), io_uring;
- other processes' memory: ``ptrace``, ``process_vm_readv``/``writev``,
  ``process_madvise``, ``kcmp``, ``pidfd_getfd``, ``userfaultfd``;
- the machine's own state: kernel modules, ``kexec_*``, ``reboot``, swap,
  ``acct``, the clock (``settimeofday``, ``clock_settime``,
  ``clock_adjtime``), quotas, ``syslog``, ``vhangup``, the host and domain
  name (a pod's hostname is its name), ``iopl``/``ioperm``, file handles
  (``open_by_handle_at``, ``name_to_handle_at``), ``fanotify_init``,
  ``lookup_dcookie`` and obsolete calls (``uselib``, ``ustat``, ``sysfs``,
  ``_sysctl``, ``nfsservctl``...);
- ``personality`` except the values runtimes allow (0, 8, 0x20000, 0x20008,
  0xffffffff: Linux, 32-bit, uname26, and the query), so ``setarch -R`` fails;
- ``socket(AF_VSOCK)``: a virtual machine's channel to its host, which no
  network namespace confines (a pod network has no route off the machine).

Most of these the kernel refuses anyway to a process without capabilities,
which every pod process is; the filter is the second wall for the day one of
them has a bug, and the first for those that need no capability at all
(``unshare -Ur``, ``keyctl``, ``ptrace`` of one's own processes, io_uring).

A system call of another architecture's convention is not this filter's to
judge: a 32-bit call on x86_64 (``int 0x80``, arch ``i386``) or on aarch64
(arm) kills the process, and an x32 call (numbers with bit 30 set) is refused.
"""

from __future__ import annotations

import ctypes
import errno
import os
import struct

# <linux/audit.h>: the value of seccomp_data.arch for each architecture this filter knows
AUDIT_ARCH = {"x86_64": 0xC000003E, "aarch64": 0xC00000B7}
X32_SYSCALL_BIT = 0x40000000  # x86_64's x32 convention: numbers with this bit set
# The highest system call number the tables below were written against (listns, Linux 6.18; the numbers are the
# same on every architecture since 424). Above it: ENOSYS.
LAST_KNOWN = 470

# Refused with EPERM: name -> number, per architecture (x86_64: arch/x86/entry/syscalls/syscall_64.tbl;
# aarch64: the generic table, include/uapi/asm-generic/unistd.h). A name the architecture lacks is left out.
_COMMON_NEW = {  # one number everywhere (Linux 5.1 and later)
    "io_uring_setup": 425, "io_uring_enter": 426, "io_uring_register": 427, "open_tree": 428, "move_mount": 429,
    "fsopen": 430, "fsconfig": 431, "fsmount": 432, "fspick": 433, "pidfd_getfd": 438, "process_madvise": 440,
    "mount_setattr": 442, "quotactl_fd": 443, "open_tree_attr": 467,
}
REFUSED: dict[str, dict[str, int]] = {
    "x86_64": {
        "unshare": 272, "setns": 308, "mount": 165, "umount2": 166, "pivot_root": 155,
        "add_key": 248, "request_key": 249, "keyctl": 250, "bpf": 321, "perf_event_open": 298,
        "ptrace": 101, "process_vm_readv": 310, "process_vm_writev": 311, "kcmp": 312, "userfaultfd": 323,
        "init_module": 175, "finit_module": 313, "delete_module": 176, "kexec_load": 246, "kexec_file_load": 320,
        "reboot": 169, "swapon": 167, "swapoff": 168, "acct": 163, "settimeofday": 164, "clock_settime": 227,
        "clock_adjtime": 305, "quotactl": 179, "syslog": 103, "vhangup": 153, "sethostname": 170,
        "setdomainname": 171, "iopl": 172, "ioperm": 173, "open_by_handle_at": 304, "name_to_handle_at": 303,
        "fanotify_init": 300, "lookup_dcookie": 212, "uselib": 134, "ustat": 136, "sysfs": 139, "_sysctl": 156,
        "create_module": 174, "get_kernel_syms": 177, "query_module": 178, "nfsservctl": 180,
        **_COMMON_NEW,
    },
    "aarch64": {
        "unshare": 97, "setns": 268, "mount": 40, "umount2": 39, "pivot_root": 41,
        "add_key": 217, "request_key": 218, "keyctl": 219, "bpf": 280, "perf_event_open": 241,
        "ptrace": 117, "process_vm_readv": 270, "process_vm_writev": 271, "kcmp": 272, "userfaultfd": 282,
        "init_module": 105, "finit_module": 273, "delete_module": 106, "kexec_load": 104, "kexec_file_load": 294,
        "reboot": 142, "swapon": 224, "swapoff": 225, "acct": 89, "settimeofday": 170, "clock_settime": 112,
        "clock_adjtime": 266, "quotactl": 60, "syslog": 116, "vhangup": 58, "sethostname": 161,
        "setdomainname": 162, "open_by_handle_at": 265, "name_to_handle_at": 264, "fanotify_init": 262,
        "lookup_dcookie": 18, "nfsservctl": 42,
        **_COMMON_NEW,
    },
}
# Refused only for some arguments: the system call's number per architecture
CLONE = {"x86_64": 56, "aarch64": 220}
CLONE3 = {"x86_64": 435, "aarch64": 435}
PERSONALITY = {"x86_64": 135, "aarch64": 92}
SOCKET = {"x86_64": 41, "aarch64": 198}
# CLONE_NEWNS | CLONE_NEWCGROUP | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWUSER | CLONE_NEWPID | CLONE_NEWNET
# (clone's CLONE_NEWTIME bit is its exit signal's: only unshare and clone3 take it, and both are refused)
CLONE_NEW_NAMESPACES = 0x7E020000
PERSONALITIES_ALLOWED = (0x0, 0x8, 0x20000, 0x20008, 0xFFFFFFFF)
AF_VSOCK = 40

# seccomp_data (<linux/seccomp.h>): nr at 0, arch at 4, instruction_pointer at 8, args[6] at 16. The low half of
# args[0] is at 16 on these little-endian architectures; the kernel reads each argument checked here as 32 bits
# (clone's flags through lower_32_bits, personality's and socket's as unsigned int and int), so the low half is
# exactly what it acts on.
NR_OFFSET, ARCH_OFFSET, ARG0_LOW_OFFSET = 0, 4, 16

# classic BPF (<linux/filter.h>) and the filter's answers (<linux/seccomp.h>)
LOAD_WORD = 0x20  # BPF_LD | BPF_W | BPF_ABS
JUMP_EQUAL, JUMP_GREATER, JUMP_ANY_BIT = 0x15, 0x25, 0x45  # BPF_JMP | BPF_JEQ/BPF_JGT/BPF_JSET | BPF_K
RETURN = 0x06  # BPF_RET | BPF_K
ALLOW = 0x7FFF0000
KILL_PROCESS = 0x80000000
ERRNO = 0x00050000
PR_SET_NO_NEW_PRIVS, PR_SET_SECCOMP, SECCOMP_MODE_FILTER = 38, 22, 2
MAX_INSTRUCTIONS = 4096  # BPF_MAXINSNS


def native_arch() -> str:
    """This machine's architecture, as the tables name it."""
    return os.uname().machine


def unsupported_reason(arch: str | None = None) -> str | None:
    """Why the sandboxes' filter cannot be made on this machine (None: it can)."""
    arch = arch or native_arch()
    if arch not in AUDIT_ARCH:
        return (f"the pods' seccomp filter knows the system calls of x86_64 and aarch64, not of {arch}, "
                "so a pod here could not run with its RuntimeDefault profile")
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            if "\nSeccomp:" not in status.read():
                return "the kernel has no seccomp (CONFIG_SECCOMP), which a pod's RuntimeDefault profile needs"
    except OSError:
        pass
    return None


class _Program:
    """Instructions whose jumps name labels, resolved to the byte offsets classic BPF takes."""

    def __init__(self) -> None:
        self.code: list[tuple[int, str | None, str | None, int]] = []
        self.labels: dict[str, int] = {}

    def load(self, offset: int) -> None:
        self.code.append((LOAD_WORD, None, None, offset))

    def jump(self, kind: int, value: int, when_true: str | None, when_false: str | None = None) -> None:
        """Jump to ``when_true`` or ``when_false`` (None: the next instruction)."""
        self.code.append((kind, when_true, when_false, value))

    def answer(self, value: int) -> None:
        self.code.append((RETURN, None, None, value))

    def label(self, name: str) -> None:
        self.labels[name] = len(self.code)

    def assemble(self) -> bytes:
        out = bytearray()
        for index, (code, when_true, when_false, value) in enumerate(self.code):
            offsets = [self.labels[target] - index - 1 if target else 0 for target in (when_true, when_false)]
            if not all(0 <= offset <= 255 for offset in offsets):
                raise ValueError(f"instruction {index}: a jump of {offsets} does not fit classic BPF")
            out += struct.pack("=HBBI", code, offsets[0], offsets[1], value)
        if len(self.code) > MAX_INSTRUCTIONS:
            raise ValueError(f"{len(self.code)} instructions: more than the kernel takes")
        return bytes(out)


def build(arch: str | None = None) -> bytes:
    """The filter for ``arch`` (this machine's by default), as the bytes of its ``sock_filter`` array."""
    arch = arch or native_arch()
    if arch not in AUDIT_ARCH:
        raise ValueError(unsupported_reason(arch))
    program = _Program()
    program.load(ARCH_OFFSET)
    program.jump(JUMP_EQUAL, AUDIT_ARCH[arch], None, "kill")
    program.load(NR_OFFSET)
    if arch == "x86_64":
        program.jump(JUMP_ANY_BIT, X32_SYSCALL_BIT, "refuse")
    program.jump(JUMP_GREATER, LAST_KNOWN, "not-known")
    program.jump(JUMP_EQUAL, CLONE3[arch], "not-known")
    program.jump(JUMP_EQUAL, CLONE[arch], "clone")
    program.jump(JUMP_EQUAL, PERSONALITY[arch], "personality")
    program.jump(JUMP_EQUAL, SOCKET[arch], "socket")
    for number in sorted(set(REFUSED[arch].values())):
        program.jump(JUMP_EQUAL, number, "refuse")
    program.answer(ALLOW)

    program.label("clone")
    program.load(ARG0_LOW_OFFSET)
    program.jump(JUMP_ANY_BIT, CLONE_NEW_NAMESPACES, "refuse")
    program.answer(ALLOW)

    program.label("personality")
    program.load(ARG0_LOW_OFFSET)
    for value in PERSONALITIES_ALLOWED:
        program.jump(JUMP_EQUAL, value, "allow")
    program.answer(ERRNO | errno.EPERM)

    program.label("socket")
    program.load(ARG0_LOW_OFFSET)
    program.jump(JUMP_EQUAL, AF_VSOCK, "refuse")

    program.label("allow")
    program.answer(ALLOW)
    program.label("refuse")
    program.answer(ERRNO | errno.EPERM)
    program.label("not-known")
    program.answer(ERRNO | errno.ENOSYS)
    program.label("kill")
    program.answer(KILL_PROCESS)
    return program.assemble()


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]


class Filter:
    """A filter made ready to install: everything that could read a file or allocate is done here, so that
    :meth:`install` is two system calls, safe to make after entering a sandbox whose files are the pod's."""

    def __init__(self, program: bytes) -> None:
        self._buffer = ctypes.create_string_buffer(program, len(program))
        self._fprog = _SockFprog(len(program) // 8, ctypes.cast(self._buffer, ctypes.c_void_p))
        self._prctl = ctypes.CDLL(None, use_errno=True).prctl

    def install(self) -> None:
        """Put the filter on this thread (and, through fork and exec, on everything it starts), for good.

        no_new_privs first: the kernel takes a filter from a process without CAP_SYS_ADMIN only then, and it
        keeps a set-user-ID program from running under a filter it does not expect."""
        zero = ctypes.c_ulong(0)
        for option, arguments in ((PR_SET_NO_NEW_PRIVS, (ctypes.c_ulong(1), zero, zero, zero)),
                                  (PR_SET_SECCOMP, (ctypes.c_ulong(SECCOMP_MODE_FILTER), ctypes.byref(self._fprog),
                                                    zero, zero))):
            if self._prctl(ctypes.c_int(option), *arguments) != 0:
                error = ctypes.get_errno()
                raise OSError(error, f"cannot install the pod's seccomp filter: {os.strerror(error)}")

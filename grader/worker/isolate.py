"""Give a forked child namespaces, mounts and limits of its own, then drop every privilege.

Runs inside the fork server's sandbox (grader/worker/forkserver.py), in the
child forked for one submission, before any student code exists in it. The
fork server keeps CAP_SYS_ADMIN, CAP_SETPCAP and CAP_NET_ADMIN inside the
sandbox's user namespace (bwrap `--cap-add`) only so that each child can do
here what bwrap does for a fresh worker:

- new mount, pid, IPC, network, UTS and cgroup namespaces: nothing a child
  leaves behind (a System V segment, an abstract socket, a process) is
  visible to the next one, and the first process of its pid namespace takes
  every other one with it when it ends;
- a fresh size-capped tmpfs on /tmp and /dev/shm, and over the spool folder
  that holds every job: the child sees its own request, code (read-only) and
  out/ (writable), bound back in place, and no other job;
- loopback up, nothing else on the network;
- then no capabilities at all (bounding set, ambient set, effective,
  permitted and inheritable sets emptied, securebits locked, no_new_privs),
  checked from /proc/self/status before returning.

Python 3.10 has no os.unshare or os.mount, hence ctypes.
"""
from __future__ import annotations

import ctypes
import fcntl
import os
import socket
import struct
from pathlib import Path

CLONE_NEWNS, CLONE_NEWCGROUP, CLONE_NEWUTS = 0x00020000, 0x02000000, 0x04000000
CLONE_NEWIPC, CLONE_NEWPID, CLONE_NEWNET = 0x08000000, 0x20000000, 0x40000000
NAMESPACES = (CLONE_NEWNS | CLONE_NEWCGROUP | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWPID |
              CLONE_NEWNET)
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_REMOUNT = 1, 2, 4, 32
MS_BIND, MS_REC, MS_PRIVATE = 4096, 16384, 1 << 18
PR_SET_SECUREBITS, PR_CAPBSET_DROP, PR_SET_NO_NEW_PRIVS, PR_CAP_AMBIENT = 28, 24, 38, 47
PR_SET_DUMPABLE, PR_CAP_AMBIENT_CLEAR_ALL = 4, 4
SECUREBITS_LOCKED = 0xEF        # NOROOT, NO_SETUID_FIXUP, KEEP_CAPS_LOCKED, NO_CAP_AMBIENT_RAISE,
                                # each with its lock
CAPABILITY_VERSION_3 = 0x20080522
SIOCGIFFLAGS, SIOCSIFFLAGS, IFF_UP = 0x8913, 0x8914, 0x1
CAPS = ("CAP_SYS_ADMIN", "CAP_SETPCAP", "CAP_NET_ADMIN")   # what the fork server keeps

_libc = ctypes.CDLL(None, use_errno=True)


class IsolationFailed(OSError):
    """The child could not be given namespaces of its own; it must not run the submission."""


def _call(result: int, what: str) -> None:
    if result != 0:
        errno = ctypes.get_errno()
        raise IsolationFailed(errno, f"{what}: {os.strerror(errno)}")


def _mount(source: str | None, target: str, fstype: str | None, flags: int,
           data: str | None = None) -> None:
    _call(_libc.mount(_b(source), _b(target), _b(fstype), ctypes.c_ulong(flags), _b(data)),
          f"mount {target}")


def _b(text: str | None) -> bytes | None:
    return None if text is None else os.fsencode(text)


def enter(job: Path, mounts: list[tuple[str, bool]], spool: Path, tmpfs_bytes: int) -> None:
    """Namespaces of its own, a private view of its job only, then no privileges.

    The first process forked after this is pid 1 of the new pid namespace.
    """
    _call(_libc.unshare(NAMESPACES), "unshare")
    _mount(None, "/", None, MS_REC | MS_PRIVATE)            # nothing propagates back out
    sources = {path: os.open(path, os.O_PATH | os.O_CLOEXEC) for path, _ in mounts}
    tmpfs = f"size={tmpfs_bytes},mode=0755"
    for folder in ("/tmp", "/dev/shm"):
        _mount("tmpfs", folder, "tmpfs", MS_NOSUID | MS_NODEV, tmpfs)
    if not str(spool).startswith("/tmp/"):                   # else the new /tmp hid it already
        _mount("tmpfs", str(spool), "tmpfs", MS_NOSUID | MS_NODEV, tmpfs)
    job.mkdir(parents=True, exist_ok=True)
    for path, writable in mounts:
        _bind_back(sources.pop(path), path, writable)
    _loopback_up()
    _drop_privileges()


def _bind_back(fd: int, path: str, writable: bool) -> None:
    """Mount what `fd` names (opened before the spool was covered) at `path` again."""
    if os.path.isdir(f"/proc/self/fd/{fd}"):
        os.makedirs(path, exist_ok=True)
    else:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        Path(path).touch()
    _mount(f"/proc/self/fd/{fd}", path, None, MS_BIND)
    if not writable:
        _mount(None, path, None, MS_BIND | MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV)
    os.close(fd)


def _loopback_up() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        request = struct.pack("16sH14x", b"lo", 0)
        flags = struct.unpack("16sH14x", fcntl.ioctl(sock, SIOCGIFFLAGS, request))[1]
        fcntl.ioctl(sock, SIOCSIFFLAGS, struct.pack("16sH14x", b"lo", flags | IFF_UP))


class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32),
                ("inheritable", ctypes.c_uint32)]


def _drop_privileges() -> None:
    """Empty every capability set, for good (no exec can bring one back), and check it."""
    last = int(Path("/proc/sys/kernel/cap_last_cap").read_text())
    _call(_libc.prctl(PR_SET_SECUREBITS, SECUREBITS_LOCKED, 0, 0, 0), "securebits")
    for cap in range(last + 1):
        _call(_libc.prctl(PR_CAPBSET_DROP, cap, 0, 0, 0), f"dropping capability {cap}")
    _call(_libc.prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0), "ambient capabilities")
    _call(_libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "no_new_privs")
    header, data = _CapHeader(CAPABILITY_VERSION_3, 0), (_CapData * 2)()
    _call(_libc.capset(ctypes.byref(header), data), "capset")
    left = held_capabilities()
    if left:
        raise IsolationFailed(0, f"capabilities still held after dropping them: {left}")


def held_capabilities() -> dict[str, int]:
    """The non-empty capability sets of this process, from /proc/self/status."""
    held = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb") and int(value, 16):
            held[key] = int(value, 16)
    return held


def set_dumpable(dumpable: bool) -> None:
    """A non-dumpable process's memory and /proc files are closed to processes without
    CAP_SYS_PTRACE: the fork server is, so no child can read or write it."""
    _call(_libc.prctl(PR_SET_DUMPABLE, int(dumpable), 0, 0, 0), "dumpable")

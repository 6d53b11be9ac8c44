"""Kernel limits for one worker: a cgroup of its own for processes and for memory.

The watchdog (grader/limits.py) samples the process tree, and sampling misses
two things: a fork bomb grows faster than any sampling, and memory that no
process maps (an unmapped memfd, a detached System V segment, the pages and
inodes of files in a tmpfs) is in no process's resident set. The kernel's
cgroups count both where they are spent:

- pids: `pids.max` refuses forks past the limit (one above Limits.max_tasks,
  so the watchdog sees the attempt and says what happened);
- memory: `memory.limit_in_bytes` (v1) or `memory.max` (v2) charges anonymous
  memory, shmem, memfds, System V segments, tmpfs pages and kernel memory
  (inodes, dentries) to the worker; past the limit the kernel's OOM killer
  stops it, and `oom_killed` says so afterwards.

A controller is used where this process may create a child cgroup in it
(root on cgroup v1; cgroup v2 where the controller is delegated); elsewhere
the watchdog alone applies and docs/SECURITY.md says what that leaves open.
Cgroups are named `cnn-grader-<pid>-<n>`, deleted after each run, and, if a
grader was killed with `kill -9`, by the next one that makes a cgroup.
"""
from __future__ import annotations

import itertools
import os
import time
from pathlib import Path

from .limits import Limits, Proc, proc_info

_names = itertools.count()
V1_FILES = {"pids": "pids.max", "memory": "memory.limit_in_bytes"}
V2_FILES = {"pids": "pids.max", "memory": "memory.max"}


class WorkerCgroup:
    """The cgroup folders (one per controller on v1, one on v2) that hold one worker."""

    def __init__(self, folders: dict[str, Path], v2: bool):
        self.folders = folders
        self.v2 = v2

    @classmethod
    def create(cls, limits: Limits) -> WorkerCgroup | None:
        """A cgroup for one worker, or None where none can be made (or GRADER_CGROUPS=off,
        which leaves the watchdog alone, as on machines without cgroups)."""
        if os.environ.get("GRADER_CGROUPS") == "off":
            return None
        values = {"pids": str(limits.max_tasks + 1), "memory": str(limits.memory_bytes)}
        folders: dict[str, Path] = {}
        name = f"cnn-grader-{os.getpid()}-{next(_names)}"
        v2 = False
        for controller, (parent, is_v2) in _parents().items():
            _remove_abandoned(parent)
            folder = parent / name
            try:
                folder.mkdir(exist_ok=True)
                files = V2_FILES if is_v2 else V1_FILES
                (folder / files[controller]).write_text(values[controller])
                if controller == "memory":
                    _no_swap(folder, is_v2, values["memory"])
            except OSError:
                _rmdir(folder)
                continue
            folders[controller] = folder
            v2 = v2 or is_v2
        return cls(folders, v2) if folders else None

    @property
    def limits_memory(self) -> bool:
        return "memory" in self.folders

    def enter(self) -> None:
        """Move the calling process into every folder: plain system calls, as it runs between
        fork and exec (a subprocess preexec_fn)."""
        for folder in dict.fromkeys(self.folders.values()):
            fd = os.open(folder / "cgroup.procs", os.O_WRONLY)
            try:
                os.write(fd, str(os.getpid()).encode())
            finally:
                os.close(fd)

    def entry_fds(self) -> list[int]:
        """Open `cgroup.procs` of every folder for writing: a process that holds these (a child
        of the fork server, which cannot see the cgroup file system) joins by writing "0".
        The kernel checks the permission of whoever opened them, that is, this process."""
        return [os.open(folder / "cgroup.procs", os.O_WRONLY | os.O_CLOEXEC)
                for folder in dict.fromkeys(self.folders.values())]

    def members(self) -> dict[int, Proc]:
        """Every process in the cgroup, even one that left the worker's tree and group."""
        found: dict[int, Proc] = {}
        for folder in set(self.folders.values()):
            try:
                pids = [int(p) for p in (folder / "cgroup.procs").read_text().split()]
            except OSError:
                continue
            found.update({pid: info for pid in pids if (info := proc_info(pid))})
        return found

    def oom_killed(self) -> bool:
        """Whether the kernel killed a process here for going over the memory limit."""
        folder = self.folders.get("memory")
        if folder is None:
            return False
        name = "memory.events" if self.v2 else "memory.oom_control"
        try:
            fields = dict(line.split()[:2] for line in (folder / name).read_text().splitlines()
                          if len(line.split()) >= 2)
        except OSError:
            return False
        return int(fields.get("oom_kill", "0")) > 0

    def remove(self, wait_s: float = 5.0) -> None:
        for folder in set(self.folders.values()):
            _rmdir(folder, wait_s)


def _no_swap(folder: Path, v2: bool, memory: str) -> None:
    """Memory may not move to swap to dodge the limit (where swap accounting exists)."""
    path = folder / ("memory.swap.max" if v2 else "memory.memsw.limit_in_bytes")
    try:
        path.write_text("0" if v2 else memory)
    except OSError:
        pass


def _rmdir(folder: Path, wait_s: float = 0.0) -> None:
    """Delete a cgroup once empty: a killed process leaves it only when its zombie is reaped."""
    deadline = time.monotonic() + wait_s
    while True:
        try:
            folder.rmdir()
            return
        except FileNotFoundError:
            return
        except OSError:
            if time.monotonic() > deadline:
                return
            time.sleep(0.02)


def _remove_abandoned(parent: Path) -> None:
    """Delete the empty cgroups of grading processes that died without cleaning up (kill -9)."""
    for folder in parent.glob("cnn-grader-*-*"):
        if not os.path.exists(f"/proc/{folder.name.split('-')[2]}"):
            _rmdir(folder)


def _parents() -> dict[str, tuple[Path, bool]]:
    """For each controller: this process's cgroup folder where children may be made, and
    whether it is cgroup v2."""
    try:
        own = dict(line.split(":", 2)[1:] for line in
                   Path("/proc/self/cgroup").read_text().splitlines())
        mounts = [line.split()[1:4] for line in Path("/proc/self/mounts").read_text().splitlines()]
    except (OSError, ValueError):
        return {}
    found: dict[str, tuple[Path, bool]] = {}
    for mountpoint, fstype, options in mounts:
        for controller in ("pids", "memory"):
            if controller in found:
                continue
            if fstype == "cgroup" and controller in options.split(",") and controller in own:
                folder, v2 = Path(mountpoint + own[controller]), False
            elif fstype == "cgroup2" and "" in own:
                folder, v2 = Path(mountpoint + own[""]), True
                try:
                    if controller not in (folder / "cgroup.subtree_control").read_text().split():
                        continue
                except OSError:
                    continue
            else:
                continue
            if os.access(folder, os.W_OK):
                found[controller] = (folder, v2)
    return found

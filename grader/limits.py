"""What one submission may use, and how the grader holds it to that.

Most limits are enforced from outside the student's process, by the grading
parent sampling the worker's process tree every few milliseconds and killing
it the moment it is over a limit, because the usual in-process tools do not
fit: RLIMIT_AS breaks CUDA (which reserves huge virtual ranges), and
RLIMIT_NPROC never applies to root (CI runs as root; a user namespace that
maps root does not change that) and counts every process of the user.
Some limits are also kernel limits, because sampling alone cannot keep up
with them: the size of any one file (RLIMIT_FSIZE), and, where cgroups can
be made (grader/cgroups.py), the process count (a fork bomb grows
exponentially and starves the sampling parent of CPU) and memory (which
then counts what no process maps: memfds, System V segments, tmpfs files).
Without a memory cgroup the watchdog adds the memfds the tree holds open;
inside the sandbox it also counts the files in each private tmpfs, whose
inodes cost kernel memory that no size cap covers.
"""
from __future__ import annotations

import os
import re
import resource
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}
MAX_OUT_ENTRIES = 1000  # files and folders in out/: the protocol writes a handful
MAX_SCRATCH_FILES = 10_000  # files in each private tmpfs (/tmp, /dev/shm, the job folder)


@dataclass(frozen=True)
class Limits:
    """Per-submission resource limits."""

    memory_bytes: int = 4 << 30             # resident memory of the whole process tree
    max_tasks: int = max(256, 4 * (os.cpu_count() or 1))  # processes plus threads
    output_bytes: int = 1 << 20             # captured stdout+stderr kept for the report
    file_bytes: int = 128 << 20             # largest file; also each private tmpfs's size


def parse_size(text: str) -> int:
    """'2G', '512M', '1.5GiB', '100000' -> bytes (binary units, as `free -h` shows them)."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(?:i?b)?\s*", text.lower())
    if not match:
        raise ValueError(f"{text!r} is not a size; write it like 2G, 512M or 100000")
    return int(float(match.group(1)) * UNITS[match.group(2)])


def format_size(n: int) -> str:
    """Bytes as the shortest exact binary unit: 2147483648 -> '2 GiB'."""
    for unit in ("T", "G", "M", "K"):
        size = UNITS[unit.lower()]
        if n >= size and n % (size // 16) == 0:
            return f"{n / size:g} {unit}iB"
    return f"{n} bytes"


def prepare_child(limits: Limits, cgroup) -> None:
    """In the child, just before exec: join the cgroups, cap file sizes, no core dumps.

    Python ignores SIGXFSZ, so an oversized write fails with a plain
    `OSError: [Errno 27] File too large` the student can read.
    """
    if cgroup is not None:
        cgroup.enter()
    resource.setrlimit(resource.RLIMIT_FSIZE, (limits.file_bytes, limits.file_bytes))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


class Proc(NamedTuple):
    start: int    # start time in clock ticks: with the pid, names the process for good
    threads: int


def process_tree(root: int) -> dict[int, Proc]:
    """`root` and every process below it, from one pass over /proc (ppid links).

    Empty without /proc (macOS): there only the timeout and the process group apply.
    """
    children: dict[int, list[tuple[int, Proc]]] = {}
    for name in os.listdir("/proc") if os.path.isdir("/proc") else []:
        if name.isdigit():
            stat = _stat_fields(int(name))
            if stat:
                children.setdefault(int(stat[1]), []).append((int(name), _proc(stat)))
    root_stat = _stat_fields(root)
    if not root_stat:
        return {}
    tree, todo = {}, [(root, _proc(root_stat))]
    while todo:
        pid, proc = todo.pop()
        tree[pid] = proc
        todo.extend(children.get(pid, ()))
    return tree


def alive(pid: int, proc: Proc) -> bool:
    """True while that process still runs (a zombie does not; a reused pid is someone else)."""
    stat = _stat_fields(pid)
    return bool(stat) and int(stat[19]) == proc.start and stat[0] != b"Z"


def resident_memory(pids) -> int:
    """Resident memory not backed by files (anonymous and shared), summed over processes.

    File-backed pages (libraries, the memory-mapped dataset) are left out: they
    are shared with every other worker and the page cache can drop them.
    Pages that forked processes share are counted once per process.
    """
    return sum(sum(_read_fields(f"/proc/{pid}/status", (b"RssAnon", b"RssShmem")).values())
               for pid in pids) * 1024


def proportional_memory(pids) -> int:
    """Like resident_memory, but pages that forked processes share are split between them.

    Exact where the plain sum double-counts (a fork bomb, forked data workers),
    and much slower (the kernel walks every page table), so it is only asked
    when the plain sum is over the limit.
    """
    total = 0
    for pid in pids:
        fields = _read_fields(f"/proc/{pid}/smaps_rollup", (b"Pss_Anon", b"Pss_Shmem"))
        if not fields:  # kernels before 5.8 lack the split: count the process in full
            fields = _read_fields(f"/proc/{pid}/status", (b"RssAnon", b"RssShmem"))
        total += sum(fields.values()) * 1024
    return total


def folder_bytes(folder: Path) -> int | None:
    """Total size of the files under `folder`; None when it holds an absurd number of entries."""
    total, seen = 0, 0
    for dirpath, dirnames, filenames in os.walk(folder):
        seen += len(dirnames) + len(filenames)
        if seen > MAX_OUT_ENTRIES:
            return None
        for name in filenames:
            try:
                total += os.lstat(os.path.join(dirpath, name)).st_size
            except OSError:
                pass
    return total


def memfd_bytes(pids) -> int:
    """Memory in memfds the processes hold open, each counted once: pages that need not be
    mapped anywhere, so no resident set shows them (the memory cgroup would charge them)."""
    seen: dict[tuple[int, int], int] = {}
    for pid in pids:
        try:
            fds = os.listdir(f"/proc/{pid}/fd")
        except OSError:
            continue
        for fd in fds:
            path = f"/proc/{pid}/fd/{fd}"
            try:
                if not os.readlink(path).startswith("/memfd:"):
                    continue
                st = os.stat(path)
            except OSError:
                continue
            seen[(st.st_dev, st.st_ino)] = st.st_blocks * 512
    return sum(seen.values())


def scratch_files(tree: dict[int, Proc], folders: tuple[str, ...]) -> int:
    """The most files in any of the sandbox's private tmpfs folders, read through a process
    inside the sandbox (its /proc/PID/root); 0 where no process of the tree is inside."""
    inside = next((pid for pid in sorted(tree, reverse=True)
                   if _mount_ns(pid) not in (None, _mount_ns(os.getpid()))), None)
    if inside is None:
        return 0
    most = 0
    for folder in folders:
        try:
            st = os.statvfs(f"/proc/{inside}/root{folder}")
        except OSError:
            continue
        most = max(most, st.f_files - st.f_ffree)
    return most


def _mount_ns(pid: int) -> str | None:
    try:
        return os.readlink(f"/proc/{pid}/ns/mnt")
    except OSError:
        return None


def violation(tree: dict[int, Proc], out_bytes: int | None, limits: Limits,
              count_memfds: bool = True, scratch: int = 0) -> str | None:
    """Why the process tree `tree` must be stopped now, in words for the student, or None."""
    if sum(p.threads for p in tree.values()) > limits.max_tasks:
        return (f"killed: started more than {limits.max_tasks} processes and threads (the limit "
                "for one submission; the grader trains the model itself, so the code should "
                "not start processes)")
    extra = memfd_bytes(tree) if count_memfds else 0
    over = resident_memory(tree) + extra > limits.memory_bytes
    if over and proportional_memory(tree) + extra > limits.memory_bytes:
        return memory_message(limits)
    if out_bytes is None or out_bytes > limits.file_bytes:
        return (f"killed: wrote more than {format_size(limits.file_bytes)} or "
                f"{MAX_OUT_ENTRIES} files into the grader's result folder")
    if scratch > MAX_SCRATCH_FILES:
        return (f"killed: created more than {MAX_SCRATCH_FILES:,} files in its scratch space "
                "(/tmp and the like); the grader needs none")
    return None


def memory_message(limits: Limits) -> str:
    return (f"killed: exceeded {format_size(limits.memory_bytes)} memory (the limit for one "
            "submission; look for data kept on every step, or tensors far larger than the "
            "model needs)")


def _proc(stat: list[bytes]) -> Proc:
    return Proc(start=int(stat[19]), threads=int(stat[17]))


def proc_info(pid: int) -> Proc | None:
    stat = _stat_fields(pid)
    return _proc(stat) if stat else None


def _stat_fields(pid: int) -> list[bytes] | None:
    """/proc/PID/stat after the command name (which may hold spaces): state, ppid, ..."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            raw = f.read()
    except OSError:
        return None
    return raw[raw.rindex(b")") + 2:].split()


def _read_fields(path: str, keys: tuple[bytes, ...]) -> dict[bytes, int]:
    """The first number of each `Key: value` line named in `keys` (memory is in KiB)."""
    try:
        with open(path, "rb") as f:
            lines = f.read().splitlines()
    except OSError:
        return {}
    fields = {}
    for line in lines:
        key, _, value = line.partition(b":")
        if key in keys:
            fields[key] = int(value.split()[0])
    return fields

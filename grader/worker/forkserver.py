"""The fork server: `python -m grader.worker.forkserver`, a warm parent for submission workers.

It imports torch and the grader's worker code once, never runs a tensor
operation or any student code itself, and then forks one fresh child per
submission (the parent side is grader/forkserver.py). Each child:

1. joins the cgroups the grading parent made for this submission (their
   `cgroup.procs` arrive as file descriptors), and starts a session of its own;
2. when sandboxed, enters namespaces, mounts and limits of its own and drops
   every privilege (grader/worker/isolate.py);
3. forks the first process of its pid namespace, which reaps orphans and
   forks the worker: stdout and stderr on the pipes the parent sent, nothing
   else open, the job's environment, fresh random state, and then exactly
   what a fresh worker runs (grader/worker/__main__.py).

So each submission still gets a process of its own that nothing else has run
in, without paying torch's start-up. The server is not dumpable, so no child
can read or write its memory, and it serves one child at a time: a child's
whole tree is gone before the next one is forked.

Messages on the socket (the server's stdin) are JSON; the parent sends a job
with file descriptors, the server answers {"ready": pid} once, then
{"forked": pid} and {"exited": pid, "code": status, "set_up": bool} per job,
one per line. The exit status follows bwrap's convention (128 + N for a
child killed by signal N); `set_up` is false when the child could not be
isolated, so the submission never ran (the parent then grades it in a fresh
worker).
"""
from __future__ import annotations

import json
import os
import socket
import sys
import traceback
from pathlib import Path

PRELOAD = ("torch", "torch.nn", "torch.nn.functional", "torch.fx", "numpy")
SETUP_FAILED = 125          # the child could not be set up; the submission never ran
MAX_MESSAGE = 1 << 20
MAX_FDS = 8


def main() -> int:
    sock = socket.socket(fileno=0)
    _preload()
    from .isolate import set_dumpable

    set_dumpable(False)
    _send(sock, {"ready": os.getpid()})
    while True:
        try:
            data, fds, _, _ = socket.recv_fds(sock, MAX_MESSAGE, MAX_FDS)
        except OSError:
            return 0
        if not data:
            return 0   # the grading parent closed the socket: done
        job = json.loads(data)
        isolated_r, isolated_w = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.close(isolated_r)
            _child(sock, job, fds, isolated_w)
        os.close(isolated_w)
        for fd in fds:
            os.close(fd)
        _send(sock, {"forked": pid})
        code = _wait(pid)
        ran = os.read(isolated_r, 1) == b"1"   # the child got as far as running the worker
        os.close(isolated_r)
        _send(sock, {"exited": pid, "code": code, "set_up": ran})


def _preload() -> None:
    import importlib

    for name in PRELOAD:
        importlib.import_module(name)
    from . import __main__, capture, export, functions, load, trace  # noqa: F401 - warm imports


def _send(sock: socket.socket, message: dict) -> None:
    sock.send(json.dumps(message).encode() + b"\n")


def _wait(pid: int) -> int:
    """The child's exit status in bwrap's convention: its code, or 128 + the signal."""
    _, status = os.waitpid(pid, 0)
    if os.WIFSIGNALED(status):
        return 128 + os.WTERMSIG(status)
    return os.WEXITSTATUS(status)


def _child(sock: socket.socket, job: dict, fds: list[int], isolated: int) -> None:
    """The process forked for one submission; never returns. It writes "1" to `isolated`
    once it is set up, so the server can tell a child it failed to set up from a
    submission that exited with any status of its own."""
    code = SETUP_FAILED
    try:
        sock.close()
        stdout, stderr, *cgroups = fds
        for fd in cgroups:
            os.write(fd, b"0")   # 0: the writing process joins the cgroup
            os.close(fd)
        os.setsid()
        if job["isolate"]:
            from .isolate import enter

            enter(Path(job["job"]), [tuple(m) for m in job["mounts"]], Path(job["spool"]),
                  job["tmpfs_bytes"])
        os.write(isolated, b"1")
        os.close(isolated)
        pid = os.fork()
        if pid == 0:
            _first(stdout, stderr, job)
        os.close(stdout)
        os.close(stderr)
        code = _wait(pid)
    except BaseException:  # noqa: B036 - whatever failed, the child must leave, and say why
        traceback.print_exc()
    finally:
        os._exit(code)


def _first(stdout: int, stderr: int, job: dict) -> None:
    """Pid 1 of the child's namespace (or a subreaper without one): forks the worker, reaps
    every orphan, and leaves with the worker's status, which ends the whole namespace."""
    code = SETUP_FAILED
    try:
        import ctypes

        ctypes.CDLL(None).prctl(36, 1, 0, 0, 0)   # PR_SET_CHILD_SUBREAPER
        worker = os.fork()
        if worker == 0:
            _worker(stdout, stderr, job)
        os.close(stdout)
        os.close(stderr)
        while True:
            pid, status = os.wait()
            if pid == worker:
                code = 128 + os.WTERMSIG(status) if os.WIFSIGNALED(status) else \
                    os.WEXITSTATUS(status)
                break
    except BaseException:  # noqa: B036
        traceback.print_exc()
    finally:
        os._exit(code)


def _worker(stdout: int, stderr: int, job: dict) -> None:
    """The submission's own process: what a fresh `python -m grader.worker JOB` would run."""
    try:
        devnull = os.open(os.devnull, os.O_RDONLY)
        os.dup2(devnull, 0)
        os.dup2(stdout, 1)
        os.dup2(stderr, 2)
        os.closerange(3, os.sysconf("SC_OPEN_MAX"))
        from .isolate import set_dumpable

        set_dumpable(True)
        os.environ.clear()
        os.environ.update(job["env"])
        os.chdir(job["job"])
        sys.argv = [sys.argv[0], job["job"]]
        _fresh_random_state()
        from .__main__ import _leave, main

        _leave(main(Path(job["job"])))
    except BaseException:  # noqa: B036
        traceback.print_exc()
        os._exit(SETUP_FAILED)


def _fresh_random_state() -> None:
    """As in a new process: torch, numpy and random seeded from the OS, not copied from the
    server (the stages seed what they measure from the request's seed)."""
    import random

    import numpy as np
    import torch

    torch.seed()
    np.random.seed()
    random.seed()


if __name__ == "__main__":
    sys.exit(main())

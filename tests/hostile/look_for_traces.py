"""Look for what an earlier submission left behind, for another job, or for a way into the
process that forked this one; hand in the fixed network (an earlier student's work) if any
of it is found."""
import ctypes
import os
import socket

_token = TEST_VALUES["token"]
_places = [os.path.join(folder, _token)
           for folder in ("/tmp", "/dev/shm", os.environ.get("HOME", "/tmp"))]
_self = os.readlink("/proc/self")
for _pid in filter(str.isdigit, os.listdir("/proc")):   # through other processes' views too
    if _pid != _self:
        _places += [f"/proc/{_pid}/root/tmp/{_token}", f"/proc/{_pid}/root/dev/shm/{_token}"]
_found = [p for p in _places if os.path.exists(p)]
_libc = ctypes.CDLL(None, use_errno=True)
if _libc.shmget(TEST_VALUES["key"], 0, 0) >= 0:
    _found.append("System V segment")
try:
    socket.socket(socket.AF_UNIX, socket.SOCK_STREAM).connect("\0" + _token)
    _found.append("abstract socket")
except OSError:
    pass
_job = os.getcwd()
_jobs = os.path.dirname(_job)
for _view in ["", *(f"/proc/{p}/root" for p in filter(str.isdigit, os.listdir("/proc"))
                    if p != _self)]:
    try:
        _others = [n for n in os.listdir(_view + _jobs) if _view + _jobs + "/" + n != _view + _job]
    except OSError:
        continue
    if _others:
        _found.append(f"other jobs in {_view + _jobs}: {_others[:3]}")
print("found:", _found)
if _found:
    _fixed = open(__file__).read().replace(*TEST_VALUES["broken"][::-1])
    exec(compile(_fixed.split("TEST_VALUES = ")[0], "fixed", "exec"), _stolen := {})
    Model = _stolen["Model"]

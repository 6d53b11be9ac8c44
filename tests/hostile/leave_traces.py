"""Leave something behind for the next submission graded by the same warm grader: files in
/tmp, /dev/shm and the home folder, a System V segment under a known key, an abstract socket
held by a daemon that escapes the process group, each carrying the token."""
import ctypes
import os
import socket
import time

_token = TEST_VALUES["token"]
for _folder in ("/tmp", "/dev/shm", os.environ.get("HOME", "/tmp")):
    try:
        with open(os.path.join(_folder, _token), "w") as _f:
            _f.write("fixed conv2")
    except OSError:
        pass
_libc = ctypes.CDLL(None, use_errno=True)
_libc.shmat.restype = ctypes.c_void_p
_segment = _libc.shmget(TEST_VALUES["key"], 4096, 0o1000 | 0o666)   # IPC_CREAT
if _segment >= 0:
    ctypes.memmove(_libc.shmat(_segment, None, 0), _token.encode(), len(_token))
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        _server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        _server.bind("\0" + _token)
        _server.listen()
        time.sleep(120)
    os._exit(0)
os.wait()
time.sleep(1)   # the daemon is listening before this submission's worker ends

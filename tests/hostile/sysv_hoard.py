"""Hold memory in System V shared memory segments, filled and detached: no process maps them,
and they outlive the process that made them (until the IPC namespace goes)."""
import ctypes
import time

_libc = ctypes.CDLL(None, use_errno=True)
_libc.shmat.restype = ctypes.c_void_p
_libc.shmat.argtypes = (ctypes.c_int, ctypes.c_void_p, ctypes.c_int)
_libc.shmdt.argtypes = (ctypes.c_void_p,)
for _ in range(TEST_VALUES["count"]):
    _id = _libc.shmget(0, 100 << 20, 0o1000 | 0o600)   # IPC_PRIVATE, IPC_CREAT
    if _id < 0:
        break
    _addr = _libc.shmat(_id, None, 0)
    ctypes.memset(_addr, 1, 100 << 20)
    _libc.shmdt(ctypes.c_void_p(_addr))
time.sleep(30)

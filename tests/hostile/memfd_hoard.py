"""Hold memory no process maps: memfds, filled and unmapped (only their descriptors remain)."""
import mmap
import os
import time

_fds = []
for _ in range(TEST_VALUES["count"]):
    _fd = os.memfd_create("hoard")
    os.ftruncate(_fd, 100 << 20)
    with mmap.mmap(_fd, 100 << 20) as _m:
        for _i in range(0, 100 << 20, 4096):
            _m[_i] = 1
    _fds.append(_fd)
time.sleep(30)

"""Fill the disk: one huge file, then as many files as fit, in every writable place."""
import os
import tempfile


def _fill(folder):
    try:
        with open(os.path.join(folder, "huge.bin"), "wb") as f:
            f.write(b"\0" * TEST_VALUES["huge_bytes"])
    except OSError:
        pass  # File too large, or no space left
    for i in range(100000):
        try:
            with open(os.path.join(folder, f"part{i}.bin"), "wb") as f:
                f.write(b"\0" * (1 << 20))
        except OSError:
            break


for _folder in (os.getcwd(), tempfile.gettempdir(), "/dev/shm", os.path.expanduser("~")):
    _fill(_folder)

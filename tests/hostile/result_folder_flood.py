"""Fill the disk through the one folder the worker may write to: its result folder out/."""
import sys
from pathlib import Path

_out = Path(sys.argv[1]) / "out"
for _i in range(100000):
    (_out / f"junk{_i}.bin").write_bytes(b"\0" * (1 << 20))

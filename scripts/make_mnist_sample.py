"""Write grader/bundled/mnist-sample.npz: the real MNIST sample the grader ships with.

It is what `grade` trains on when no MNIST is found, so that a fresh clone grades LeNet-5's
accuracy with nothing downloaded. The images are taken, unchanged, from the official MNIST
files read by torchvision: every TRAIN_STEP-th training image and every TEST_STEP-th test image
(the test set's first half comes from NIST's SD-3 writers and its second from SD-1, so a stride
keeps both). The md5 of every source file is checked against the official files' first, so the
sample cannot be made from a modified copy, and the arrays it writes are the same every time
(their sha256 are in grader/bundled/PROVENANCE.md; tests/test_first_hour.py rebuilds them).

    python scripts/make_mnist_sample.py --data-dir ../shared/data
"""
from __future__ import annotations

import argparse
import hashlib
import io
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
OUT = REPO / "grader" / "bundled" / "mnist-sample.npz"
TRAIN_STEP, TEST_STEP = 6, 10
SOURCE_MD5 = {  # the official MNIST files, uncompressed (as torchvision keeps them in MNIST/raw/)
    "train-images-idx3-ubyte": "6bbc9ace898e44ae57da46a324031adb",
    "train-labels-idx1-ubyte": "a25bea736e30d166cdddb491f175f624",
    "t10k-images-idx3-ubyte": "2646ac647ad5339dbf082846283269ea",
    "t10k-labels-idx1-ubyte": "27ae3e4e09519cfbb04c329615203637",
}


def check_sources(raw: Path) -> None:
    for name, expected in SOURCE_MD5.items():
        got = hashlib.md5((raw / name).read_bytes()).hexdigest()
        if got != expected:
            raise SystemExit(f"{raw / name}: md5 {got}, expected {expected} (not the official file)")


def sample(data_dir: Path) -> dict[str, np.ndarray]:
    import torchvision

    check_sources(data_dir / "MNIST" / "raw")
    out = {}
    for split, train, step in (("train", True, TRAIN_STEP), ("test", False, TEST_STEP)):
        ds = torchvision.datasets.MNIST(str(data_dir), train=train, download=False)
        out[f"x_{split}"] = ds.data.numpy()[::step].astype(np.uint8)
        out[f"y_{split}"] = ds.targets.numpy()[::step].astype(np.uint8)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", type=Path, required=True,
                        help="torchvision data root holding MNIST/raw/")
    args = parser.parse_args()
    arrays = sample(args.data_dir)
    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    OUT.write_bytes(buf.getvalue())
    print(f"wrote {OUT} ({OUT.stat().st_size:,} bytes): {len(arrays['y_train']):,} training and "
          f"{len(arrays['y_test']):,} test images")
    for name, arr in arrays.items():
        print(f"  {name} {arr.shape}: sha256 {hashlib.sha256(arr.tobytes()).hexdigest()}")
    for split in ("train", "test"):
        counts = np.bincount(arrays[f"y_{split}"], minlength=10)
        print(f"  {split} images per class:", " ".join(map(str, counts)))


if __name__ == "__main__":
    main()

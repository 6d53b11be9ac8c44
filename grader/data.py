"""Datasets for the accuracy check, prepared once and split by who may see what.

Images come from the real torchvision datasets (MNIST, FashionMNIST, CIFAR10),
from a course's own .npz file, from Debian's `dataset-fashion-mnist` package
where it is installed, and, when no MNIST is found anywhere, from the real
MNIST sample shipped inside this package (grader/bundled/PROVENANCE.md), so
that a fresh install grades LeNet-5's accuracy with nothing downloaded. Each
is graded against the bars of its own variant (full, subset, embedded).
They are converted once into plain uint8
.npy files in a cache folder: train images and labels plus test *images* go
where the worker may read them; test *labels* go to a separate folder that
only the grading parent reads (DESIGN.md invariant 2). Later runs load the
cached arrays without importing torchvision at all.
"""
from __future__ import annotations

import gzip
import hashlib
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import DataUnavailable

TORCHVISION = {"mnist": ("MNIST", 60000), "fashion_mnist": ("FashionMNIST", 60000),
               "cifar10": ("CIFAR10", 50000)}
RAW_FOLDER = {"mnist": "MNIST", "fashion_mnist": "FashionMNIST", "cifar10": "cifar-10-batches-py"}
CIFAR10_CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse",
                   "ship", "truck"]
BUNDLED = Path(__file__).resolve().parent / "bundled"
EMBEDDED = {"mnist": BUNDLED / "mnist-sample.npz"}   # used when the dataset is nowhere else
# Debian's dataset-fashion-mnist installs the four idx files, gzipped, here.
SYSTEM_COPIES = {"fashion_mnist": Path("/usr/share/datasets/fashion-mnist")}
IDX_FILES = {"x_train": "train-images-idx3-ubyte", "y_train": "train-labels-idx1-ubyte",
             "x_test": "t10k-images-idx3-ubyte", "y_test": "t10k-labels-idx1-ubyte"}


@dataclass(frozen=True)
class Found:
    """Where a dataset was found, and in which form: a torchvision root, an .npz file, a
    folder of gzipped idx files (Debian's), or the sample embedded in this package."""

    path: Path
    form: str                    # torchvision | npz | idx | embedded

    def describe(self, dataset: str) -> str:
        if self.form == "embedded":
            return f"the real {dataset} sample shipped with the grader ({self.path.name})"
        return str(self.path)


@dataclass(frozen=True)
class PreparedData:
    name: str
    variant: str                 # "full"; "subset" when fewer train images than official;
                                 # "embedded" for the sample shipped with the grader
    n_train: int
    n_test: int
    classes: list[str]
    worker_files: dict[str, str]  # train_x, train_y, test_x: paths the worker may read
    labels_file: str             # test labels: the parent only
    source: str = ""             # where the images came from, in words, for reports

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def test_labels(self) -> np.ndarray:
        return np.load(self.labels_file, allow_pickle=False)


def default_data_dir() -> Path:
    env = os.environ.get("GRADER_DATA")
    return Path(env) if env else cache_dir() / "data"


def cache_dir() -> Path:
    """Where prepared arrays live: GRADER_CACHE, else the per-user cache folder."""
    if os.environ.get("GRADER_CACHE"):
        return Path(os.environ["GRADER_CACHE"])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "cnn-grader"


def prepare(dataset: str, data_dir: Path, spec_folder: Path, max_train: int | None = None
            ) -> PreparedData:
    """Locate the dataset, convert it once, and return where each part lives."""
    found = locate(dataset, data_dir, spec_folder)
    key = _cache_key(dataset, found.path, max_train)
    root = cache_dir() / "prepared" / key
    labels = cache_dir() / "labels" / f"{key}.npy"
    meta_file = root / "meta.json"
    if not (meta_file.is_file() and labels.is_file()):
        arrays, classes, official = _load(dataset, found)
        _write_prepared(root, labels, arrays, classes, official, max_train,
                        "embedded" if found.form == "embedded" else None)
    meta = json.loads(meta_file.read_text())
    return PreparedData(name=dataset, variant=meta["variant"], n_train=meta["n_train"],
                        n_test=meta["n_test"], classes=meta["classes"],
                        worker_files={k: str(root / f"{k}.npy")
                                      for k in ("train_x", "train_y", "test_x")},
                        labels_file=str(labels), source=found.describe(dataset))


def _write_prepared(root: Path, labels: Path, arrays: dict[str, np.ndarray], classes: list[str],
                    official: int | None, max_train: int | None, variant: str | None) -> None:
    root.mkdir(parents=True, exist_ok=True)
    labels.parent.mkdir(parents=True, exist_ok=True)
    available = len(arrays["y_train"])
    n = min(available, max_train) if max_train else available
    parts = {"train_x": arrays["x_train"][:n], "train_y": arrays["y_train"][:n].astype(np.int64),
             "test_x": arrays["x_test"]}
    for name, arr in parts.items():
        _save_atomic(root / f"{name}.npy", np.ascontiguousarray(arr))
    _save_atomic(labels, arrays["y_test"].astype(np.int64))
    variant = variant or ("full" if official is None or available >= official else "subset")
    meta = {"variant": variant, "n_train": n, "n_test": int(len(arrays["y_test"])),
            "classes": classes}
    tmp = root / "meta.json.tmp"
    tmp.write_text(json.dumps(meta))
    os.replace(tmp, root / "meta.json")


def _save_atomic(path: Path, arr: np.ndarray) -> None:
    tmp = path.with_name(path.name + f".{os.getpid()}.tmp")
    with tmp.open("wb") as f:
        np.save(f, arr, allow_pickle=False)
    os.replace(tmp, path)


def _cache_key(dataset: str, source: Path, max_train: int | None) -> str:
    files = sorted(p for p in ([source] if source.is_file() else source.rglob("*")) if p.is_file())
    h = hashlib.sha256(f"{dataset}|{max_train}".encode())
    for p in files:
        st = p.stat()
        h.update(f"{p.name}|{st.st_size}|{int(st.st_mtime)}".encode())
    return f"{dataset.replace('/', '_').replace('.npz', '')[-40:]}-{h.hexdigest()[:16]}"


def locate(dataset: str, data_dir: Path, spec_folder: Path) -> Found:
    """Where `dataset` is: the data folder (or one folder below it), a system copy, the
    embedded sample; or a message saying exactly what to run to get it."""
    if dataset.endswith(".npz"):
        for base in (spec_folder, data_dir):
            if (base / dataset).is_file():
                return Found(base / dataset, "npz")
        raise DataUnavailable(f"dataset file {dataset} not found in {spec_folder} or {data_dir}; "
                              "put it there or pass --data-dir")
    folder = RAW_FOLDER[dataset]
    roots = [data_dir] + sorted(p for p in data_dir.iterdir() if p.is_dir()) \
        if data_dir.is_dir() else [data_dir]
    for root in roots:
        if (root / folder).is_dir():
            return Found(root, "torchvision")
    if dataset == "cifar10":
        subset = sorted(data_dir.glob("cifar10*.npz")) if data_dir.is_dir() else []
        if subset:
            return Found(subset[0], "npz")
    system = SYSTEM_COPIES.get(dataset)
    if system is not None and all((system / f"{name}.gz").is_file() for name in IDX_FILES.values()):
        return Found(system, "idx")
    if dataset in EMBEDDED and EMBEDDED[dataset].is_file():
        return Found(EMBEDDED[dataset], "embedded")
    raise DataUnavailable(missing_message(dataset, data_dir))


def missing_message(dataset: str, data_dir: Path) -> str:
    """What to run to get `dataset`, each command on a line of its own."""
    cls, _ = TORCHVISION[dataset]
    commands = [f"    grade download {dataset} --data-dir {data_dir}    # needs internet access"]
    if dataset in SYSTEM_COPIES:
        commands.insert(0, "    sudo apt-get install dataset-fashion-mnist    # Debian, Ubuntu: "
                           "found where it installs")
    holds = f"{RAW_FOLDER[dataset]}/" + (" or a cifar10*.npz (x_train, y_train, x_test, y_test)"
                                         if dataset == "cifar10" else "")
    return (f"{cls} was not found in the data folder {data_dir} (nor one folder below it). "
            f"To get it, run{' one of' if len(commands) > 1 else ''}:\n" + "\n".join(commands)
            + f"\nor point --data-dir (or GRADER_DATA) at a folder that holds {holds}.")


def load_dataset(dataset: str, data_dir: Path) -> tuple[dict[str, np.ndarray], list[str],
                                                        int | None]:
    """A named dataset's arrays, found in `data_dir` as grading finds it (grader/private.py)."""
    return _load(dataset, locate(dataset, data_dir, data_dir))


def _load(dataset: str, found: Found) -> tuple[dict[str, np.ndarray], list[str], int | None]:
    """Arrays x_train (N,C,H,W) uint8, y_train, x_test, y_test; class names; official train size."""
    if found.form == "torchvision":
        return _load_torchvision(dataset, found.path)
    if found.form == "idx":
        arrays = {k: read_idx(found.path / f"{name}.gz") for k, name in IDX_FILES.items()}
    else:
        with np.load(found.path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in IDX_FILES}
    for k in ("x_train", "x_test"):
        if arrays[k].ndim == 3:
            arrays[k] = arrays[k][:, None]
    official = TORCHVISION[dataset][1] if dataset in TORCHVISION else None
    return arrays, _class_names(dataset, arrays["y_train"]), official


def _class_names(dataset: str, labels: np.ndarray) -> list[str]:
    """The names torchvision gives the classes (so every variant's per-class table reads
    alike); numbers for a course's own dataset."""
    if dataset == "cifar10":
        return CIFAR10_CLASSES
    if dataset in TORCHVISION:
        import torchvision

        return list(getattr(torchvision.datasets, TORCHVISION[dataset][0]).classes)
    return [str(c) for c in range(int(labels.max()) + 1)]


def read_idx(path: Path) -> np.ndarray:
    """An idx file (the MNIST format: big-endian header, then uint8 data), gzipped or not."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        raw = f.read()
    zero, dtype, ndim = raw[0] << 8 | raw[1], raw[2], raw[3]
    if zero != 0 or dtype != 0x08 or not 1 <= ndim <= 3:
        raise DataUnavailable(f"{path} is not an idx file of unsigned bytes")
    dims = [int.from_bytes(raw[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim)]
    data = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim)
    if data.size != int(np.prod(dims)):
        raise DataUnavailable(f"{path} is cut short: its header promises {dims}")
    return data.reshape(dims)


def _load_torchvision(dataset: str, root: Path):
    import torchvision

    cls_name, official = TORCHVISION[dataset]
    cls = getattr(torchvision.datasets, cls_name)
    try:
        train, test = cls(str(root), train=True, download=False), cls(str(root), train=False,
                                                                      download=False)
    except RuntimeError as exc:
        raise DataUnavailable(f"{cls_name} under {root} cannot be read ({exc}). "
                              + missing_message(dataset, root)) from exc
    arrays = {}
    for split, ds in (("train", train), ("test", test)):
        x = np.asarray(ds.data)
        x = x[:, None] if x.ndim == 3 else x.transpose(0, 3, 1, 2)  # CIFAR10 is N,H,W,C
        arrays[f"x_{split}"] = np.ascontiguousarray(x, dtype=np.uint8)
        arrays[f"y_{split}"] = np.asarray(ds.targets, dtype=np.int64)
    return arrays, list(train.classes), official


def download(dataset: str, data_dir: Path) -> Path:
    """Fetch a torchvision dataset into data_dir; a clear message when offline.

    A failed download takes back what it made (folders, partial archives), so nothing
    is left behind to be mistaken for a dataset.
    """
    import torchvision

    cls = getattr(torchvision.datasets, TORCHVISION[dataset][0])
    new_top = next((p for p in (*reversed(data_dir.parents), data_dir) if not p.exists()), None)
    before = set(data_dir.iterdir()) if new_top is None else set()
    data_dir.mkdir(parents=True, exist_ok=True)
    try:
        for train in (True, False):
            cls(str(data_dir), train=train, download=True)
    except (OSError, RuntimeError) as exc:
        made = [new_top] if new_top is not None else set(data_dir.iterdir()) - before
        for path in made:
            if path.is_dir():
                shutil.rmtree(path)
            else:
                path.unlink()
        raise DataUnavailable(f"downloading {dataset} into {data_dir} failed ({str(exc).strip()})."
                              " This needs "
                              "internet access; on an offline machine copy the dataset folder "
                              f"({RAW_FOLDER[dataset]}/) from a machine that has it.") from exc
    return data_dir

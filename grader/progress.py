"""Training progress: from the trainer, through a file, to whoever waits for the grade.

Training is the one long step of grading (seconds to minutes), so it must not
be silent. The worker appends one JSON line per epoch to out/progress.jsonl
(`EpochWriter`, one call per epoch, and one as training starts); the grading
process follows that file while the worker runs (`follow`) and hands each new
`Epoch` to a sink:

- `Bar`: a live bar on a terminal (stderr), its clock ticking even while an
  epoch takes long;
- `Lines`: one line per epoch, for logs and notebooks. On stderr from the
  command line; on stdout inside a notebook, because nbgrader scores a test
  cell that writes to stderr as zero.

The file is written by a worker process, so it is read like every other
worker file: through protocol.worker_file, bounded, and whatever does not parse
into an Epoch is ignored (progress never changes a grade).
"""
from __future__ import annotations

import contextlib
import json
import math
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator, TextIO

from . import protocol

FILE = "progress.jsonl"
MAX_BYTES = 1 << 20     # far more than any recipe's epochs need
POLL_S = 0.25


@dataclass(frozen=True)
class Epoch:
    """One finished epoch (epoch >= 1), or the start of training (epoch 0)."""

    epoch: int
    epochs: int
    seconds: float                 # since training started
    loss: float | None = None
    train_accuracy: float | None = None

    def describe(self) -> str:
        if self.epoch == 0:
            return f"training {self.epochs} epoch{'s' if self.epochs != 1 else ''}"
        text = f"epoch {self.epoch}/{self.epochs}"
        if self.loss is not None:
            text += f", loss {self.loss:.3f}"
        if self.train_accuracy is not None:
            text += f", train accuracy {self.train_accuracy:.1%}"
        return f"{text} ({self.seconds:.0f} s)"


Sink = Callable[[Epoch], None]


class EpochWriter:
    """The worker's side: call `start()` once, then the instance once per epoch's curve point."""

    def __init__(self, out_dir: Path, epochs: int):
        self.path = out_dir / FILE
        self.epochs = epochs
        self.started = time.monotonic()

    def start(self) -> None:
        self.started = time.monotonic()
        self._append({"epoch": 0, "epochs": self.epochs, "seconds": 0.0})

    def __call__(self, point: dict) -> None:
        self._append({**point, "epochs": self.epochs,
                      "seconds": round(time.monotonic() - self.started, 3)})

    def _append(self, record: dict) -> None:
        with self.path.open("a", encoding="utf-8") as f:
            f.write(json.dumps(record, allow_nan=False) + "\n")


def parse(line: str) -> Epoch | None:
    """An Epoch from one line of the file, or None for anything else."""
    try:
        raw = json.loads(line)
    except ValueError:
        return None
    if not isinstance(raw, dict):
        return None
    epoch, epochs, seconds = raw.get("epoch"), raw.get("epochs"), raw.get("seconds")
    if not (_count(epoch) and _count(epochs) and epoch <= epochs and _number(seconds)):
        return None
    loss, acc = raw.get("loss"), raw.get("train_accuracy")
    return Epoch(epoch, epochs, float(seconds), float(loss) if _number(loss) else None,
                 float(acc) if _number(acc) else None)


def _count(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 1_000_000


def _number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


class _Reader:
    """New complete lines of a growing file, at most MAX_BYTES in all."""

    def __init__(self, job: Path):
        self.job = job
        self.offset = 0
        self.partial = b""

    def lines(self) -> list[str]:
        path = protocol.worker_file(self.job, FILE)
        if path is None or self.offset >= MAX_BYTES:
            return []
        with path.open("rb") as f:
            f.seek(self.offset)
            data = f.read(MAX_BYTES - self.offset)
        self.offset += len(data)
        *complete, self.partial = (self.partial + data).split(b"\n")
        return [line.decode("utf-8", "replace") for line in complete]


@contextlib.contextmanager
def follow(jobs: list[Path], sink: Sink | None) -> Iterator[None]:
    """While the body runs, hand every epoch the workers of `jobs` write to `sink`."""
    if sink is None:
        yield
        return
    readers = [_Reader(job) for job in jobs]
    stop = threading.Event()

    def poll() -> None:
        for reader in readers:
            for line in reader.lines():
                epoch = parse(line)
                if epoch is not None:
                    sink(epoch)

    def loop() -> None:
        while not stop.wait(POLL_S):
            poll()

    thread = threading.Thread(target=loop, name="progress", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()
        poll()   # the last epochs, written just before the worker finished


class Lines:
    """One line per epoch, prefixed with what is being trained."""

    def __init__(self, label: str, stream: TextIO | None = None):
        self.label = label
        self.stream = stream

    def __call__(self, epoch: Epoch) -> None:
        stream = self.stream or sys.stderr
        print(f"{self.label}: {epoch.describe()}", file=stream, flush=True)


class Bar:
    """A live bar on the terminal while training runs; gone once grading is done."""

    def __init__(self, label: str):
        from rich.console import Console
        from rich.progress import (BarColumn, MofNCompleteColumn, Progress, SpinnerColumn,
                                   TextColumn, TimeElapsedColumn)

        self.progress = Progress(SpinnerColumn(), TextColumn(label), BarColumn(),
                                 MofNCompleteColumn(), TextColumn("epochs"), TimeElapsedColumn(),
                                 TextColumn("{task.fields[last]}"),
                                 console=Console(stderr=True), transient=True)
        self.task = self.progress.add_task(label, total=None, last="")

    def __enter__(self) -> "Bar":
        self.progress.start()
        return self

    def __exit__(self, *exc) -> None:
        self.progress.stop()

    def __call__(self, epoch: Epoch) -> None:
        last = "" if epoch.epoch == 0 else epoch.describe().split(", ", 1)[-1]
        self.progress.update(self.task, total=epoch.epochs, completed=epoch.epoch, last=last)


@contextlib.contextmanager
def for_terminal(label: str, stream: TextIO) -> Iterator[Sink]:
    """The sink for a command's stderr: a live bar on a terminal, else a line per epoch."""
    if stream.isatty():
        with Bar(label) as bar:
            yield bar
    else:
        yield Lines(label, stream)

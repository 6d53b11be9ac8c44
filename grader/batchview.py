"""What `grade batch` shows while it runs: how far it is, who is being graded, for how long.

The display reads OUT/.running/ (batch.Running), which every job keeps up to
date wherever it runs (a pool process here, a Slurm node elsewhere), and
redraws on a clock of its own, so a student whose code hangs shows a growing
time next to their name instead of freezing the screen. The estimate of the
time left is recomputed at every redraw from the jobs finished so far and the
time the running ones have already taken.

On a terminal: a live bar and the running students below it. Otherwise (a CI
log, a file): one line per finished student, and a line naming the running
students whenever nothing has finished for a while.
"""
from __future__ import annotations

import statistics
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

from .batch import Outcome, running_now

REDRAW_S = 0.5
QUIET_S = 60.0          # without a terminal: name the running students after this long


def clock(seconds: float) -> str:
    seconds = int(max(seconds, 0))
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60}:{rest % 60:02d}"


@dataclass
class Tally:
    """The batch's state as finished jobs report in; pure, so the estimate can be tested."""

    total: int
    slots: int
    done: int = 0
    durations: list[float] = field(default_factory=list)   # of jobs graded in this run
    started: float = field(default_factory=time.monotonic)

    def add(self, outcome: Outcome) -> None:
        self.done += 1
        if outcome.state != "skipped":
            self.durations.append(outcome.seconds)

    def eta(self, running: list[float]) -> float | None:
        """Seconds left: the jobs not started at the mean duration so far, plus what the
        running ones (given by how long they have run) still need, over the slots.
        None until one job has finished."""
        if not self.durations:
            return None
        mean = statistics.fmean(self.durations)
        waiting = max(self.total - self.done - len(running), 0)
        left = waiting * mean + sum(max(mean - ran, 0.0) for ran in running)
        return left / max(self.slots, 1)


def running_text(records: list[dict], now: float, limit_s: float | None) -> list[str]:
    """'alice 1:23 of at most 15:00, epoch 1/2' for each running student."""
    lines = []
    for r in records:
        text = f"{r.get('student', '?')} {clock(now - r['started'])}"
        if limit_s:
            text += f" of at most {clock(limit_s)}"
        if isinstance(r.get("epoch"), int) and isinstance(r.get("epochs"), int):
            text += f", epoch {r['epoch']}/{r['epochs']}" if r["epoch"] else ", training"
        lines.append(text)
    return lines


def outcome_text(outcome: Outcome) -> str:
    if outcome.state == "error":
        return f"{outcome.student}: could not be graded: {outcome.message}"
    score = f"{outcome.score:g}/{outcome.max_score:g}"
    how = "unchanged since the last run" if outcome.state == "skipped" else \
        f"{outcome.status or 'graded'} in {outcome.seconds:.0f} s"
    return f"{outcome.student}: {score} ({how})"


class BatchView:
    """The display of one batch; call it with each Outcome, use it as a context manager."""

    def __init__(self, total: int, slots: int, out_dir: Path, limit_s: float | None,
                 stream: TextIO | None = None):
        self.tally = Tally(total, slots)
        self.out_dir = out_dir
        self.limit_s = limit_s
        self.stream = stream or sys.stderr
        self.live = None
        self.last_line = time.monotonic()
        self.stop = threading.Event()
        self.thread: threading.Thread | None = None

    def __enter__(self) -> "BatchView":
        if self.stream.isatty():
            from rich.console import Console
            from rich.live import Live

            self.live = Live(get_renderable=self._screen, refresh_per_second=1 / REDRAW_S,
                             console=Console(file=self.stream), transient=False)
            self.live.start()
        else:
            self.thread = threading.Thread(target=self._quiet_lines, daemon=True)
            self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop.set()
        if self.live is not None:
            self.live.stop()
        if self.thread is not None:
            self.thread.join()

    def __call__(self, outcome: Outcome) -> None:
        self.tally.add(outcome)
        if self.live is not None:
            if outcome.state == "error":
                self.live.console.print(f"[red]{outcome_text(outcome)}[/]", highlight=False)
            return
        self._line(f"[{self.tally.done}/{self.tally.total}] {outcome_text(outcome)}; "
                   f"{self._eta_text()}")

    def _eta_text(self) -> str:
        now = time.time()
        eta = self.tally.eta([now - r["started"] for r in running_now(self.out_dir)])
        return "ETA " + ("unknown until one finishes" if eta is None else clock(eta))

    def _line(self, text: str) -> None:
        self.last_line = time.monotonic()
        print(text, file=self.stream, flush=True)

    def _quiet_lines(self) -> None:
        """Without a terminal: say who is running when nothing has finished for a while."""
        while not self.stop.wait(REDRAW_S):
            if time.monotonic() - self.last_line >= QUIET_S:
                names = running_text(running_now(self.out_dir), time.time(), self.limit_s)
                if names:
                    self._line("still grading: " + "; ".join(names))

    def _screen(self):
        from rich.console import Group
        from rich.progress_bar import ProgressBar
        from rich.table import Table
        from rich.text import Text

        t = self.tally
        head = Table.grid(padding=(0, 1))
        head.add_row(Text("grading"), ProgressBar(total=t.total, completed=t.done, width=40),
                     Text(f"{t.done}/{t.total}"), Text(clock(time.monotonic() - t.started)),
                     Text(self._eta_text()))
        running = running_text(running_now(self.out_dir), time.time(), self.limit_s)
        return Group(head, *(Text(f"  running: {line}") for line in running))

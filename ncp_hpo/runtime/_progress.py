"""Live progress of a real-training study: trials, epochs, best so far, ETA; and
:func:`human` (counts as ``12.3 M``) for its lines.

On a terminal (stderr is a tty) :class:`StudyProgress` shows two tqdm bars: one over the
study's trials (postfix: the best value so far) and one over the epochs of the running
trial (postfix: the last epoch's main metric), and prints a one-line summary per finished
trial above them. Without a terminal (a log file, a pipe, CI) it prints plain lines
instead: the same per-trial summary, and at most one line per ``every`` seconds while a
trial trains. ``enabled=False`` prints nothing but the per-trial lines' absence: fully
quiet.

The ETA is the mean wall time of the trials finished in this run times the trials left
(over-budget refusals cost nothing and are not counted).
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Callable, Mapping
from typing import Any, TextIO

__all__ = ["StudyProgress", "format_duration", "human"]


def human(n: float | int | None, unit: str = "") -> str:
    """``n`` with a k/M/G suffix and 3 significant digits (``-`` for none or non-finite)."""
    if n is None or (isinstance(n, float) and not math.isfinite(n)):
        return "-"
    for scale, suffix in ((1e9, " G"), (1e6, " M"), (1e3, " k")):
        if abs(n) >= scale:
            return f"{n / scale:.3g}{suffix}{unit}"
    return f"{n:.3g} {unit}".rstrip()


def format_duration(seconds: float) -> str:
    """``75`` -> ``"1m15s"``, ``3725`` -> ``"1h02m"``, ``9`` -> ``"9s"``."""
    if not math.isfinite(seconds) or seconds < 0:
        return "?"
    s = round(seconds)
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{(s % 3600) // 60:02d}m"


class StudyProgress:
    """Progress display of one study run.

    Args:
        total: trials to run now.
        epochs: epochs per trial (the epoch bar's length).
        metric: the main metric's name (``"top1"``, ``"mIoU"``, ...).
        enabled: ``False`` prints nothing.
        tty: force terminal (bars) or plain mode; default: ``stream.isatty()``.
        every: plain mode: seconds between lines while a trial trains.
        stream: where bars and lines go (default ``sys.stderr`` for bars, ``sys.stdout``
            for lines).
        clock: the time source (seconds), for tests.
    """

    def __init__(
        self,
        *,
        total: int,
        epochs: int,
        metric: str,
        enabled: bool = True,
        tty: bool | None = None,
        every: float = 30.0,
        stream: TextIO | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.total = int(total)
        self.epochs = int(epochs)
        self.metric = metric
        self.enabled = enabled
        err = stream or sys.stderr
        self.tty = bool(getattr(err, "isatty", lambda: False)()) if tty is None else tty
        self.every = float(every)
        self._stream = stream
        self._clock = clock
        self.done = 0
        self.best: float | None = None
        self._walls: list[float] = []
        self._trial: int | None = None
        self._trial_start = 0.0
        self._last_line = -math.inf
        self._trials_bar: Any = None
        self._epoch_bar: Any = None
        if enabled and self.tty:
            from tqdm.auto import tqdm

            self._trials_bar = tqdm(
                total=self.total, desc="trials", unit="trial", file=err, dynamic_ncols=True
            )

    # -- ETA -------------------------------------------------------------------------------
    def eta(self) -> float:
        """Seconds left: mean trial wall time so far x trials left (NaN before one ends)."""
        if not self._walls:
            return math.nan
        return sum(self._walls) / len(self._walls) * max(self.total - self.done, 0)

    # -- events ----------------------------------------------------------------------------
    def start_trial(self, number: int) -> None:
        """A trial starts training (after any budget check)."""
        self._trial = number
        self._trial_start = self._clock()
        self._last_line = self._trial_start
        if self.enabled and self.tty:
            from tqdm.auto import tqdm

            self._close_epoch_bar()
            self._epoch_bar = tqdm(
                total=self.epochs,
                desc=f"trial {number} epochs",
                unit="epoch",
                leave=False,
                file=self._stream or sys.stderr,
                dynamic_ncols=True,
                delay=0.5,  # a refused (over-budget) trial ends before it is drawn
            )

    def on_epoch(self, epoch: int, metrics: Mapping[str, float]) -> None:
        """After each epoch of the running trial (an ``EpochCallback``)."""
        if not self.enabled:
            return
        value = metrics.get(self.metric)
        shown = f"{value:.4g}" if isinstance(value, int | float) else "-"
        if self._epoch_bar is not None:
            self._epoch_bar.update(1)
            self._epoch_bar.set_postfix_str(f"{self.metric} {shown}")
            return
        now = self._clock()
        if now - self._last_line >= self.every or epoch == self.epochs:
            self._last_line = now
            self._print(
                f"  trial {self._trial} epoch {epoch}/{self.epochs}: {self.metric} {shown} "
                f"({format_duration(now - self._trial_start)} in this trial)"
            )

    def end_trial(self, line: str, *, value: float | None, counted: bool = True) -> None:
        """A trial ended: print its summary ``line``; ``counted`` trials advance the bar
        and the ETA (an over-budget refusal does not)."""
        wall = self._clock() - self._trial_start if self._trial is not None else 0.0
        self._trial = None
        self._close_epoch_bar()
        if value is not None and math.isfinite(value):
            self.best = value if self.best is None else max(self.best, value)
        if counted:
            self.done += 1
            self._walls.append(wall)
        if not self.enabled:
            return
        best = f"{self.best:.4g}" if self.best is not None else "-"
        if self._trials_bar is not None:
            if counted:
                self._trials_bar.update(1)
            self._trials_bar.set_postfix_str(f"best {self.metric} {best}")
            self._trials_bar.write(line, file=self._stream or sys.stderr)
            return
        status = (
            f"[{self.done}/{self.total} trials, best {self.metric} {best}, "
            f"ETA {format_duration(self.eta())}]"
            if counted
            else ""
        )
        self._print(f"{line}  {status}".rstrip())

    def close(self) -> None:
        self._close_epoch_bar()
        if self._trials_bar is not None:
            self._trials_bar.close()
            self._trials_bar = None

    def _close_epoch_bar(self) -> None:
        if self._epoch_bar is not None:
            self._epoch_bar.close()
            self._epoch_bar = None

    def _print(self, text: str) -> None:
        print(text, file=self._stream or sys.stdout, flush=True)

    def __enter__(self) -> StudyProgress:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

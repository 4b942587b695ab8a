"""Running the studies: in this process, or in spawned worker processes that
report each finished trial on a queue (for the progress bar)."""

from __future__ import annotations

import contextlib
import os
import signal
import threading
from collections.abc import Callable, Iterator
from typing import Any

from ncp_hpo.experiments.compare._studies import (
    StudyTask,
    TaskOutcome,
    mask_sigint,
    on_sigint,
    stop_requested,
    watch_stop,
)
from ncp_hpo.experiments.compare._task import init_worker, run_task


@contextlib.contextmanager
def progress_bar(total: int, enabled: bool, desc: str) -> Iterator[Callable[[int], None]]:
    if not enabled or total <= 0:
        yield lambda n: None
        return
    from tqdm.auto import tqdm

    bar = tqdm(total=total, desc=desc, unit="trial", dynamic_ncols=True)
    try:
        yield bar.update
    finally:
        bar.close()


def execute(tasks: list[StudyTask], jobs: int, update: Callable[[int], None]) -> list[TaskOutcome]:
    """Run ``tasks`` in this process (``jobs == 1``) or in ``jobs`` spawned workers, which
    report each finished trial on a queue (for the progress bar) and exit if this process
    dies.

    Ctrl-C (SIGINT, to this process or to its whole process group) stops the run: no
    trial and no study starts after it, the running trials end normally, and the outcomes
    of the stopped studies say ``interrupted``. A second Ctrl-C stops at once.
    """
    if not tasks:
        return []
    with _stop_on_sigint():
        if jobs <= 1:
            return [run_task(t, _CallbackQueue(update)) for t in tasks]
        return _execute_pool(tasks, jobs, update)


@contextlib.contextmanager
def _stop_on_sigint() -> Iterator[None]:
    """SIGINT asks the studies to stop (:func:`on_sigint`) while the block runs."""
    watch_stop(None)
    if threading.current_thread() is not threading.main_thread():
        yield  # signal handlers belong to the main thread: Ctrl-C stays the caller's
        return
    previous = signal.signal(signal.SIGINT, on_sigint)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def _execute_pool(
    tasks: list[StudyTask], jobs: int, update: Callable[[int], None]
) -> list[TaskOutcome]:
    import multiprocessing as mp
    import queue as queue_mod
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait

    ctx = mp.get_context("spawn")
    progress: Any = ctx.Queue()
    stop_workers = ctx.Event()
    drained = threading.Event()

    def _drain() -> None:
        while not drained.is_set():
            try:
                update(progress.get(timeout=0.2))
            except queue_mod.Empty:
                continue
            except (EOFError, OSError, ValueError):  # queue closed
                return

    thread = threading.Thread(target=_drain, daemon=True)
    thread.start()
    pool = ProcessPoolExecutor(
        max_workers=min(jobs, len(tasks)),
        mp_context=ctx,
        initializer=init_worker,
        initargs=(progress, os.getpid(), stop_workers),
    )
    try:
        # workers start with SIGINT blocked (inherited) until their handler is installed:
        # a Ctrl-C while they import is handled there, not a traceback
        mask_sigint(True)
        try:
            futures = [pool.submit(run_task, t) for t in tasks]
        finally:
            mask_sigint(False)
        pending = set(futures)
        while pending:
            _, pending = wait(pending, timeout=0.2, return_when=FIRST_COMPLETED)
            if stop_requested() and not stop_workers.is_set():
                stop_workers.set()  # workers end their running trials, start nothing
                for f in futures:
                    f.cancel()  # studies not started yet never start
        outcomes = [
            TaskOutcome(t.name, 0, 0.0, interrupted=True) if f.cancelled() else f.result()
            for t, f in zip(tasks, futures, strict=True)
        ]
    except BaseException:  # a second Ctrl-C (or an error): do not wait for the workers
        stop_workers.set()
        pool.shutdown(wait=False, cancel_futures=True)
        raise
    finally:
        drained.set()
        thread.join(timeout=2)
    pool.shutdown()
    progress.close()
    return outcomes


class _CallbackQueue:
    """A queue-like adapter that calls ``update`` directly (in-process runs)."""

    def __init__(self, update: Callable[[int], None]) -> None:
        self._update = update

    def put(self, n: int) -> None:
        self._update(n)

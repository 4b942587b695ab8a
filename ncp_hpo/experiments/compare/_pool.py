"""Running the studies: in this process, or in spawned worker processes that
report each finished trial on a queue (for the progress bar)."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from ncp_hpo.experiments.compare._studies import StudyOutcome, StudyTask
from ncp_hpo.experiments.compare._worker import init_worker, run_task

if TYPE_CHECKING:
    pass


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


def execute(tasks: list[StudyTask], jobs: int, update: Callable[[int], None]) -> list[StudyOutcome]:
    """Run ``tasks`` in this process (``jobs == 1``) or in ``jobs`` spawned workers, which
    report each finished trial on a queue (for the progress bar) and exit if this process
    dies."""
    if not tasks:
        return []
    if jobs <= 1:
        return [run_task(t, _CallbackQueue(update)) for t in tasks]
    import multiprocessing as mp
    import queue as queue_mod
    import threading
    from concurrent.futures import ProcessPoolExecutor

    ctx = mp.get_context("spawn")
    progress: Any = ctx.Queue()
    stop = threading.Event()

    def _drain() -> None:
        while not stop.is_set():
            try:
                update(progress.get(timeout=0.2))
            except queue_mod.Empty:
                continue
            except (EOFError, OSError, ValueError):  # queue closed
                return

    thread = threading.Thread(target=_drain, daemon=True)
    thread.start()
    try:
        with ProcessPoolExecutor(
            max_workers=min(jobs, len(tasks)),
            mp_context=ctx,
            initializer=init_worker,
            initargs=(progress, os.getpid()),
        ) as pool:
            futures = [pool.submit(run_task, t) for t in tasks]
            outcomes = [f.result() for f in futures]
    finally:
        stop.set()
        thread.join(timeout=2)
        progress.close()
    return outcomes


class _CallbackQueue:
    """A queue-like adapter that calls ``update`` directly (in-process runs)."""

    def __init__(self, update: Callable[[int], None]) -> None:
        self._update = update

    def put(self, n: int) -> None:
        self._update(n)

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest


@pytest.fixture(scope="module")
def quiet_single_threaded_ax() -> Iterator[None]:
    """Ax logs every trial at INFO; its GP fits (``get_pareto_frontier``) ran 5x slower with
    2 torch threads than with 1 on the shared 2-core CI box."""
    import torch
    from ax.utils.common.logger import set_ax_logger_levels

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    set_ax_logger_levels(logging.WARNING)
    yield
    set_ax_logger_levels(logging.INFO)
    torch.set_num_threads(threads)

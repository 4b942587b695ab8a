"""Shared by ``storage_outage.py`` and ``chaos.py``: the test server's stop/start, a study's
trials read back.

The server is the one ``.ci/postgres.sh`` starts; ``ctl`` is its ``NCP_HPO_TEST_PG_CTL``
split into words (``pg_ctl`` with the data directory and log, run as the postgres user).
"""

from __future__ import annotations

import subprocess
import time
from typing import Any

__all__ = ["pg", "read_trials"]


def pg(ctl: list[str], action: str) -> float:
    """Stop (``-m fast``: connections dropped, new ones refused) or start the server, unless
    it is already so; the seconds it took."""
    t0 = time.monotonic()
    args = ["stop", "-m", "fast", "-w"] if action == "stop" else ["start", "-w"]
    running = subprocess.run([*ctl, "status"], capture_output=True).returncode == 0
    if running == (action == "stop"):
        subprocess.run([*ctl, *args], capture_output=True, check=True, timeout=120)
    return time.monotonic() - t0


def read_trials(study: str, storage: str) -> list[Any]:
    """Every trial of ``study`` (FrozenTrial), ``[]`` while the study does not exist."""
    import optuna

    from ncp_hpo.runtime import open_storage

    try:
        s = optuna.load_study(study_name=study, storage=open_storage(storage, heartbeat=None))
    except Exception:
        return []
    return s.get_trials(deepcopy=False)

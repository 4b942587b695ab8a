"""A journal file whose last record was cut off stays readable once workers join it.

Optuna's journal reader skips a cut-off last line, but its writer appends onto it, and the
merged line makes every later read fail. ``open_storage`` sets the cut-off bytes aside
(``<journal>.torn-<time>``) under the journal's lock before anything is appended.
"""

from __future__ import annotations

import errno
import json
import logging
import threading
import time
from pathlib import Path
from typing import Any

import optuna
import pytest
from _distributed import audit, load, start_workers
from optuna.storages import JournalStorage
from optuna.storages.journal import JournalFileBackend, JournalFileSymlinkLock
from optuna.trial import TrialState

from ncp_hpo.exceptions import StorageError
from ncp_hpo.runtime import open_storage
from ncp_hpo.runtime._journal import repair_torn_tail

pytestmark = pytest.mark.filterwarnings(
    "ignore::optuna.exceptions.ExperimentalWarning",
    "ignore:Heartbeat of storage is supposed to be used with Study.optimize",
)


def _complete(log: Path) -> dict[int, tuple[Any, Any]]:
    """Number -> (params, values) of the COMPLETE trials, read by Optuna alone."""
    storage = JournalStorage(JournalFileBackend(str(log)))
    study = optuna.load_study(study_name="s", storage=storage)
    return {
        t.number: (t.params, t.values)
        for t in study.get_trials(deepcopy=False)
        if t.state == TrialState.COMPLETE
    }


def _side_files(log: Path) -> list[Path]:
    return sorted(log.parent.glob(f"{log.name}.torn-*"))


def _small_study(log: Path, n: int) -> None:
    study = optuna.create_study(study_name="s", storage=open_storage(f"journal:{log}"))
    study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=n)


def test_a_worker_joins_a_journal_whose_last_record_was_cut_off(
    tmp_path: Path, shared_data_dir: Path
) -> None:
    """A worker died writing the study's last record; a new worker joins: the earlier
    COMPLETE trials, and the new worker's, are all readable."""
    log = tmp_path / "study.log"
    url = f"journal:{log}"
    flags = ("--heartbeat", "1", "--grace", "2", "--poll", "0.2")
    common: dict[str, Any] = dict(
        study="s", storage=url, data_dir=shared_data_dir, sampler="random", log_dir=tmp_path
    )
    first = start_workers(1, budget=6, extra=flags, **common)
    assert first.wait(timeout=120) == [0], first.tail()
    whole = log.read_bytes()
    cut = len(whole) - 25  # mid-way through the last record (trial 5's COMPLETE state)
    assert whole.rfind(b"\n", 0, len(whole) - 1) < cut
    log.write_bytes(whole[:cut])
    before = _complete(log)  # Optuna skips the cut-off record: trials 0-4
    assert sorted(before) == [0, 1, 2, 3, 4]

    second = start_workers(1, budget=9, extra=flags, seed0=1, **common)
    assert second.wait(timeout=120) == [0], second.tail()
    assert "its last record was cut off (" in second.tail(n=200), second.tail()

    a = audit(load("s", url))
    after = {t.number: (t.params, t.values) for t in a.complete}
    assert {n: after.get(n) for n in before} == before  # every earlier COMPLETE trial
    assert len(after) == 9, a.line()  # and the new worker's trials
    assert a.states["FAIL"] == 1  # trial 5: its worker died before its result was written
    (side,) = _side_files(log)
    assert side.read_bytes() == whole[whole.rfind(b"\n", 0, cut) + 1 : cut]
    assert log.read_bytes().startswith(whole[: whole.rfind(b"\n", 0, cut) + 1])


def test_a_journal_that_ends_cleanly_is_untouched(tmp_path: Path) -> None:
    log = tmp_path / "study.log"
    _small_study(log, 3)
    whole = log.read_bytes()
    study = optuna.load_study(study_name="s", storage=open_storage(f"journal:{log}"))
    assert len(study.trials) == 3
    assert repair_torn_tail(log) is None
    assert log.read_bytes() == whole
    assert sorted(p.name for p in tmp_path.iterdir()) == ["study.log"]  # no side or lock file


def _record(n: int) -> bytes:
    log = {"op_code": 2, "worker_id": "w", "study_id": 0, "user_attr": {"n": n}}
    return json.dumps(log, separators=(",", ":")).encode()  # as Optuna writes it


@pytest.mark.parametrize(
    "damage",
    ["no-newline", "appended-onto", "only-record"],
)
def test_cut_off_last_records_are_set_aside(
    tmp_path: Path, damage: str, caplog: pytest.LogCaptureFixture
) -> None:
    """A cut-off record without its newline, one a later append landed on (the line is not
    JSON), and a journal that is nothing but a cut-off record."""
    log = tmp_path / "study.log"
    if damage == "only-record":
        torn = _record(0)[:-9]
        log.write_bytes(torn)
    else:
        _small_study(log, 3)
        whole = log.read_bytes()
        torn = whole[whole.rfind(b"\n", 0, len(whole) - 1) + 1 : -9]
        log.write_bytes(whole[:-9])
        if damage == "appended-onto":
            JournalFileBackend(str(log)).append_logs([json.loads(_record(1))])
            torn += _record(1) + b"\n"
    kept = log.read_bytes()[: len(log.read_bytes()) - len(torn)]
    with caplog.at_level(logging.WARNING, logger="ncp_hpo.runtime._journal"):
        storage = open_storage(f"journal:{log}")
    (side,) = _side_files(log)
    assert side.read_bytes() == torn
    assert log.read_bytes() == kept
    assert [r.getMessage() for r in caplog.records if r.name == "ncp_hpo.runtime._journal"] == [
        f"journal {log}: its last record was cut off ({len(torn)} bytes "
        + ("without a final newline" if damage != "appended-onto" else "that are not a JSON record")
        + f"); they are kept in {side} and the journal now ends at its last complete record"
    ]
    if damage == "only-record":
        return
    study = optuna.load_study(study_name="s", storage=storage)
    study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=2)
    assert len(_complete(log)) == 4  # trial 2's result was the cut record


def test_a_journal_broken_before_its_last_line_is_left_as_it_is(tmp_path: Path) -> None:
    log = tmp_path / "study.log"
    _small_study(log, 2)
    broken = log.read_bytes() + b'{"op_code":\n' + _record(1)[:-4]
    log.write_bytes(broken)
    with pytest.raises(StorageError, match="is not a readable Optuna journal"):
        open_storage(f"journal:{log}")
    assert log.read_bytes() == broken and not _side_files(log)


def test_a_write_in_flight_is_not_taken_for_a_cut_off_record(tmp_path: Path) -> None:
    """A writer holding the journal's lock has written half a line: opening waits for the
    lock, and then finds the line whole."""
    log = tmp_path / "study.log"
    _small_study(log, 1)
    lock = JournalFileSymlinkLock(str(log))
    lock.acquire()
    with open(log, "ab") as f:
        f.write(_record(7)[:20])
        f.flush()
        opened: list[Any] = []
        opener = threading.Thread(target=lambda: opened.append(open_storage(f"journal:{log}")))
        opener.start()
        time.sleep(0.5)
        assert opener.is_alive() and not _side_files(log)  # waiting for the lock
        f.write(_record(7)[20:] + b"\n")
    whole = log.read_bytes()
    lock.release()
    opener.join(timeout=30)
    assert opened and log.read_bytes() == whole and not _side_files(log)
    assert optuna.load_study(study_name="s", storage=opened[0]).user_attrs == {"n": 7}


def test_a_journal_that_cannot_be_written_is_left_with_a_warning(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    log = tmp_path / "study.log"
    _small_study(log, 1)
    torn = log.read_bytes()[:-9]
    log.write_bytes(torn)

    def refused(self: Any) -> bool:
        raise PermissionError(errno.EACCES, "Permission denied")

    monkeypatch.setattr(JournalFileSymlinkLock, "acquire", refused)
    with caplog.at_level(logging.WARNING, logger="ncp_hpo.runtime._journal"):
        assert repair_torn_tail(log) is None
    assert log.read_bytes() == torn and not _side_files(log)
    assert "cannot be set aside (Permission denied)" in caplog.text

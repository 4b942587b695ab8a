"""Fault injection for testing workers: ``NCP_HPO_FAULTS`` (a testing aid, not a feature).

The ``ncp-hpo worker`` objective consults this module once per trial, after the trial's
code is suggested and before it is evaluated (``stall`` rules: when the trial has been
created). With the environment variable unset (the normal case) nothing happens. The
variable holds comma-separated rules ``ACTION@TRIAL`` or ``ACTION@TRIAL:ARG``, where
``TRIAL`` is a trial number or ``*`` (every trial):

``sleep@3:60``
    trial 3 sleeps 60 s before its evaluation (so a test can kill the worker mid-trial);
``raise@5``
    trial 5's objective raises :class:`InjectedFault`;
``nan@7``
    trial 7 returns NaN (Optuna marks it FAILED);
``exit@9``
    the worker process running trial 9 dies at once (``os._exit(137)``, like SIGKILL);
``stall@4:30``
    trial 4's worker stalls 30 s right after the storage has created the trial, before
    its code is suggested (so a test can stop or kill the worker between the two; the
    trial's heartbeat runs meanwhile);
``nobeat@4:2``
    trial 4's first heartbeat is written 2 s late (so a kill in those 2 s lands after the
    trial exists and before its first beat; keep it under ``--grace``).

A retried trial has a new number, so a rule fires once per original trial.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass

__all__ = ["ENV_VAR", "Fault", "InjectedFault", "first_beat_delay", "parse_faults", "stall"]

ENV_VAR = "NCP_HPO_FAULTS"
_ACTIONS = ("sleep", "raise", "nan", "exit", "stall", "nobeat")


class InjectedFault(RuntimeError):
    """The error raised by a ``raise@N`` rule."""


@dataclass(frozen=True)
class Fault:
    action: str
    trial: int | None  # None: every trial
    arg: float = 0.0

    def matches(self, number: int) -> bool:
        return self.trial is None or self.trial == number


def parse_faults(text: str | None) -> tuple[Fault, ...]:
    """Parse a rule list (see the module docstring); ``ValueError`` names a bad rule."""
    faults = []
    for raw in (text or "").split(","):
        rule = raw.strip()
        if not rule:
            continue
        action, at, rest = rule.partition("@")
        where, _, arg = rest.partition(":")
        if action not in _ACTIONS or not at or not where:
            raise ValueError(
                f"bad {ENV_VAR} rule {rule!r}: expected ACTION@TRIAL[:ARG] with ACTION one of "
                f"{', '.join(_ACTIONS)}"
            )
        try:
            trial = None if where == "*" else int(where)
            value = float(arg) if arg else 0.0
        except ValueError:
            raise ValueError(
                f"bad {ENV_VAR} rule {rule!r}: TRIAL and ARG must be numbers"
            ) from None
        faults.append(Fault(action, trial, value))
    return tuple(faults)


def active_faults() -> tuple[Fault, ...]:
    return parse_faults(os.environ.get(ENV_VAR))


def inject(faults: tuple[Fault, ...], number: int) -> bool:
    """Apply the rules for trial ``number``; True when the trial must return NaN."""
    nan = False
    for f in faults:
        if not f.matches(number):
            continue
        if f.action == "sleep":
            time.sleep(f.arg)
        elif f.action == "raise":
            raise InjectedFault(f"injected fault in trial {number}")
        elif f.action == "exit":
            os._exit(137)
        elif f.action == "nan":
            nan = True
    return nan


def stall(faults: tuple[Fault, ...], number: int) -> None:
    """Apply the ``stall`` rules for trial ``number`` (the trial has just been created)."""
    for f in faults:
        if f.action == "stall" and f.matches(number):
            time.sleep(f.arg)


def first_beat_delay(faults: tuple[Fault, ...], number: int) -> float:
    """Seconds the ``nobeat`` rules hold back trial ``number``'s first heartbeat."""
    return sum(f.arg for f in faults if f.action == "nobeat" and f.matches(number))

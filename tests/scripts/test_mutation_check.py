"""``benchmarks/mutation_check.py``: every planted regression still applies (its old text
occurs exactly once in its file and the result compiles), and names tests that exist; the
script's reading of pytest's outcome (fast: nothing is mutated and no test is run)."""

from __future__ import annotations

import re
import sys
from collections.abc import Iterator
from types import ModuleType

import pytest
from _data_helpers import load_script


@pytest.fixture(scope="module")
def mc() -> Iterator[ModuleType]:
    yield load_script("mutation_check")
    sys.modules.pop("mutation_check", None)


def test_every_mutation_applies_exactly_once_and_compiles(mc: ModuleType) -> None:
    for m in mc.MUTATIONS:
        source = (mc.ROOT / m.path).read_bytes()
        assert source.decode().count(m.old) == 1, (m.name, m.path)
        assert mc.mutated_source(m, source) != source  # raises if stale or not compiling


def test_every_mutation_names_existing_tests(mc: ModuleType) -> None:
    names = [m.name for m in mc.MUTATIONS]
    assert len(set(names)) == len(names)
    assert {m.item for m in mc.MUTATIONS} == set("abcdefg")  # each fix of issue 26
    for m in mc.MUTATIONS:
        assert m.tests, m.name
        for node in m.tests:
            path, _, name = node.partition("::")
            function = re.sub(r"\[.*\]$", "", name)
            text = (mc.ROOT / path).read_text()
            assert re.search(rf"^def {re.escape(function)}\(", text, re.MULTILINE), node


def test_a_stale_mutation_is_refused(mc: ModuleType) -> None:
    m = mc.MUTATIONS[0]
    with pytest.raises(mc.Refused, match="occurs 0 times"):
        mc.mutated_source(m, b"x = 1\n")
    broken = mc.Mutation("broken", "a", "x.py", "x = 1", "x = (", ("t",), "syntax error")
    with pytest.raises(mc.Refused, match="does not compile"):
        mc.mutated_source(broken, b"x = 1\n")


SKIPPED = """ss                                                                  [100%]
=========================== short test summary info ============================
SKIPPED [2] tests/runtime/conftest.py:29: NCP_HPO_TEST_POSTGRES is not set
2 skipped in 0.31s
"""


def test_outcomes(mc: ModuleType) -> None:
    m = next(m for m in mc.MUTATIONS if m.needs)
    assert mc.classify(m, 0, SKIPPED) == ("skipped", f"needs {m.needs}")
    caught = "F\nFAILED tests/x.py::test_y[sqlite] - AssertionError\n1 failed in 3.00s\n"
    assert mc.classify(m, 1, caught) == ("caught", "by test_y[sqlite]")
    assert mc.classify(m, 0, ".s\n1 passed, 1 skipped in 2.00s\n") == (
        "MISSED",
        "1 passed, 1 skipped",
    )
    assert mc.classify(m, None, "") == ("error", "timeout")
    assert mc.classify(m, 5, "no tests ran in 0.01s\n") == ("error", "pytest exit 5")

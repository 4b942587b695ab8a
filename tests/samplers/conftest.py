from __future__ import annotations

import pytest

from ncp_hpo.benchmarks import BenchmarkTable, load_benchmark


@pytest.fixture(scope="session")
def nb201(shared_data_dir) -> BenchmarkTable:
    return load_benchmark("nas-bench-201", data_dir=shared_data_dir)


@pytest.fixture(scope="session")
def seg(shared_data_dir) -> BenchmarkTable:
    return load_benchmark("seg", data_dir=shared_data_dir)

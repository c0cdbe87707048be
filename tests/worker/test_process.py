"""A worker's pool processes share the CPU's cores out among their models."""

from __future__ import annotations

import pytest

from worker.process import cpu_threads


@pytest.mark.parametrize(
    ("pool_size", "cores", "environ", "threads"),
    [
        (1, 16, {}, None),  # one process: torch's own choice, every core
        (2, 2, {}, 1),
        (4, 16, {}, 4),
        (3, 16, {}, 5),
        (8, 2, {}, 1),  # more processes than cores: one thread each, never none
        (2, 16, {"OMP_NUM_THREADS": "3"}, None),  # the deployment said how many
    ],
)
def test_each_pool_process_runs_on_its_share_of_the_cores(
    pool_size: int, cores: int, environ: dict[str, str], threads: int | None
) -> None:
    assert cpu_threads(pool_size, cores, environ) == threads

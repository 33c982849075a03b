"""The next-fire budget of bench/force.py: 10,000 schedulers in <= 0.2 s."""

from __future__ import annotations

from bench.next_fire import bench_next_fire, population


def test_shared_expressions_meet_the_budget_with_margin():
    assert len({c for c, _ in population(10_000, "shared")}) <= 240
    assert min(bench_next_fire(10_000, kind="shared") for _ in range(3)) <= 0.2


def test_distinct_population_is_mostly_distinct_and_runs():
    assert len(set(population(10_000, "distinct"))) > 9_000
    assert bench_next_fire(1_000, kind="distinct") < 1.0

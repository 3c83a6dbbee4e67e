"""The thread budget of lifecircle's parallel steps (lifecircle._threads)."""

from __future__ import annotations

import os

import numpy as np
import pytest

from lifecircle._threads import MAX_DEFAULT_THREADS, thread_budget
from lifecircle.errors import LifecircleError


def test_default_is_the_cores(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LIFECIRCLE_THREADS", raising=False)
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    assert thread_budget() == max(1, min(os.cpu_count() or 1, MAX_DEFAULT_THREADS))


def test_omp_num_threads_is_honoured_as_dask_workers_set_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("LIFECIRCLE_THREADS", raising=False)
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    assert thread_budget() == 1
    monkeypatch.setenv("OMP_NUM_THREADS", "3,2")  # one number per nesting level
    assert thread_budget() == 3
    monkeypatch.setenv("OMP_NUM_THREADS", "lots")  # not ours to judge: ignored
    assert thread_budget() == max(1, min(os.cpu_count() or 1, MAX_DEFAULT_THREADS))


def test_own_variable_wins_and_is_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    monkeypatch.setenv("LIFECIRCLE_THREADS", "5")
    assert thread_budget() == 5
    for bad in ("0", "-2", "two", "1.5"):
        monkeypatch.setenv("LIFECIRCLE_THREADS", bad)
        with pytest.raises(LifecircleError, match="LIFECIRCLE_THREADS must be a positive"):
            thread_budget()


def test_snapping_gives_the_same_answer_on_one_thread_or_many(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from conftest import make_grid
    from lifecircle.snapping import snap_to_network

    net = make_grid(30, 30)
    rng = np.random.default_rng(3)
    x = rng.uniform(net.node_x.min() - 50, net.node_x.max() + 50, 60_000)
    y = rng.uniform(net.node_y.min() - 50, net.node_y.max() + 50, 60_000)
    runs = []
    for n in ("1", "4"):
        monkeypatch.setenv("LIFECIRCLE_THREADS", n)
        runs.append(snap_to_network(net, x, y))
    for field in ("edge", "offset_m", "access_m", "x", "y", "on_network"):
        np.testing.assert_array_equal(getattr(runs[0], field), getattr(runs[1], field))


def test_projections_are_the_same_on_one_thread_or_many(monkeypatch: pytest.MonkeyPatch) -> None:
    from conftest import make_grid

    net = make_grid(10, 10)
    rng = np.random.default_rng(4)
    x = rng.uniform(net.node_x.min(), net.node_x.max(), 70_000)
    y = rng.uniform(net.node_y.min(), net.node_y.max(), 70_000)
    runs = []
    for n in ("1", "3"):
        monkeypatch.setenv("LIFECIRCLE_THREADS", n)
        lon, lat = net.to_lonlat(x, y)
        runs.append((lon, lat, *net.from_lonlat(lon, lat)))
    for a, b in zip(*runs, strict=True):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_allclose(runs[0][2], x, atol=1e-6)  # and back where they started

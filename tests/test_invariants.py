"""Invariants of coverage, checked with hypothesis on random grids and points."""

from __future__ import annotations

import numpy as np
import pandas as pd
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import GRID_ORIGIN, grid_lonlat, make_grid
from lifecircle.config import from_mapping
from lifecircle.coverage import compute_coverage

NET = make_grid(8, 8, 100.0)
X0, Y0 = GRID_ORIGIN
coords = st.tuples(st.floats(-50, 750), st.floats(-50, 750))


def _frames(fac_xy, res_xy, pops):
    fx = np.array([p[0] for p in fac_xy]) + X0
    fy = np.array([p[1] for p in fac_xy]) + Y0
    rx = np.array([p[0] for p in res_xy]) + X0
    ry = np.array([p[1] for p in res_xy]) + Y0
    flon, flat = grid_lonlat(NET, fx, fy)
    rlon, rlat = grid_lonlat(NET, rx, ry)
    fac = pd.DataFrame(
        {"id": [f"F{i}" for i in range(len(fx))], "tier": "t", "lon": flon, "lat": flat}
    )
    res = pd.DataFrame(
        {"id": [f"R{i}" for i in range(len(rx))], "population": pops, "lon": rlon, "lat": rlat}
    )
    return fac, res


def _std(threshold_m):
    return from_mapping({"tiers": [{"key": "t", "threshold_m": threshold_m}]})


common = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@common
@given(
    st.lists(coords, min_size=1, max_size=6),
    st.lists(coords, min_size=1, max_size=40),
    st.floats(50, 800),
    st.floats(0, 500),
    st.integers(0, 2**31),
)
def test_larger_threshold_never_covers_fewer(fac_xy, res_xy, t1, extra, seed):
    pops = np.random.default_rng(seed).integers(0, 50, len(res_xy))
    fac, res = _frames(fac_xy, res_xy, pops)
    small = compute_coverage({"walk": NET}, fac, res, _std(t1)).tiers.iloc[0]
    large = compute_coverage({"walk": NET}, fac, res, _std(t1 + extra)).tiers.iloc[0]
    assert large["population_covered"] >= small["population_covered"]
    assert 0 <= small["population_covered"] <= small["population_total"]
    assert 0.0 <= small["share"] <= 1.0


@common
@given(st.lists(coords, min_size=1, max_size=5), coords, st.lists(coords, min_size=1, max_size=40))
def test_adding_a_facility_never_increases_a_distance(fac_xy, new_xy, res_xy):
    pops = np.ones(len(res_xy))
    fac, res = _frames(fac_xy, res_xy, pops)
    fac2, _ = _frames([*fac_xy, new_xy], res_xy, pops)
    before = (
        compute_coverage({"walk": NET}, fac, res, _std(300)).residents["t_distance_m"].to_numpy()
    )
    after = (
        compute_coverage({"walk": NET}, fac2, res, _std(300)).residents["t_distance_m"].to_numpy()
    )
    assert np.all(after <= before + 1e-9)

"""Coverage on a hand-checkable grid: columns, thresholds, off-network residents, options."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from conftest import GRID_ORIGIN, grid_lonlat, make_grid
from lifecircle.config import from_mapping
from lifecircle.coverage import compute_coverage, tier_columns
from lifecircle.errors import CRSError, InputError

X0, Y0 = GRID_ORIGIN
STD = from_mapping(
    {
        "name": "test",
        "tiers": [
            {"key": "centre", "label_zh": "中心", "minutes": 15, "threshold_m": 1000},
            {"key": "point", "label_zh": "便民点", "minutes": 5, "threshold_m": 300},
        ],
    }
)


def frames(net, fac_xy, fac_tier, res_xy, pop):
    flon, flat = grid_lonlat(
        net, np.array([p[0] for p in fac_xy]), np.array([p[1] for p in fac_xy])
    )
    rlon, rlat = grid_lonlat(
        net, np.array([p[0] for p in res_xy]), np.array([p[1] for p in res_xy])
    )
    fac = pd.DataFrame(
        {
            "id": [f"F{i}" for i in range(len(fac_xy))],
            "name": "x",
            "tier": fac_tier,
            "lon": flon,
            "lat": flat,
        }
    )
    res = pd.DataFrame(
        {
            "id": [f"R{i}" for i in range(len(res_xy))],
            "population": pop,
            "elderly": np.array(pop) * 0.2,
            "lon": rlon,
            "lat": rlat,
        }
    )
    return fac, res


def test_hand_checked_coverage():
    net = make_grid()
    fac, res = frames(
        net,
        fac_xy=[(X0, Y0), (X0 + 500, Y0 + 500)],
        fac_tier=["centre", "point"],
        res_xy=[
            (X0 + 100, Y0 + 10),  # on the street x=100: 110 m to centre, 890 to point
            (X0 + 450, Y0 + 500),  # 50 m to the point on its edge; 950 to centre
            (X0 + 250, Y0 + 250 + 20),  # off-grid centre of a block: 50 m leg -> snaps 50 m
            (X0 - 1000, Y0),
        ],  # 1 km west: off the network (max_snap 300)
        pop=[10, 20, 30, 40],
    )
    out = compute_coverage({"walk": net}, fac, res, STD, max_snap_m=300.0)
    r = out.residents.set_index("id")
    c, p = tier_columns("centre"), tier_columns("point")
    assert r.loc["R0", c["distance"]] == pytest.approx(110.0)
    assert r.loc["R0", "snap_m"] == pytest.approx(0.0, abs=1e-6)
    assert r.loc["R0", p["distance"]] == pytest.approx(490.0 + 400.0)
    assert r.loc["R1", p["distance"]] == pytest.approx(50.0)
    assert r.loc["R1", c["distance"]] == pytest.approx(950.0)
    assert r.loc["R2", "snap_m"] == pytest.approx(30.0)  # nearest edge is 30 m away (y = 300)
    assert r.loc["R0", c["nearest"]] == "F0" and r.loc["R1", p["nearest"]] == "F1"
    assert r.loc["R0", c["minutes"]] == pytest.approx(110.0 / 66.7)
    assert list(r[c["covered"]]) == [True, True, True, False]
    assert list(r[p["covered"]]) == [False, True, False, False]
    # the off-network resident is kept, unreachable and counted in the totals
    assert bool(r.loc["R3", "off_network"]) and np.isinf(r.loc["R3", c["distance"]])
    assert r.loc["R3", c["nearest"]] == ""
    t = out.tiers.set_index("tier")
    assert (
        t.loc["centre", "population_total"] == 100 and t.loc["centre", "population_covered"] == 60
    )
    assert t.loc["point", "share"] == pytest.approx(0.2)
    assert t.loc["point", "elderly_covered"] == pytest.approx(4.0)
    assert list(r["all_covered"]) == [False, True, False, False]
    assert out.all_covered_share == pytest.approx(0.2)
    # catchments: covered people per nearest facility
    f = out.facilities.set_index("id")
    assert f.loc["F0", "catchment_population"] == 60 and f.loc["F1", "catchment_population"] == 20
    s = out.summary()
    assert s["tiers"]["point"]["population_covered"] == 20
    assert s["residents_off_network"] == 1 and s["population_off_network"] == 40


def test_upper_tiers_option():
    net = make_grid()
    fac, res = frames(net, [(X0, Y0)], ["centre"], [(X0 + 100, Y0)], [5])
    base = compute_coverage({"walk": net}, fac, res, STD)
    assert not base.residents["point_covered"][0]
    up = compute_coverage({"walk": net}, fac, res, STD.with_options(upper_tiers_count=True))
    assert up.residents["point_covered"][0]
    assert up.residents["point_nearest_id"][0] == "F0"


def test_tier_without_facilities_covers_nobody():
    net = make_grid()
    fac, res = frames(net, [(X0, Y0)], ["centre"], [(X0 + 10, Y0)], [5])
    out = compute_coverage({"walk": net}, fac, res, STD)
    assert not out.residents["point_covered"].any()
    assert np.isinf(out.residents["point_distance_m"]).all()


def test_errors():
    net = make_grid()
    fac, res = frames(net, [(X0, Y0)], ["hospital"], [(X0, Y0)], [5])
    with pytest.raises(InputError, match="hospital"):
        compute_coverage({"walk": net}, fac, res, STD)
    with pytest.raises(InputError, match="mode"):
        compute_coverage({"drive": make_grid(mode="drive")}, fac.assign(tier="point"), res, STD)
    other = make_grid()
    from lifecircle.network import from_arrays

    other = from_arrays(other.node_x, other.node_y, other.edge_u, other.edge_v, crs="EPSG:32651")
    std2 = from_mapping(
        {"tiers": [{"key": "a", "minutes": 5}, {"key": "b", "minutes": 5, "mode": "bike"}]}
    )
    with pytest.raises(CRSError, match="different CRSs"):
        compute_coverage({"walk": net, "bike": other}, fac.assign(tier="a"), res, std2)

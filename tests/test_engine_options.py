"""Engine options: per-tier cut-offs (``limit_m="auto"``) and the network cache with junctions."""

from __future__ import annotations

import argparse

import numpy as np
import pytest

from lifecircle.config import parse_limit
from lifecircle.coverage import compute_coverage, tier_columns
from lifecircle.errors import InputError
from lifecircle.network import RoadNetwork
from lifecircle.routing import RoutingGraph
from test_coverage import STD, X0, Y0, frames
from test_junctions import bent_grid


def test_limit_auto_keeps_coverage_and_cuts_each_tier_at_its_standard():
    net = bent_grid(8, 8, 150.0, 4, seed=2)
    rng = np.random.default_rng(5)
    fac_xy = [(X0 + 300, Y0 + 300), (X0 + 900, Y0 + 600)]
    res_xy = [(X0 + float(a), Y0 + float(b)) for a, b in rng.uniform(0, 1050, (300, 2))]
    fac, res = frames(net, fac_xy, ["centre", "point"], res_xy, np.ones(300))
    exact = compute_coverage({"walk": net}, fac, res, STD)
    auto = compute_coverage({"walk": net}, fac, res, STD, limit_m="auto")
    for tier in STD.tiers:
        c = tier_columns(tier.key)
        d_exact = exact.residents[c["distance"]].to_numpy()
        d_auto = auto.residents[c["distance"]].to_numpy()
        within = d_exact <= tier.threshold_m
        assert within.any() and (~within).any()
        np.testing.assert_allclose(d_auto[within], d_exact[within])
        assert np.isinf(d_auto[~within]).all()
        assert (exact.residents[c["covered"]] == auto.residents[c["covered"]]).all()
        assert (auto.residents.loc[~within, c["nearest"]] == "").all()
    np.testing.assert_allclose(exact.tiers["share"], auto.tiers["share"])
    np.testing.assert_allclose(
        exact.facilities["catchment_population"], auto.facilities["catchment_population"]
    )
    with pytest.raises(InputError):
        compute_coverage({"walk": net}, fac, res, STD, limit_m="soon")


def test_parse_limit():
    assert parse_limit("auto") == "auto" and parse_limit(" AUTO ") == "auto"
    assert parse_limit("800") == 800.0
    for bad in ("-5", "0", "far"):
        with pytest.raises(argparse.ArgumentTypeError):
            parse_limit(bad)


def test_cache_keeps_the_junction_graph(tmp_path):
    net = bent_grid(5, 5, 100.0, 3, mode="drive", oneway_share=0.5, seed=1)
    jn = net.junctions()
    back = RoadNetwork.load(net.save(tmp_path / "n.npz"))
    assert "junctions" in back._cache  # loaded, not rebuilt
    for name in jn.FIELDS:
        np.testing.assert_array_equal(getattr(back.junctions(), name), getattr(jn, name))
    a, b = RoutingGraph.from_network(net), RoutingGraph.from_network(back)
    np.testing.assert_array_equal(a.indptr, b.indptr)
    np.testing.assert_array_equal(a.weights, b.weights)

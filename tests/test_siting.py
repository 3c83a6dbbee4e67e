"""Site scoring and maximal covering.

Covers lifecircle.siting, pipeline.run_scoring and ``lifecircle score``.
"""

from __future__ import annotations

import itertools
import json
from dataclasses import replace
from pathlib import Path

import networkx as nx
import numpy as np
import pandas as pd
import pytest

from conftest import GRID_ORIGIN, grid_lonlat, make_grid
from lifecircle import siting
from lifecircle.config import preset
from lifecircle.coverage import compute_coverage
from lifecircle.errors import InputError
from lifecircle.network import RoadNetwork
from lifecircle.pipeline import validate_candidates
from lifecircle.snapping import snap_to_network

X0, Y0 = GRID_ORIGIN
STATION_STD = replace(preset("tancheng"), tiers=(preset("tancheng").tier("station"),))


def _points(
    net: RoadNetwork, x: np.ndarray, y: np.ndarray, prefix: str, **cols: object
) -> pd.DataFrame:
    lon, lat = grid_lonlat(net, x, y)
    return pd.DataFrame(
        {"id": [f"{prefix}{i}" for i in range(len(x))], "lon": lon, "lat": lat, **cols}
    )


def _scene(seed: int, n_res: int = 80, n_cand: int = 9, side: int = 6):
    """A side x side grid (100 m blocks) with random residents, one station in a corner, random
    candidates."""
    net = make_grid(side, side)
    size_m = (side - 1) * 100.0
    rng = np.random.default_rng(seed)
    rx, ry = X0 + rng.uniform(0, size_m, n_res), Y0 + rng.uniform(0, size_m, n_res)
    pop = rng.integers(1, 30, n_res).astype(float)
    res = _points(net, rx, ry, "r", population=pop, elderly=np.floor(pop / 4))
    fac = _points(net, np.array([X0 + 10.0]), np.array([Y0]), "f", tier=["station"])
    cx, cy = X0 + rng.uniform(0, size_m, n_cand), Y0 + rng.uniform(0, size_m, n_cand)
    cand = _points(net, cx, cy, "c")
    cov = compute_coverage({"walk": net}, fac, res, STATION_STD)
    return net, cov, cand


def _nx_distances(net: RoadNetwork, cand: pd.DataFrame, res: pd.DataFrame) -> np.ndarray:
    """Brute force: points inserted into a networkx graph by splitting their edges; all pairs."""
    cx, cy = net.from_lonlat(cand["lon"].to_numpy(float), cand["lat"].to_numpy(float))
    rx, ry = net.from_lonlat(res["lon"].to_numpy(float), res["lat"].to_numpy(float))
    cs = snap_to_network(net, cx, cy)
    rs = snap_to_network(net, rx, ry)
    g = nx.Graph()
    on_edge: dict[int, list[tuple[float, tuple[str, int]]]] = {}
    for kind, s in (("c", cs), ("r", rs)):
        for i in range(len(s.edge)):
            on_edge.setdefault(int(s.edge[i]), []).append((float(s.offset_m[i]), (f"p{kind}", i)))
            g.add_edge((kind, i), (f"p{kind}", i), weight=float(s.access_m[i]))
    for e in range(net.n_edges):
        chain = [(0.0, ("n", int(net.edge_u[e]))), *sorted(on_edge.get(e, []))]
        chain.append((float(net.edge_length_m[e]), ("n", int(net.edge_v[e]))))
        for (o1, a), (o2, b) in itertools.pairwise(chain):
            w = o2 - o1
            if not g.has_edge(a, b) or g[a][b]["weight"] > w:
                g.add_edge(a, b, weight=w)
    d = np.full((len(cand), len(res)), np.inf)
    for i in range(len(cand)):
        lengths = nx.single_source_dijkstra_path_length(g, ("c", i), weight="weight")
        for j in range(len(res)):
            d[i, j] = lengths.get(("r", j), np.inf)
    return d


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_gains_equal_networkx_brute_force(seed: int) -> None:
    net, cov, cand = _scene(seed)
    r = siting.score_sites(cov, net, cand, "station")
    d = _nx_distances(net, cand, cov.residents)
    within = d <= 500.0
    pop = cov.residents["population"].to_numpy()
    uncovered = ~cov.residents["station_covered"].to_numpy(bool)
    # the matrix holds exactly the pairs within the threshold, with the same distances
    m = r.matrix
    dense = np.full((len(cand), len(pop)), np.inf)
    rows = np.repeat(np.arange(m.n_candidates), np.diff(m.indptr))
    dense[rows, m.indices] = m.distance_m
    assert np.array_equal(np.isfinite(dense), within)
    np.testing.assert_allclose(dense[within], d[within], atol=1e-6)
    t = r.candidates.set_index("candidate_id").loc[cand["id"]]
    np.testing.assert_allclose(t["marginal_gain"], within @ (pop * uncovered))
    np.testing.assert_allclose(t["total_within"], within @ pop)
    np.testing.assert_allclose(t["overlap"], within @ (pop * ~uncovered))
    assert (t["residents_within"].to_numpy() == within.sum(axis=1)).all()
    # ranked by gain
    assert (np.diff(r.candidates["marginal_gain"].to_numpy()) <= 0).all()
    assert r.candidates["rank"].tolist() == list(range(1, len(cand) + 1))


def test_local_blocks_equal_networkx_on_a_larger_grid() -> None:
    # 1.9 km grid, 500 m threshold, 3 candidates per block: each block routes on a local part
    net, cov, cand = _scene(9, n_res=250, n_cand=12, side=20)
    r = siting.score_sites(cov, net, cand, "station", chunk=3)
    d = _nx_distances(net, cand, cov.residents)
    m = r.matrix
    dense = np.full(d.shape, np.inf)
    dense[np.repeat(np.arange(m.n_candidates), np.diff(m.indptr)), m.indices] = m.distance_m
    assert np.array_equal(np.isfinite(dense), d <= 500.0)
    np.testing.assert_allclose(dense[d <= 500.0], d[d <= 500.0], atol=1e-6)


@pytest.mark.parametrize("chunk", [1, 4, None])
def test_local_blocks_equal_whole_network_search_with_one_way_streets(chunk: int | None) -> None:
    from lifecircle.routing import RoutingGraph, pair_distances_within

    rng = np.random.default_rng(17)
    base = make_grid(16, 16)
    net = make_grid(16, 16, mode="drive", oneway=rng.random(base.n_edges) < 0.4)
    cx, cy = X0 + rng.uniform(-30, 1530, 40), Y0 + rng.uniform(-30, 1530, 40)
    rx, ry = X0 + rng.uniform(-30, 1530, 500), Y0 + rng.uniform(-30, 1530, 500)
    cs, rs = snap_to_network(net, cx, cy), snap_to_network(net, rx, ry)
    cpos = siting.Positions(cs.routable_edge(), cs.offset_m, cs.access_m)
    rpos = siting.Positions(rs.routable_edge(), rs.offset_m, rs.access_m)
    cxy, rxy = np.column_stack([cx, cy]), np.column_stack([rx, ry])
    m = siting.build_site_matrix(net, cpos, rpos, cxy, rxy, threshold_m=450.0, chunk=chunk)
    s, d, dist = pair_distances_within(
        RoutingGraph.from_network(net), cpos, rpos, cxy, rxy, limit_m=450.0
    )
    ref = siting.SiteMatrix.from_pairs(s, d, dist, n_candidates=40, n_residents=500)
    assert m.nnz == ref.nnz > 0
    assert np.array_equal(m.indptr, ref.indptr) and np.array_equal(m.indices, ref.indices)
    np.testing.assert_allclose(m.distance_m, ref.distance_m, atol=1e-9)


def test_candidate_on_existing_facility_gains_zero() -> None:
    net, cov, cand = _scene(4)
    fac = cov.facilities.iloc[[0]]
    on_top = pd.DataFrame(
        {"id": ["same"], "lon": fac["lon"].to_numpy(), "lat": fac["lat"].to_numpy()}
    )
    r = siting.score_sites(cov, net, pd.concat([cand, on_top], ignore_index=True), "station")
    row = r.candidates.set_index("candidate_id").loc["same"]
    assert row["marginal_gain"] == 0
    assert row["total_within"] > 0  # it does reach people, all of them already covered
    assert row["nearest_existing_m"] == pytest.approx(0.0, abs=1e-6)
    assert row["nearest_existing_id"] == "f0"
    assert "已被现有服务站覆盖" in row["reason_zh"] and "already covered" in row["reason_en"]


def _plain_greedy(within: np.ndarray, u: np.ndarray, k: int) -> list[int]:
    open_ = u.copy()
    picks = []
    for _ in range(k):
        g = within @ open_
        i = int(np.argmax(g))
        if g[i] <= 0:
            break
        picks.append(i)
        open_[within[i]] = 0
    return picks


@pytest.mark.parametrize("seed", [5, 6, 7, 8])
def test_greedy_gains_never_increase_and_match_plain_greedy(seed: int) -> None:
    net, cov, cand = _scene(seed, n_res=300, n_cand=15, side=14)
    r = siting.score_sites(cov, net, cand, "station", select_k=6)
    gains = r.picks["gain"].to_numpy()
    assert len(gains) > 1
    assert (np.diff(gains) <= 1e-9).all()
    within = r.matrix.csr().toarray() > 0
    u = cov.residents["population"].to_numpy() * ~cov.residents["station_covered"].to_numpy(bool)
    ids = cand["id"].to_numpy()
    expect = _plain_greedy(within, u, 6)
    assert r.picks["candidate_id"].tolist()[: len(expect)] == list(ids[expect])
    # cumulative share reconciles with the coverage before and the gains
    w_tot = cov.residents["population"].sum()
    before = cov.residents.loc[cov.residents["station_covered"], "population"].sum()
    np.testing.assert_allclose(r.picks["cumulative_share"], (before + np.cumsum(gains)) / w_tot)
    assert r.after["share"] == pytest.approx(r.picks["cumulative_share"].iloc[-1])
    sel = r.candidates.dropna(subset=["selected"]).sort_values("selected")
    assert sel["candidate_id"].tolist() == r.picks["candidate_id"].tolist()


@pytest.mark.parametrize("seed", [11, 12, 13])
def test_exact_at_least_greedy_and_equals_enumeration(seed: int) -> None:
    net, cov, cand = _scene(seed, n_res=150, n_cand=10, side=12)
    k = 2
    r = siting.score_sites(cov, net, cand, "station", select_k=k, method="exact")
    within = r.matrix.csr().toarray() > 0
    u = cov.residents["population"].to_numpy() * ~cov.residents["station_covered"].to_numpy(bool)
    best = max(
        float(u[within[list(c)].any(axis=0)].sum())
        for c in itertools.combinations(range(len(cand)), k)
    )
    assert r.exact is not None
    assert r.exact["objective"] == pytest.approx(best)
    assert r.exact["objective"] >= r.exact["greedy_objective"] - 1e-9
    assert r.exact["gap"] == pytest.approx(best - r.exact["greedy_objective"])
    chosen = r.candidates.set_index("candidate_id").loc[r.picks["candidate_id"]].index
    idx = [int(np.flatnonzero(cand["id"].to_numpy() == c)[0]) for c in chosen]
    assert float(u[within[idx].any(axis=0)].sum()) == pytest.approx(best)
    assert r.picks["gain"].sum() == pytest.approx(best)


def test_capacity_is_respected() -> None:
    net, cov, cand = _scene(21, n_res=200, n_cand=8, side=10)
    cap = np.array([50.0, 80.0, np.inf, 40.0, 60.0, 30.0, 100.0, 20.0])
    cand = cand.assign(capacity=cap)
    r = siting.score_sites(cov, net, cand, "station", select_k=4)
    t = r.candidates.set_index("candidate_id").loc[cand["id"]]
    assert (t["marginal_gain"].to_numpy() <= cap + 1e-9).all()
    uncapped = siting.score_sites(cov, net, cand.drop(columns="capacity"), "station")
    u_gain = (
        uncapped.candidates.set_index("candidate_id").loc[cand["id"], "marginal_gain"].to_numpy()
    )
    np.testing.assert_allclose(t["marginal_gain"], np.minimum(u_gain, cap))
    picks = r.picks.set_index("candidate_id")
    assert (picks["gain"] <= t.loc[picks.index, "capacity"] + 1e-9).all()
    assert (np.diff(r.picks["gain"].to_numpy()) <= 1e-9).all()
    # served shares stay within 0..1 and add up to the gains
    assert (r.served >= -1e-12).all() and (r.served <= 1 + 1e-12).all()
    pop = cov.residents["population"].to_numpy()
    assert float((r.served * pop).sum()) == pytest.approx(r.picks["gain"].sum())
    # exact capacitated: every site within its capacity, objective >= greedy
    e = siting.score_sites(cov, net, cand, "station", select_k=4, method="exact")
    assert e.exact is not None and e.exact["objective"] >= e.exact["greedy_objective"] - 1e-6
    assert (
        e.picks.set_index("candidate_id")["gain"]
        <= t.loc[e.picks["candidate_id"], "capacity"].to_numpy() + 1e-6
    ).all()
    assert float((e.served * pop).sum()) == pytest.approx(e.exact["objective"], rel=1e-6)


def test_exact_refuses_large_instances() -> None:
    net, cov, cand = _scene(31, n_res=80, n_cand=9)
    with pytest.raises(InputError, match="--method greedy"):
        siting.score_sites(cov, net, cand, "station", select_k=2, method="exact", max_exact_pairs=3)


def test_weights_and_bad_arguments() -> None:
    net, cov, cand = _scene(32)
    r = siting.score_sites(cov, net, cand, "station", weight="elderly", select_k=2)
    eld = cov.residents["elderly"].to_numpy() * ~cov.residents["station_covered"].to_numpy(bool)
    within = r.matrix.csr().toarray() > 0
    t = r.candidates.set_index("candidate_id").loc[cand["id"]]
    np.testing.assert_allclose(t["marginal_gain"], within @ eld)
    assert r.candidates["reason_zh"].str.contains("老年人").all()
    with pytest.raises(InputError, match="children"):
        siting.score_sites(cov, net, cand, "station", weight="children")
    with pytest.raises(InputError, match="method"):
        siting.score_sites(cov, net, cand, "station", method="annealing")


def test_auto_candidates_lie_in_gaps_and_on_streets() -> None:
    net, cov, _cand = _scene(41, n_res=300, side=12)
    auto = siting.auto_candidates(cov, net, "station", n=6)
    assert 0 < len(auto) <= 6
    assert (np.diff(auto["gap_weight"].to_numpy()) <= 0).all()
    x, y = net.from_lonlat(auto["lon"].to_numpy(float), auto["lat"].to_numpy(float))
    assert snap_to_network(net, x, y).access_m.max() < 0.01
    r = siting.score_sites(cov, net, auto, "station", select_k=3)
    assert (r.candidates["marginal_gain"] > 0).any()


def test_resume_skips_finished_blocks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    net, cov, cand = _scene(51, n_cand=12)
    ck = tmp_path / "partial"
    full = siting.score_sites(cov, net, cand, "station", chunk=4, select_k=3, checkpoint_dir=ck)
    blocks = sorted(ck.glob("block_*.npz"))
    assert len(blocks) == 3
    blocks[1].unlink()  # as if interrupted in the second block
    calls = []
    real = siting._block_pairs

    def counting(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(siting, "_block_pairs", counting)
    with pytest.raises(InputError, match="resume"):
        siting.score_sites(cov, net, cand, "station", chunk=4, checkpoint_dir=ck)
    again = siting.score_sites(
        cov, net, cand, "station", chunk=4, select_k=3, checkpoint_dir=ck, resume=True
    )
    assert len(calls) == 1
    pd.testing.assert_frame_equal(full.candidates, again.candidates)
    pd.testing.assert_frame_equal(full.picks, again.picks)
    # different inputs do not resume from these blocks
    with pytest.raises(InputError, match="different"):
        siting.score_sites(
            cov, net, cand.iloc[:5], "station", chunk=4, checkpoint_dir=ck, resume=True
        )


def test_units_assigned_to_candidates() -> None:
    import geopandas as gpd
    import shapely

    from lifecircle.io import UnitLayer

    net, cov, cand = _scene(61)
    lon0, lat0 = grid_lonlat(net, np.array([X0 - 50, X0 + 250]), np.array([Y0 - 50, Y0 + 550]))
    lon1, lat1 = grid_lonlat(net, np.array([X0 + 250, X0 + 550]), np.array([Y0 - 50, Y0 + 550]))
    frame = gpd.GeoDataFrame(
        {"unit_id": ["W", "E"], "name": ["西社区", "东社区"]},
        geometry=[
            shapely.box(lon0[0], lat0[0], lon0[1], lat0[1]),
            shapely.box(lon1[0], lat1[0], lon1[1], lat1[1]),
        ],
        crs=4326,
    )
    layer = UnitLayer("community", "社区", "community", frame, "mem")
    r = siting.score_sites(cov, net, cand, "station", units=[layer])
    x = r.candidates["x"].to_numpy()
    expect = np.where(x < X0 + 250, "W", "E")
    assert r.candidates["community_id"].tolist() == expect.tolist()
    assert set(r.candidates["community_name"]) <= {"西社区", "东社区"}


# -- files and the command line ---------------------------------------------------------------


@pytest.fixture(scope="module")
def helsinki_files(
    tmp_path_factory: pytest.TempPathFactory, helsinki_walk: RoadNetwork
) -> dict[str, Path]:
    net = helsinki_walk
    d = tmp_path_factory.mktemp("score")
    rng = np.random.default_rng(3)
    nodes = rng.choice(net.n_nodes, 400, replace=False)
    x = net.node_x[nodes] + rng.normal(0, 15, 400)
    y = net.node_y[nodes] + rng.normal(0, 15, 400)
    lon, lat = net.to_lonlat(x, y)
    pop = rng.integers(1, 40, 400)
    pd.DataFrame(
        {
            "id": [f"R{i}" for i in range(400)],
            "lon": lon,
            "lat": lat,
            "population": pop,
            "elderly": pop // 5,
        }
    ).to_csv(d / "residents.csv", index=False)
    fn = rng.choice(net.n_nodes, 3, replace=False)
    flon, flat = net.to_lonlat(net.node_x[fn], net.node_y[fn])
    pd.DataFrame(
        {
            "id": ["F1", "F2", "F3"],
            "tier": ["服务站", "station", "community_centre"],
            "lon": flon,
            "lat": flat,
        }
    ).to_csv(d / "facilities.csv", index=False)
    cn = rng.choice(net.n_nodes, 30, replace=False)
    clon, clat = net.to_lonlat(net.node_x[cn], net.node_y[cn])
    cand = pd.DataFrame(
        {
            "id": [f"C{i}" for i in range(30)],
            "name": [f"site {i}" for i in range(30)],
            "lon": clon.round(7).astype(str),
            "lat": clat.round(7).astype(str),
            "capacity": "",
        }
    )
    # a point well inside the network's outline but far from any street (the sea/park is not
    # guaranteed: search the grid of the area for the point farthest from the network)
    gx, gy = np.meshgrid(
        np.linspace(net.bounds[0], net.bounds[2], 60), np.linspace(net.bounds[1], net.bounds[3], 60)
    )
    s = snap_to_network(net, gx.ravel(), gy.ravel())
    far = int(np.argmax(np.where(s.access_m < 250, s.access_m, 0)))
    far_lon, far_lat = net.to_lonlat(gx.ravel()[[far]], gy.ravel()[[far]])
    bad = pd.DataFrame(
        {
            "id": ["C0", "BADXY", "FAR", "OFFNET", "OTHER"],
            "name": ["duplicate", "bad", "far", "offnet", "other tier"],
            "lon": [clon[0], "abc", "116.0", far_lon[0], clon[1]],
            "lat": [clat[0], "60.17", "35.0", far_lat[0], clat[1]],
            "capacity": ["", "", "", "", ""],
        }
    )
    bad["tier"] = ["", "", "", "", "point"]
    cand["tier"] = ""
    pd.concat([cand, bad.astype(str)], ignore_index=True).to_csv(d / "candidates.csv", index=False)
    return {"dir": d, "far_access_m": s.access_m[far]}  # type: ignore[dict-item]


def _argv(files: dict[str, Path], helsinki_pbf: Path, out: Path, *extra: str) -> list[str]:
    d = files["dir"]
    return [
        "score",
        "--lang",
        "en",
        "--network",
        str(helsinki_pbf),
        "--facilities",
        str(d / "facilities.csv"),
        "--residents",
        str(d / "residents.csv"),
        "--tier",
        "station",
        "--out",
        str(out),
        "--no-cache",
        *extra,
    ]


def test_cli_score_outputs_and_rejects(
    helsinki_files, helsinki_pbf: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from lifecircle.cli import main

    far = float(helsinki_files["far_access_m"])  # type: ignore[arg-type]
    assert far > 20
    out = tmp_path / "out"
    argv = _argv(
        helsinki_files,
        helsinki_pbf,
        out,
        "--candidates",
        str(helsinki_files["dir"] / "candidates.csv"),
        "--select",
        "3",
        "--max-snap-m",
        f"{far * 0.8:.1f}",
    )
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "pick 1" in printed
    for name in (
        "candidates.csv",
        "candidates.geojson",
        "picks.csv",
        "summary.json",
        "rejects.csv",
        "candidates.html",
    ):
        assert (out / name).exists(), name
    assert not (out / siting.PARTIAL_DIR_NAME).exists()
    rej = pd.read_csv(out / "rejects.csv")
    by_id = dict(zip(rej["id"], rej["reason"], strict=False))
    assert by_id["C0"] == "duplicate_id"
    assert by_id["BADXY"] == "non_numeric_coordinates"
    assert by_id["FAR"] == "outside_network_area"
    assert by_id["OFFNET"] == "off_network"
    assert by_id["OTHER"] == "different_tier"
    table = pd.read_csv(out / "candidates.csv")
    assert len(table) == 30
    import openpyxl

    book = openpyxl.load_workbook(out / "lifecircle.xlsx")
    assert book.sheetnames == ["Overall", "Facilities", "Candidates", "Picks", "Rejects", "About"]
    cand_rows = list(book["Candidates"].iter_rows(values_only=True))
    assert len(cand_rows) == 1 + len(table)
    assert cand_rows[1][cand_rows[0].index("Candidate id")] == table["candidate_id"].iloc[0]
    assert book.sheetnames and book["Rejects"].max_row == 1 + len(rej)
    for col in (
        "candidate_id",
        "rank",
        "marginal_gain",
        "total_within",
        "overlap",
        "nearest_existing_m",
        "snap_m",
        "reason_zh",
        "reason_en",
        "selected",
    ):
        assert col in table.columns
    summary = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    c = summary["inputs"]["candidates"]
    assert c == {"input": 35, "used": 30, "rejected": 5}
    assert summary["coverage_after"]["share"] >= summary["coverage_before"]["share"]
    assert len(summary["picks"]) == 3 == int(table["selected"].notna().sum())
    html = (out / "candidates.html").read_text(encoding="utf-8")
    assert "candidate sites" in html and "pick 1" in html
    # a second run refuses to overwrite; --overwrite replaces
    assert main(argv) == 1
    assert "already exists" in capsys.readouterr().err
    assert main([*argv, "--overwrite"]) == 0


def test_cli_auto_candidates_and_resume_guard(
    helsinki_files, helsinki_pbf: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from lifecircle.cli import main

    out = tmp_path / "auto"
    (out / siting.PARTIAL_DIR_NAME).mkdir(parents=True)
    (out / siting.PARTIAL_DIR_NAME / "manifest.json").write_text('{"fingerprint": "x"}')
    argv = _argv(
        helsinki_files,
        helsinki_pbf,
        out,
        "--candidates",
        "auto:15",
        "--select",
        "2",
        "--method",
        "exact",
        "--no-map",
    )
    assert main(argv) == 1
    assert "--resume" in capsys.readouterr().err
    assert main([*argv, "--resume"]) == 1  # a partial run with other inputs is never mixed in
    assert "different inputs" in capsys.readouterr().err
    assert main([*argv, "--overwrite"]) == 0
    table = pd.read_csv(out / "candidates.csv")
    assert 0 < len(table) <= 15 and table["candidate_id"].str.startswith("AUTO").all()
    summary = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    assert summary["exact"]["objective"] >= summary["exact"]["greedy_objective"] - 1e-9
    assert summary["candidates_source"] == "auto:15"


def test_outside_boundary_rejected(helsinki_walk: RoadNetwork) -> None:
    import shapely

    from lifecircle.io import PointTable, empty_rejects
    from lifecircle.pipeline import Inputs

    net = helsinki_walk
    lon, lat = net.to_lonlat(net.node_x[:4], net.node_y[:4])
    mid_lon = float(np.median(net.to_lonlat(net.node_x, net.node_y)[0]))
    frame = pd.DataFrame(
        {"id": list("abcd"), "row": [2, 3, 4, 5], "name": "", "lon": lon, "lat": lat}
    )
    table = PointTable("candidates", "c.csv", "wgs84", frame, empty_rejects(), 4)
    west = shapely.box(-180, -90, mid_lon, 90)
    inputs = Inputs(
        standard=preset("tancheng"),
        networks={"walk": net, "bike": net},
        facilities=table,
        residents=None,
        boundaries={"county": west},
    )
    out = validate_candidates(table, inputs, "station")
    inside = lon < mid_lon
    assert set(out.frame["id"]) == set(np.array(list("abcd"))[inside])
    assert set(out.rejects["reason"]) <= {"outside_boundary"}
    assert len(out.rejects) == int((~inside).sum())
    assert out.n_input == len(out.frame) + len(out.rejects)


def test_progress_bar_only_on_a_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    import argparse
    import io
    import sys

    from lifecircle._commands import score

    assert score._progress_bar(argparse.Namespace(quiet=False)) is None  # pytest: not a TTY
    buf = io.StringIO()
    buf.isatty = lambda: True  # type: ignore[method-assign]
    monkeypatch.setattr(sys, "stderr", buf)
    assert score._progress_bar(argparse.Namespace(quiet=True)) is None
    bar = score._progress_bar(argparse.Namespace(quiet=False))
    bar(3, 10)
    bar(7, 10)
    bar.close()
    assert "10/10" in buf.getvalue()

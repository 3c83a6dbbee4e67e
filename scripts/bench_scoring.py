"""Benchmark: score 10,000 candidate sites for the ``station`` tier and pick the best 20.

On the shared synthetic scenario (``bench_common.make_scenario``: ~150,000-node street grid,
200,000 residents, 1,587 facilities; SYNTHETIC, for timing only). Targets on a 2-core machine:
all candidates scored in <= 60 s, ``--select 20`` in <= 30 s more, peak memory < 3 GB.

Baseline, measured in the same run: a per-candidate networkx Dijkstra (cut off at the threshold)
for every candidate (``--sample N``: N of them, extrapolated, for a quick look), with the same
exact read-off of residents on edges; its gains are checked against ours.

Usage: ``.venv/bin/python scripts/bench_scoring.py [--candidates 10000] [--select 20]
[--sample 0]``
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_common import Timer, make_scenario, peak_rss_mb
from lifecircle import siting
from lifecircle.config import preset
from lifecircle.coverage import compute_coverage, locate
from lifecircle.routing import RoutingGraph


def networkx_gains(
    net,
    graph: RoutingGraph,
    cand_pos,
    res_pos,
    u: np.ndarray,
    threshold_m: float,
    sample: np.ndarray,
) -> tuple[np.ndarray, float, float]:
    """Per-candidate networkx Dijkstra gains for ``sample``; (gains, build s, search s)."""
    import networkx as nx

    with Timer() as tb:
        g = nx.Graph()
        g.add_weighted_edges_from(
            zip(net.edge_u.tolist(), net.edge_v.tolist(), net.edge_length_m.tolist(), strict=True)
        )
    ok = res_pos.edge >= 0
    re = np.where(ok, res_pos.edge, 0)
    ru, rv = net.edge_u[re], net.edge_v[re]
    ro, rl = res_pos.offset_m, net.edge_length_m[re]
    gains = np.zeros(len(sample))
    with Timer() as ts:
        for n, i in enumerate(sample):
            e = int(cand_pos.edge[i])
            o, a = float(cand_pos.offset_m[i]), float(cand_pos.access_m[i])
            s = -1
            g.add_edge(s, int(net.edge_u[e]), weight=a + o)
            g.add_edge(s, int(net.edge_v[e]), weight=a + float(net.edge_length_m[e]) - o)
            lengths = nx.single_source_dijkstra_path_length(
                g, s, cutoff=threshold_m, weight="weight"
            )
            g.remove_node(s)
            d = np.full(net.n_nodes, np.inf)
            keys = np.fromiter((k for k in lengths if k >= 0), dtype=np.int64)
            d[keys] = [lengths[k] for k in keys]
            dist = np.minimum(d[ru] + ro, d[rv] + rl - ro) + res_pos.access_m
            same = ok & (re == e)
            dist[same] = np.minimum(dist[same], np.abs(ro[same] - o) + a + res_pos.access_m[same])
            dist[~ok] = np.inf
            gains[n] = float(u[dist <= threshold_m].sum())
    return gains, tb.s, ts.s


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--candidates", type=int, default=10_000)
    ap.add_argument("--select", type=int, default=20)
    ap.add_argument(
        "--sample",
        type=int,
        default=0,
        help="candidates for the networkx baseline (default 0: all of them, measured in full)",
    )
    args = ap.parse_args()

    with Timer() as t_make:
        sc = make_scenario()
    net = sc.network
    print(
        f"scenario: {net.n_nodes:,} nodes, {net.n_edges:,} edges, {len(sc.residents):,} residents, "
        f"{len(sc.facilities):,} facilities (synthetic; built in {t_make.s:.1f} s)"
    )
    std = preset("tancheng")
    tier = std.tier("station")
    sub = replace(std, tiers=(tier,))
    fac = sc.facilities[sc.facilities["tier"] == "station"].reset_index(drop=True)
    with Timer() as t_cov:
        res_loc = locate(
            {"walk": net}, sc.residents["lon"].to_numpy(), sc.residents["lat"].to_numpy()
        )
        cov = compute_coverage({"walk": net}, fac, sc.residents, sub, resident_located=res_loc)
    print(
        f"coverage of {tier.key} (snap + one multi-source search): {t_cov.s:.2f} s; "
        f"{cov.tiers['share'].iloc[0]:.1%} of people covered"
    )

    rng = np.random.default_rng(11)
    minx, miny, maxx, maxy = net.bounds
    xy = rng.uniform([minx, miny], [maxx, maxy], size=(args.candidates, 2))
    lon, lat = net.to_lonlat(xy[:, 0], xy[:, 1])
    import pandas as pd

    cand = pd.DataFrame({"id": [f"C{i}" for i in range(args.candidates)], "lon": lon, "lat": lat})
    with Timer() as t_score:
        r = siting.score_sites(cov, net, cand, "station")
    rss_score = peak_rss_mb()
    print(
        f"scored {args.candidates:,} candidates: {t_score.s:.2f} s "
        f"(routing {r.timings_s['route']:.2f} s, {r.matrix.nnz:,} candidate-resident pairs "
        f"within {tier.threshold_m:.0f} m); peak RSS {rss_score:,.0f} MB"
    )

    w = cov.residents["population"].to_numpy()
    u = w * ~cov.residents["station_covered"].to_numpy(bool)
    with Timer() as t_sel:
        sel = siting.greedy_select(r.matrix, u, args.select)
    before = float(w[cov.residents["station_covered"].to_numpy(bool)].sum()) / float(w.sum())
    after = before + sel.objective / float(w.sum())
    print(
        f"greedy --select {args.select}: {t_sel.s:.3f} s; coverage {before:.2%} -> {after:.2%}; "
        f"gains {sel.gain[0]:,.0f} ... {sel.gain[-1]:,.0f}"
    )

    # networkx baseline on a sample
    graph = RoutingGraph.from_network(net)
    cand_loc = locate({"walk": net}, lon, lat)
    cand_pos = cand_loc.positions("walk")
    res_pos = cov.resident_located.positions("walk")
    on_net = np.flatnonzero(cand_pos.edge >= 0)
    sample = (
        rng.choice(on_net, size=args.sample, replace=False)
        if 0 < args.sample < len(on_net)
        else on_net
    )
    nx_gain, t_nx_build, t_nx = networkx_gains(
        net, graph, cand_pos, res_pos, u, tier.threshold_m, sample
    )
    ours = (
        r.candidates.set_index("candidate_id")
        .loc[cand["id"].to_numpy()[sample], "marginal_gain"]
        .to_numpy()
    )
    diff = float(np.abs(ours - nx_gain).max())
    per_nx = t_nx / len(sample)
    extrapolated = per_nx * args.candidates  # = the measured total when every candidate ran
    print(
        f"networkx baseline: {per_nx * 1000:.1f} ms per candidate over {len(sample)} candidates "
        f"(graph build {t_nx_build:.1f} s) -> {extrapolated:,.0f} s for {args.candidates:,}; "
        f"max |gain difference| {diff:.3g}"
    )
    peak = peak_rss_mb()
    print()
    print(f"{'figure':<44}{'value':>14}{'target':>12}")
    print(f"{'scoring, all candidates (s)':<44}{t_score.s:>14.2f}{'<= 60':>12}")
    print(f"{'greedy selection of ' + str(args.select) + ' (s)':<44}{t_sel.s:>14.3f}{'<= 30':>12}")
    print(f"{'peak memory (MB)':<44}{peak:>14,.0f}{'< 3,000':>12}")
    print(
        f"{'speed-up vs per-candidate networkx (x)':<44}{extrapolated / t_score.s:>14.1f}{'':>12}"
    )
    print(f"{'gains equal networkx':<44}{diff < 1e-6!s:>14}{'':>12}")
    ok = t_score.s <= 60 and t_sel.s <= 30 and peak < 3000 and diff < 1e-6
    print("all targets met" if ok else "TARGET MISSED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

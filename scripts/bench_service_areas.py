"""Benchmark of service-area polygons (issue 4). Prints figures; it is not a test.

Scenario (scripts/bench_common.py, SYNTHETIC): ~150,000-node street grid, 1,587 facilities in the
five Tancheng tiers (1/1/16/146/1,423), every tier on the one walk network at its own threshold
(3,750 / 3,750 / 1,000 / 500 / 300 m).

Measured in one run:
- lifecircle: one polygon per facility at its tier threshold (all 1,587; snapping excluded, it is
  shared with coverage), and the five tier unions (``dissolve="tier"``);
- the osmnx-notebook way ("make isochrone polygons"): nearest node per facility, then
  ``networkx.ego_graph(radius=threshold, distance="length")``, node buffers + edge buffers of the
  subgraph, ``union_all``, for every facility (``--sample N``: N facilities per tier,
  extrapolated to the tier's count, for a quick look). It keeps only edges with both ends inside
  the radius, so partly reachable edges are dropped;
- peak memory of the process.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_common import Timer, make_scenario, peak_rss_mb
from lifecircle.config import preset
from lifecircle.coverage import locate
from lifecircle.service_areas import DEFAULT_BUFFER_M, facility_areas, tier_areas


def osmnx_notebook_way(
    net, sc, standard, rng, sample_per_tier: int = 0
) -> tuple[float, dict[str, float], float]:
    """Seconds for all facilities (measured in full, or extrapolated from ``sample_per_tier``
    facilities per tier), per-tier seconds, and graph build seconds."""
    import geopandas as gpd
    import networkx as nx
    import osmnx as ox
    from shapely.geometry import LineString, Point

    with Timer() as build:
        g = nx.MultiDiGraph(crs=net.crs)
        g.add_nodes_from(
            (i, {"x": float(x), "y": float(y)})
            for i, (x, y) in enumerate(zip(net.node_x.tolist(), net.node_y.tolist(), strict=True))
        )
        u, v, w = net.edge_u.tolist(), net.edge_v.tolist(), net.edge_length_m.tolist()
        g.add_edges_from((a, b, {"length": c}) for a, b, c in zip(u, v, w, strict=True))
        g.add_edges_from((b, a, {"length": c}) for a, b, c in zip(u, v, w, strict=True))
    fac = sc.facilities
    per_tier: dict[str, float] = {}
    total = 0.0
    for tier in standard.tiers:
        idx = np.flatnonzero(fac["tier"].to_numpy() == tier.key)
        n = min(sample_per_tier, len(idx)) if sample_per_tier > 0 else len(idx)
        sample = rng.choice(idx, n, replace=False) if n < len(idx) else idx
        with Timer() as t:
            centres = ox.distance.nearest_nodes(
                g, fac["x"].to_numpy()[sample], fac["y"].to_numpy()[sample]
            )
            for centre in centres:
                sub = nx.ego_graph(g, centre, radius=tier.threshold_m, distance="length")
                node_points = [Point((d["x"], d["y"])) for _n, d in sub.nodes(data=True)]
                nodes_gdf = gpd.GeoDataFrame({"id": list(sub.nodes)}, geometry=node_points)
                nodes_gdf = nodes_gdf.set_index("id")
                edge_lines = []
                for n_fr, n_to in sub.edges():
                    f = nodes_gdf.loc[n_fr].geometry
                    to = nodes_gdf.loc[n_to].geometry
                    edge_lines.append(
                        g.get_edge_data(n_fr, n_to)[0].get("geometry", LineString([f, to]))
                    )
                n = nodes_gdf.buffer(DEFAULT_BUFFER_M).geometry
                e = gpd.GeoSeries(edge_lines).buffer(DEFAULT_BUFFER_M).geometry
                gpd.GeoSeries(list(n) + list(e)).union_all()
        per_tier[tier.key] = t.s / len(sample) * len(idx)
        total += per_tier[tier.key]
    return total, per_tier, build.s


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--sample",
        type=int,
        default=0,
        metavar="N",
        help="time the osmnx-notebook way on N facilities per tier and extrapolate "
        "(default 0: every facility, measured in full)",
    )
    args = ap.parse_args()
    with Timer() as t:
        sc = make_scenario()
    net = sc.network
    print("SYNTHETIC benchmark scenario (bench_common.py)")
    print(
        f"network: {net.n_nodes:,} nodes, {net.n_edges:,} edges; facilities: "
        f"{len(sc.facilities):,} (built in {t.s:.1f} s)"
    )
    standard = preset("tancheng").with_mode("walk")
    fac = sc.facilities
    loc = locate({"walk": net}, fac["lon"].to_numpy(float), fac["lat"].to_numpy(float))
    pos = loc.positions("walk")
    xy = np.column_stack([loc.x, loc.y])
    tiers = fac["tier"].to_numpy()

    # warm-up (routing graph, incidence arrays) so that the timings below are the analysis only
    facility_areas(net, pos.subset(np.arange(2)), [100.0], xy=xy[:2])

    per_fac: dict[str, float] = {}
    n_poly = 0
    for tier in standard.tiers:
        idx = np.flatnonzero(tiers == tier.key)
        with Timer() as t:
            polys = facility_areas(net, pos.subset(idx), [tier.threshold_m], xy=xy[idx])
        per_fac[tier.key] = t.s
        n_poly += int((~np.vectorize(lambda g: g.is_empty)(polys)).sum())
    fac_total = sum(per_fac.values())
    per_union: dict[str, float] = {}
    for tier in standard.tiers:
        idx = np.flatnonzero(tiers == tier.key)
        with Timer() as t:
            tier_areas(net, pos.subset(idx), [tier.threshold_m], xy=xy[idx])
        per_union[tier.key] = t.s
    union_total = sum(per_union.values())
    rss_ours = peak_rss_mb()

    base_total, base_tier, build_s = osmnx_notebook_way(
        net, sc, standard, np.random.default_rng(1), args.sample
    )

    print()
    print(f"{'tier':<20}{'sites':>7}{'lifecircle s':>14}{'union s':>10}{'osmnx-notebook s':>18}")
    for tier in standard.tiers:
        n = int((tiers == tier.key).sum())
        print(
            f"{tier.key:<20}{n:>7}{per_fac[tier.key]:>14.2f}{per_union[tier.key]:>10.2f}"
            f"{base_tier[tier.key]:>18.1f}"
        )
    print()
    print(
        f"polygons for all {len(fac):,} facilities at their thresholds: {fac_total:.2f} s "
        f"({n_poly:,} polygons; target <= 10 s)"
    )
    print(f"five tier unions: {union_total:.2f} s (target <= 3 s)")
    print(
        "osmnx-notebook way (ego_graph + node/edge buffers, "
        f"{'every facility' if args.sample <= 0 else f'{args.sample} per tier, extrapolated'}): "
        f"{base_total:.1f} s (+ {build_s:.1f} s to build the networkx graph once)"
    )
    print(f"speed-up over the osmnx-notebook way: {base_total / fac_total:.1f}x (target >= 5x)")
    print(
        f"peak memory (lifecircle part): {rss_ours:,.0f} MB; whole run: {peak_rss_mb():,.0f} MB "
        "(target < 3,000 MB)"
    )


if __name__ == "__main__":
    main()

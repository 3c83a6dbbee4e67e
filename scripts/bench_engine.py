"""Benchmark of the coverage engine (issue 2). Prints figures; it is not a test.

Scenario (scripts/bench_common.py, SYNTHETIC): ~150,000-node street grid, 1,587 facilities in the
five Tancheng tiers (1/1/16/146/1,423), 200,000 residents.

Measured in one run:
- lifecircle: edge snapping of all residents and facilities + one multi-source Dijkstra per tier
  (all five tiers) after the network is loaded, and the one-off snapping-index build;
- the osmnx-tutorial way on the same data: ``osmnx.distance.nearest_nodes`` per resident and
  facility, then ``networkx.ego_graph(radius=threshold, distance="length")`` per facility; residents
  covered when their nearest node is inside a facility's ego graph (node snapping, no access legs);
- network load times: from OSM PBF, from osmnx GraphML, and from lifecircle's cache;
- peak memory of the process.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_common import Timer, make_scenario, peak_rss_mb
from lifecircle.config import preset
from lifecircle.coverage import compute_coverage, locate
from lifecircle.network import load_network
from lifecircle.routing import RoutingGraph
from lifecircle.snapping import snap_index


def osmnx_tutorial_way(net, sc, standard) -> tuple[float, dict[str, float]]:
    import networkx as nx
    import osmnx as ox

    g = nx.MultiDiGraph(crs=net.crs)
    for i in range(net.n_nodes):
        g.add_node(i, x=float(net.node_x[i]), y=float(net.node_y[i]))
    for u, v, length in zip(
        net.edge_u.tolist(), net.edge_v.tolist(), net.edge_length_m.tolist(), strict=True
    ):
        g.add_edge(u, v, length=length)
        g.add_edge(v, u, length=length)
    und = g  # ego_graph follows out-edges; both directions were added
    pop = sc.residents["population"].to_numpy()
    shares = {}
    with Timer() as t:
        res_nodes = ox.distance.nearest_nodes(
            g, sc.residents["x"].to_numpy(), sc.residents["y"].to_numpy()
        )
        fac_nodes = ox.distance.nearest_nodes(
            g, sc.facilities["x"].to_numpy(), sc.facilities["y"].to_numpy()
        )
        for tier in standard.tiers:
            reached: set[int] = set()
            for node in np.asarray(fac_nodes)[sc.facilities["tier"].to_numpy() == tier.key]:
                reached.update(
                    nx.ego_graph(und, int(node), radius=tier.threshold_m, distance="length").nodes
                )
            covered = np.isin(res_nodes, np.fromiter(reached, dtype=np.int64, count=len(reached)))
            shares[tier.key] = float(pop[covered].sum() / pop.sum())
    return t.s, shares


def write_pbf_and_graphml(net, folder: Path) -> tuple[Path, Path]:
    import networkx as nx
    import osmium
    import osmnx as ox

    lon, lat = net.to_lonlat(net.node_x, net.node_y)
    pbf = folder / "bench.osm.pbf"
    w = osmium.SimpleWriter(str(pbf))
    try:
        for i in range(net.n_nodes):
            w.add_node(osmium.osm.mutable.Node(id=i + 1, location=(float(lon[i]), float(lat[i]))))
        for k, (u, v) in enumerate(zip(net.edge_u.tolist(), net.edge_v.tolist(), strict=True)):
            w.add_way(
                osmium.osm.mutable.Way(
                    id=k + 1, nodes=[u + 1, v + 1], tags={"highway": "residential"}
                )
            )
    finally:
        w.close()
    g = nx.MultiDiGraph(crs="EPSG:4326")
    for i in range(net.n_nodes):
        g.add_node(i + 1, x=float(lon[i]), y=float(lat[i]))
    for u, v, length in zip(
        net.edge_u.tolist(), net.edge_v.tolist(), net.edge_length_m.tolist(), strict=True
    ):
        g.add_edge(u + 1, v + 1, length=length, highway="residential")
        g.add_edge(v + 1, u + 1, length=length, highway="residential")
    gml = folder / "bench.graphml"
    ox.save_graphml(g, gml)
    return pbf, gml


def main() -> None:
    with Timer() as t_make:
        sc = make_scenario()
    net = sc.network
    standard = preset("tancheng").with_mode("walk")  # every tier on the one benchmark network
    print(
        f"scenario (SYNTHETIC): {net.n_nodes:,} nodes, {net.n_edges:,} edges, "
        f"{len(sc.facilities):,} facilities, {len(sc.residents):,} residents "
        f"(built in {t_make.s:.2f} s)"
    )

    with Timer() as t_index:
        snap_index(net)
        RoutingGraph.from_network(net)
    nets = {"walk": net}
    runs = []
    for _ in range(3):
        with Timer() as t_snap:
            fac_loc = locate(nets, sc.facilities["lon"].to_numpy(), sc.facilities["lat"].to_numpy())
            res_loc = locate(nets, sc.residents["lon"].to_numpy(), sc.residents["lat"].to_numpy())
        with Timer() as t_route:
            result = compute_coverage(
                nets,
                sc.facilities,
                sc.residents,
                standard,
                facility_located=fac_loc,
                resident_located=res_loc,
            )
        runs.append((t_snap.s, t_route.s))
    t_snap_s, t_route_s = min(runs, key=lambda r: r[0] + r[1])
    ours = t_snap_s + t_route_s
    print(f"lifecircle: snapping index + routing graph (once per network): {t_index.s:.2f} s")
    print(
        f"lifecircle: snap {t_snap_s:.3f} s + five tiers {t_route_s:.3f} s = {ours:.3f} s "
        f"(target <= 1.0 s; best of 3)"
    )

    engine_peak_mb = peak_rss_mb()  # before the networkx baseline, which needs far more memory
    t_tut, tut_shares = osmnx_tutorial_way(net, sc, standard)
    print(f"osmnx-tutorial way (nearest_nodes + ego_graph per facility): {t_tut:.2f} s")
    print(f"speed-up: {t_tut / ours:.1f}x (target >= 1.5x)")
    for row in result.tiers.itertuples():
        print(
            f"  {row.tier:<20} exact share {row.share:6.1%}   node-snapping tutorial share "
            f"{tut_shares[row.tier]:6.1%}"
        )

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        pbf, gml = write_pbf_and_graphml(net, folder)
        with Timer() as t_pbf:
            load_network(pbf, "walk", crs="EPSG:32650")
        with Timer() as t_gml:
            load_network(gml, "walk", crs="EPSG:32650")
        cache = folder / "cache"
        load_network(pbf, "walk", crs="EPSG:32650", cache_dir=cache)
        with Timer() as t_cache:
            load_network(pbf, "walk", crs="EPSG:32650", cache_dir=cache)
    print(
        f"load: OSM PBF {t_pbf.s:.2f} s, GraphML {t_gml.s:.2f} s, cache {t_cache.s:.3f} s "
        "(target <= 2 s)"
    )
    print(
        f"peak memory of lifecircle (scenario, network, snapping, five tiers): "
        f"{engine_peak_mb:,.0f} MB (target < 2,048 MB)"
    )
    print(
        f"peak memory of the whole run, incl. the networkx graph of the baseline and the GraphML "
        f"load: {peak_rss_mb():,.0f} MB"
    )


if __name__ == "__main__":
    main()

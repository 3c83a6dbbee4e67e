"""Scaling benchmark (issue 17). Prints figures; it is not a test.

For each size (junctions of a SYNTHETIC perturbed street grid, scripts/bench_common.py):

- ``straight``: the grid as is; ``bent``: the same grid with every street bent into ``--pieces``
  straight pieces (what real OSM looks like: most vertices are not junctions);
- residents: 200,000 per 150,000 junctions; facilities: the five Tancheng tiers scaled the same
  way (1/1/16/146/1,423 at 150,000), every tier on the walk network;
- measured in one run: snapping + five tiers with lifecircle (first run, including the snapping
  index and the junction graph, and warm, best of 3), against the bare scipy floor on the
  junction graph (the points projected from WGS84 as lifecircle's side does, KD-tree nearest
  junction for every point + one ``min_only`` Dijkstra per tier + a gather), best of 3; the
  ratio to the floor without its projection is printed too; the osmnx-tutorial way
  (``nearest_nodes`` + ``ego_graph`` per facility, measured in full) where ``--tutorial-max``
  allows;
- network loads in fresh processes (time and peak RSS): OSM PBF, GraphML, the ``.npz`` cache;
- the CLI end to end (``lifecircle coverage``, warm network cache) in a fresh process: wall
  time and peak RSS, and the write time of the result files measured in-process;
- the growth exponent ``b`` of ``time ~ size**b`` between the smallest and the largest size.

Quick run: ``python scripts/bench_scaling.py --sizes 50k --no-cli --no-loads``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pandas as pd

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from bench_common import TIER_COUNTS, Timer, make_network, peak_rss_mb
from lifecircle.config import preset
from lifecircle.coverage import compute_coverage, locate
from lifecircle.network import RoadNetwork, from_arrays
from lifecircle.routing import RoutingGraph

SIZES = {"50k": 50_000, "150k": 150_000, "500k": 500_000, "1m": 1_000_000}


def bend(net: RoadNetwork, pieces: int, seed: int = 0) -> RoadNetwork:
    """Every edge bent into ``pieces`` straight pieces (a gentle sine bulge, 10 % of its length)."""
    rng = np.random.default_rng(seed)
    u0, v0 = net.edge_u.astype(np.int64), net.edge_v.astype(np.int64)
    t = np.arange(1, pieces) / pieces
    xu, yu, xv, yv = net.node_x[u0], net.node_y[u0], net.node_x[v0], net.node_y[v0]
    length = np.hypot(xv - xu, yv - yu)
    nx_, ny_ = -(yv - yu) / length, (xv - xu) / length
    bulge = 0.1 * length[:, None] * np.sin(np.pi * t)[None, :] * rng.uniform(-1, 1, (len(u0), 1))
    ix = xu[:, None] + t * (xv - xu)[:, None] + bulge * nx_[:, None]
    iy = yu[:, None] + t * (yv - yu)[:, None] + bulge * ny_[:, None]
    inner = net.n_nodes + np.arange(len(u0) * (pieces - 1)).reshape(len(u0), pieces - 1)
    chain = np.column_stack([u0, inner, v0])
    return from_arrays(
        np.concatenate([net.node_x, ix.ravel()]),
        np.concatenate([net.node_y, iy.ravel()]),
        chain[:, :-1].ravel(),
        chain[:, 1:].ravel(),
        crs=net.crs,
        mode="walk",
        source=f"bent grid ({pieces} pieces per street)",
    )


def scenario(n_junctions: int, seed: int = 7) -> tuple[RoadNetwork, pd.DataFrame, pd.DataFrame]:
    side = round(math.sqrt(n_junctions / 0.999))
    net = make_network(side=side, seed=seed)
    rng = np.random.default_rng(seed + 1)
    scale = net.n_nodes / 150_000
    n_res = round(200_000 * scale)
    minx, miny, maxx, maxy = net.bounds
    centres = rng.uniform([minx, miny], [maxx, maxy], size=(max(4, int(12 * scale)), 2))
    which = rng.integers(0, len(centres), n_res)
    pts = centres[which] + rng.normal(0, 2500, size=(n_res, 2))
    pts[:, 0] = np.clip(pts[:, 0], minx, maxx)
    pts[:, 1] = np.clip(pts[:, 1], miny, maxy)
    pop = rng.integers(1, 20, n_res).astype(float)
    lon, lat = net.to_lonlat(pts[:, 0], pts[:, 1])
    residents = pd.DataFrame(
        {
            "id": np.char.add("R", np.arange(n_res).astype(str)),
            "population": pop,
            "elderly": np.floor(pop * 0.14),
            "children": np.floor(pop * 0.25),
            "lon": lon,
            "lat": lat,
            "x": pts[:, 0],
            "y": pts[:, 1],
        }
    )
    counts = {k: max(1, round(v * scale)) for k, v in TIER_COUNTS.items()}
    tiers = np.repeat(list(counts), list(counts.values()))
    fpts = rng.uniform([minx, miny], [maxx, maxy], size=(len(tiers), 2))
    flon, flat = net.to_lonlat(fpts[:, 0], fpts[:, 1])
    facilities = pd.DataFrame(
        {
            "id": np.char.add("F", np.arange(len(tiers)).astype(str)),
            "name": tiers,
            "tier": tiers,
            "lon": flon,
            "lat": flat,
            "x": fpts[:, 0],
            "y": fpts[:, 1],
        }
    )
    return net, facilities, residents


def ours(
    net: RoadNetwork, fac: pd.DataFrame, res: pd.DataFrame, standard: Any, reps: int
) -> dict[str, float]:
    nets = {"walk": net}
    net._cache.clear()
    with Timer() as t_first:
        fl = locate(nets, fac["lon"].to_numpy(), fac["lat"].to_numpy())
        rl = locate(nets, res["lon"].to_numpy(), res["lat"].to_numpy())
        compute_coverage(nets, fac, res, standard, facility_located=fl, resident_located=rl)
    best = (np.inf, np.inf)
    for _ in range(reps):
        with Timer() as t_snap:
            fl = locate(nets, fac["lon"].to_numpy(), fac["lat"].to_numpy())
            rl = locate(nets, res["lon"].to_numpy(), res["lat"].to_numpy())
        with Timer() as t_route:
            compute_coverage(nets, fac, res, standard, facility_located=fl, resident_located=rl)
        if t_snap.s + t_route.s < sum(best):
            best = (t_snap.s, t_route.s)
    return {"first": t_first.s, "snap": best[0], "route": best[1], "warm": sum(best)}


def floor(
    net: RoadNetwork, fac: pd.DataFrame, res: pd.DataFrame, standard: Any, reps: int
) -> dict[str, float]:
    """The bare scipy floor on the junction graph: nearest junction + min_only Dijkstra per tier.

    Like lifecircle's ``locate``, it starts from the points' WGS84 coordinates and projects
    them into the network CRS inside its clock (``warm``); ``warm_xy`` leaves that projection
    out (points projected beforehand), for reference."""
    import scipy.sparse as sp
    from scipy.sparse.csgraph import dijkstra
    from scipy.spatial import cKDTree

    g = RoutingGraph.from_network(net)
    jn = g.junctions.junction_node
    nj = len(jn)
    rlon, rlat = res["lon"].to_numpy(), res["lat"].to_numpy()
    flon, flat = fac["lon"].to_numpy(), fac["lat"].to_numpy()
    fac_tier = fac["tier"].to_numpy()
    best = best_xy = np.inf
    first = 0.0
    for r in range(reps + 1):
        t0 = time.perf_counter()
        tree = cKDTree(np.column_stack([net.node_x[jn], net.node_y[jn]]))
        csr = sp.csr_matrix((g.weights, g.indices, g.indptr), shape=(nj, nj))
        t_build = time.perf_counter() - t0
        t0 = time.perf_counter()
        rx, ry = net.from_lonlat(rlon, rlat)
        fx, fy = net.from_lonlat(flon, flat)
        t_project = time.perf_counter() - t0
        _, rn = tree.query(np.column_stack([rx, ry]), workers=-1)
        _, fn = tree.query(np.column_stack([fx, fy]), workers=-1)
        for tier in standard.tiers:
            src = np.unique(fn[np.isin(fac_tier, standard.serving_tiers(tier.key))])
            d = dijkstra(csr, directed=True, indices=src, min_only=True)
            d[rn]
        t_run = time.perf_counter() - t0
        if r == 0:
            first = t_build + t_run
        else:
            best = min(best, t_run)
            best_xy = min(best_xy, t_run - t_project)
    return {"first": first, "warm": best, "warm_xy": best_xy}


def tutorial(net: RoadNetwork, fac: pd.DataFrame, res: pd.DataFrame, standard: Any) -> float:
    from bench_engine import osmnx_tutorial_way

    sc = SimpleNamespace(residents=res, facilities=fac)
    t, _ = osmnx_tutorial_way(net, sc, standard)
    return t


def write_inputs(
    net: RoadNetwork, fac: pd.DataFrame, res: pd.DataFrame, folder: Path
) -> dict[str, Path]:
    import osmium

    lon, lat = net.to_lonlat(net.node_x, net.node_y)
    pbf = folder / "net.osm.pbf"
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
    gml = folder / "net.graphml"
    with open(gml, "w", encoding="utf-8") as fh:  # what osmnx.save_graphml writes, streamed
        fh.write(
            "<?xml version='1.0' encoding='utf-8'?>\n<graphml xmlns=\"http://graphml.graphdrawing.org/xmlns\">\n"
            '<key id="d0" for="graph" attr.name="crs" attr.type="string" />\n'
            '<key id="d1" for="node" attr.name="y" attr.type="string" />\n'
            '<key id="d2" for="node" attr.name="x" attr.type="string" />\n'
            '<key id="d3" for="edge" attr.name="highway" attr.type="string" />\n'
            '<key id="d4" for="edge" attr.name="length" attr.type="string" />\n'
            '<graph edgedefault="directed"><data key="d0">epsg:4326</data>\n'
        )
        fh.writelines(
            f'<node id="{i + 1}"><data key="d1">{b!r}</data><data key="d2">{a!r}</data></node>\n'
            for i, (a, b) in enumerate(zip(lon.tolist(), lat.tolist(), strict=True))
        )
        for u, v, length in zip(
            net.edge_u.tolist(), net.edge_v.tolist(), net.edge_length_m.tolist(), strict=True
        ):
            for a, b in ((u, v), (v, u)):
                fh.write(
                    f'<edge source="{a + 1}" target="{b + 1}" id="0">'
                    '<data key="d3">residential</data>'
                    f'<data key="d4">{length!r}</data></edge>\n'
                )
        fh.write("</graph></graphml>\n")
    fac[["id", "name", "tier", "lon", "lat"]].to_csv(folder / "facilities.csv", index=False)
    res[["id", "population", "elderly", "children", "lon", "lat"]].to_csv(
        folder / "residents.csv", index=False
    )
    return {
        "pbf": pbf,
        "graphml": gml,
        "facilities": folder / "facilities.csv",
        "residents": folder / "residents.csv",
    }


# peak RSS of the child from /proc (ru_maxrss would include the parent's size at fork time)
_TAIL = """
import json as _j
_hwm = [ln for ln in open("/proc/self/status") if ln.startswith("VmHWM:")][0]
print(_j.dumps({**OUT, "rss_mb": int(_hwm.split()[1]) / 1024}))
"""

# ``lifecircle coverage`` in-process, timing run_coverage and the writing of the result files
_CLI = """
import time
t = time.perf_counter()
import lifecircle.pipeline as P
from lifecircle.cli import main
W = {}
def wrap(mod, name):
    orig = getattr(mod, name)
    def timed(*a, **k):
        t0 = time.perf_counter()
        r = orig(*a, **k)
        W[name] = time.perf_counter() - t0
        if hasattr(r, "timings_s"):
            W.update({"t_" + k: v for k, v in r.timings_s.items()})
        return r
    setattr(mod, name, timed)
for name in ("write_coverage_outputs", "run_coverage"):
    if hasattr(P, name):
        wrap(P, name)
rc = main(ARGS)
OUT = {"s": time.perf_counter() - t, "rc": rc, **W}
"""


def _child(code: str) -> dict[str, float]:
    """Run Python code in a fresh process; it prints JSON; add its peak RSS."""
    p = subprocess.run(
        [sys.executable, "-c", code + _TAIL], capture_output=True, text=True, env=os.environ.copy()
    )
    if p.returncode != 0:
        raise RuntimeError(p.stderr[-3000:])
    return json.loads(p.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


_LOAD = """
import time
from lifecircle.network import load_network
t = time.perf_counter()
load_network(PATH, "walk", crs="EPSG:32650", cache_dir=CACHE)
OUT = {"s": time.perf_counter() - t}
"""


def loads(files: dict[str, Path], cache: Path) -> dict[str, dict[str, float]]:
    def code(path: Path, cache_dir: Path | None) -> str:
        return _LOAD.replace("PATH", repr(str(path))).replace(
            "CACHE", repr(None if cache_dir is None else str(cache_dir))
        )

    out = {kind: _child(code(files[kind], None)) for kind in ("pbf", "graphml")}
    _child(code(files["pbf"], cache))  # fills the cache
    out["cache"] = _child(code(files["pbf"], cache))
    return out


def cli(files: dict[str, Path], folder: Path) -> dict[str, float]:
    """``lifecircle coverage`` end to end in a fresh process (network cache warm)."""
    args = [
        "--network",
        str(files["pbf"]),
        "--facilities",
        str(files["facilities"]),
        "--residents",
        str(files["residents"]),
        "--standard",
        "tancheng",
        "--mode",
        "walk",
        "--network-crs",
        "EPSG:32650",
        "--overwrite",
    ]
    code = _CLI.replace("ARGS", repr(["coverage", *args, "--out", str(folder / "out")]))
    env_cwd = os.getcwd()
    os.chdir(folder)  # the network cache lives in the working directory
    try:
        _child(code)  # cold: fills the network cache
        return _child(code)  # warm
    finally:
        os.chdir(env_cwd)


def exponent(sizes: list[int], times: list[float]) -> float:
    if len(sizes) < 2:
        return float("nan")
    return math.log(times[-1] / times[0]) / math.log(sizes[-1] / sizes[0])


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--sizes", default="50k,150k,500k,1m", help="comma-separated: 50k,150k,500k,1m")
    ap.add_argument(
        "--bent-sizes",
        default="50k,150k,500k",
        help="sizes also run bent (1m bent has ~7.5 M vertices; add it explicitly)",
    )
    ap.add_argument("--pieces", type=int, default=5, help="pieces per bent street (default 5)")
    ap.add_argument("--reps", type=int, default=3, help="warm repetitions (best of)")
    ap.add_argument(
        "--tutorial-max", default="150k", help="largest size for the osmnx-tutorial way"
    )
    ap.add_argument("--no-loads", action="store_true", help="skip the PBF/GraphML/cache loads")
    ap.add_argument("--no-cli", action="store_true", help="skip the CLI runs")
    a = ap.parse_args()
    sizes = [s for s in a.sizes.split(",") if s]
    bent_sizes = set(a.bent_sizes.split(","))
    tut_max = SIZES[a.tutorial_max] if a.tutorial_max in SIZES else 0
    standard = preset("tancheng").with_mode("walk")
    print(f"SYNTHETIC grids; {os.cpu_count()} cores; every tier on the walk network")
    rows = []
    for size in sizes:
        net, fac, res = scenario(SIZES[size])
        for kind in ("straight", "bent"):
            if kind == "bent" and size not in bent_sizes:
                continue
            n = net if kind == "straight" else bend(net, a.pieces)
            with Timer() as t_j:
                n.junctions()
            fl = floor(n, fac, res, standard, a.reps)
            us = ours(n, fac, res, standard, a.reps)
            row = {
                "size": size,
                "kind": kind,
                "vertices": n.n_nodes,
                "junctions": RoutingGraph.from_network(n).n_junctions,
                "residents": len(res),
                "facilities": len(fac),
                "contract_s": t_j.s,
                **{f"ours_{k}": v for k, v in us.items()},
                **{f"floor_{k}": v for k, v in fl.items()},
            }
            row["ratio_warm"] = us["warm"] / fl["warm"]
            row["ratio_warm_xy"] = us["warm"] / fl["warm_xy"]
            row["ratio_first"] = us["first"] / fl["first"]
            if kind == "bent" and SIZES[size] <= tut_max:
                row["tutorial_s"] = tutorial(n, fac, res, standard)
                row["speedup_vs_tutorial"] = row["tutorial_s"] / us["warm"]
            print(
                f"[{size} {kind}] {row['vertices']:,} vertices / {row['junctions']:,} junctions, "
                f"{len(res):,} residents, {len(fac):,} facilities: contraction {t_j.s:.2f} s; "
                f"snap {us['snap']:.3f} s + route {us['route']:.3f} s = {us['warm']:.3f} s warm "
                f"({us['first']:.2f} s first) vs floor {fl['warm']:.3f} s warm "
                f"({fl['first']:.2f} s first): "
                f"{row['ratio_warm']:.2f}x warm, {row['ratio_first']:.2f}x first "
                f"({row['ratio_warm_xy']:.2f}x the floor without its projection, "
                f"{fl['warm_xy']:.3f} s)"
                + (
                    f"; osmnx-tutorial way {row['tutorial_s']:.1f} s "
                    f"({row['speedup_vs_tutorial']:.1f}x slower)"
                    if "tutorial_s" in row
                    else ""
                ),
                flush=True,
            )
            if kind == "straight" and not (a.no_loads and a.no_cli):
                with tempfile.TemporaryDirectory() as tmp:
                    folder = Path(tmp)
                    with Timer() as t_w:
                        files = write_inputs(n, fac, res, folder)
                    if not a.no_loads:
                        ld = loads(files, folder / "cache")
                        for k, v in ld.items():
                            row[f"load_{k}_s"], row[f"load_{k}_mb"] = v["s"], v["rss_mb"]
                        print(
                            f"[{size} load] PBF {ld['pbf']['s']:.2f} s / "
                            f"{ld['pbf']['rss_mb']:,.0f} MB, GraphML {ld['graphml']['s']:.2f} s / "
                            f"{ld['graphml']['rss_mb']:,.0f} MB, "
                            f"cache {ld['cache']['s']:.3f} s / {ld['cache']['rss_mb']:,.0f} MB "
                            f"(input files written in {t_w.s:.1f} s)",
                            flush=True,
                        )
                    if not a.no_cli:
                        c = cli(files, folder)
                        row["cli_s"], row["cli_mb"] = c["s"], c["rss_mb"]
                        row["cli_write_s"] = c.get("write_coverage_outputs", float("nan"))
                        row["cli_coverage_s"] = c.get("run_coverage", float("nan"))
                        out = folder / "out"
                        size_mb = sum(f.stat().st_size for f in out.iterdir()) / 1e6
                        parts = ", ".join(
                            f"{k[2:]} {v:.2f} s" for k, v in c.items() if k.startswith("t_")
                        )
                        print(
                            f"[{size} CLI] lifecircle coverage, warm cache: {c['s']:.2f} s "
                            "end to end "
                            f"(run_coverage {row['cli_coverage_s']:.2f} s: {parts}; writing "
                            f"{row['cli_write_s']:.2f} s; the rest is imports, parsing, summary), "
                            f"peak {c['rss_mb']:,.0f} MB (outputs {size_mb:,.0f} MB)",
                            flush=True,
                        )
            rows.append(row)
            del n
    print(f"peak RSS of this process: {peak_rss_mb():,.0f} MB")
    frame = pd.DataFrame(rows)
    for kind in ("straight", "bent"):
        f = frame[frame["kind"] == kind]
        if len(f) >= 2:
            v = f["vertices"].tolist()
            print(
                f"growth exponent ({kind}, {f['size'].iloc[0]} -> {f['size'].iloc[-1]}): ours warm "
                f"{exponent(v, f['ours_warm'].tolist()):.2f}, "
                f"floor {exponent(v, f['floor_warm'].tolist()):.2f}"
                + (
                    f", CLI {exponent(v, f['cli_s'].tolist()):.2f}"
                    if "cli_s" in f and f["cli_s"].notna().all()
                    else ""
                )
            )
    cols = [
        c
        for c in (
            "size",
            "kind",
            "vertices",
            "junctions",
            "ours_snap",
            "ours_route",
            "ours_warm",
            "ours_first",
            "floor_warm",
            "ratio_warm",
            "ratio_warm_xy",
            "ratio_first",
            "tutorial_s",
            "speedup_vs_tutorial",
            "load_pbf_s",
            "load_graphml_s",
            "load_graphml_mb",
            "load_cache_s",
            "cli_s",
            "cli_write_s",
            "cli_mb",
        )
        if c in frame
    ]
    with pd.option_context("display.width", 250, "display.max_columns", 30):
        print(frame[cols].round(3).to_string(index=False))


if __name__ == "__main__":
    main()

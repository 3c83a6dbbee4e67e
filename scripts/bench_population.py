"""Benchmark: distributing a 100 m population raster over the county-scale demo (issue 12).

Prints figures; it is not a test. (The clip benchmark of issue 12 lives in the network part's
script; this one covers the population part only.)

Scenario (SYNTHETIC): the county-scale Tancheng demo (``lifecircle.demo.generate(scale="county")``,
>= 100,000 network nodes over the whole county, 885,156 people), its resident points rasterised
into a WorldPop-like GeoTIFF of 3 arc-second cells (about 100 m; EPSG:4326, float32, nodata
outside the county) covering the county's bounding box.

Measured in one run:
- lifecircle: ``population.distribute_raster`` (read, select the cells in the network's area,
  transform the cell squares, clip the streets to every cell, split by largest remainder);
- baseline: every cell's people at its centre point (read, select, centres) — what a user does
  without dasymetric placement — and snapping those centres to the network;
- conservation: people in the raster, in the area, placed.

Target (issue 12): <= 10 s for the dasymetric distribution.

Usage::

    python scripts/bench_population.py [--demo-dir DIR]   # generates the county demo if missing
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_common import Timer, peak_rss_mb
from lifecircle.demo import generate
from lifecircle.network import load_network
from lifecircle.population import distribute_raster, network_area
from lifecircle.snapping import snap_to_network

CELL_DEG = 3.0 / 3600.0  # WorldPop's 3 arc-seconds, about 100 m


def write_raster(demo: Path, out: Path, background: float = 0.0) -> tuple[int, float]:
    """Rasterise the demo's resident points into a GeoTIFF; return (cells, people).

    ``background`` people are added to every cell (an unconstrained WorldPop grid has people in
    every cell, a constrained one only in built-up cells).
    """
    import pandas as pd
    import rasterio
    from rasterio.transform import from_origin

    res = pd.read_csv(demo / "residents.csv", comment="#")
    lon, lat, pop = res["lon"].to_numpy(), res["lat"].to_numpy(), res["population"].to_numpy()
    west, north = (
        np.floor(lon.min() / CELL_DEG) * CELL_DEG,
        np.ceil(lat.max() / CELL_DEG) * CELL_DEG,
    )
    width = int(np.ceil((lon.max() - west) / CELL_DEG)) + 1
    height = int(np.ceil((north - lat.min()) / CELL_DEG)) + 1
    col = ((lon - west) / CELL_DEG).astype(int)
    row = ((north - lat) / CELL_DEG).astype(int)
    grid = np.zeros((height, width), dtype="float64")
    np.add.at(grid, (row, col), pop)
    grid += background
    data = np.where(grid > 0, grid, -99999.0).astype("float32")
    with rasterio.open(
        out,
        "w",
        driver="GTiff",
        height=height,
        width=width,
        count=1,
        dtype="float32",
        crs="EPSG:4326",
        transform=from_origin(west, north, CELL_DEG, CELL_DEG),
        nodata=-99999.0,
    ) as ds:
        ds.write(data, 1)
    return height * width, float(grid.sum())


def baseline_centres(net, path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Cell centres with their people (the non-dasymetric way), in the area, in network metres."""
    import rasterio
    import shapely
    from pyproj import Transformer

    with rasterio.open(path) as ds:
        data = np.ma.filled(ds.read(1, masked=True).astype(float), 0.0)
        t = ds.transform
        crs = ds.crs
    rows, cols = np.nonzero(data > 0)
    cx = t.a * (cols + 0.5) + t.b * (rows + 0.5) + t.c
    cy = t.d * (cols + 0.5) + t.e * (rows + 0.5) + t.f
    x, y = Transformer.from_crs(crs.to_wkt(), net.crs, always_xy=True).transform(cx, cy)
    inside = shapely.contains_xy(network_area(net, 300.0), x, y)
    return np.asarray(x)[inside], np.asarray(y)[inside], data[rows, cols][inside]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--demo-dir", type=Path, default=Path(tempfile.gettempdir()) / "lc_county")
    args = ap.parse_args(argv)
    demo = args.demo_dir
    if not (demo / "scenario.toml").exists():
        with Timer() as t_gen:
            generate(demo, scale="county")
        print(f"generated the county-scale demo in {t_gen.s:.1f} s -> {demo}")
    with Timer() as t_net:
        net = load_network(demo / "roads.osm", mode="walk")
    print(f"walk network: {net.n_nodes:,} nodes, {net.n_edges:,} edges (loaded in {t_net.s:.1f} s)")
    for label, background in (("constrained (built-up cells only)", 0.0), ("every cell", 0.5)):
        tif = demo / f"population_100m_{background:g}.tif"
        n_cells, people = write_raster(demo, tif, background)
        print(
            f"\nraster, {label}: {n_cells:,} cells of 3 arc-seconds (~100 m), {people:,.1f} people"
        )
        run_one(net, tif)
    print(f"peak memory: {peak_rss_mb():,.0f} MB")
    return 0


def run_one(net, tif: Path) -> None:
    """Time the baseline and the dasymetric distribution of one raster; print the figures."""

    with Timer() as t_base:
        bx, by, bpop = baseline_centres(net, tif)
    with Timer() as t_snap:
        snapped = snap_to_network(net, bx, by)
    print(
        f"baseline (people at cell centres): {t_base.s:.2f} s for {len(bx):,} cells, "
        f"+ snapping them {t_snap.s:.2f} s; mean access leg {snapped.access_m.mean():.1f} m"
    )
    with Timer() as t_lc:
        rp = distribute_raster(net, tif, margin_m=300.0)
    s = rp.summary()
    print(
        f"lifecircle dasymetric distribution: {t_lc.s:.2f} s (target <= 10 s) -> "
        f"{s['points']:,} street points from {s['cells_used']:,} cells "
        f"({s['cells_without_street']:,} cells without a street, people at the cell centre)"
    )
    print(
        f"people: raster {s['raster_sum']:,.1f}, in the area {s['raster_sum_in_area']:,.1f}, "
        f"placed {s['population_placed']:,.1f} (baseline at centres {bpop.sum():,.1f})"
    )


if __name__ == "__main__":
    raise SystemExit(main())

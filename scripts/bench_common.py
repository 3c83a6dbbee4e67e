"""The shared synthetic benchmark scenario (imported by the bench_*.py scripts).

A seeded, perturbed street grid of about 150,000 nodes (388 x 388 nodes, 55 m blocks, ~21 km
square, 18 % of the links removed so blocks differ in size), placed in UTM 50N at Tancheng;
200,000 resident points scattered around a few density centres; 1,587 facilities in the five
Tancheng tiers (1/1/16/146/1,423). SYNTHETIC: for timing only.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import pandas as pd

from lifecircle.network import RoadNetwork, from_arrays

CRS = "EPSG:32650"
ORIGIN = (395_000.0, 3_820_000.0)
TIER_COUNTS = {
    "county_centre": 1,
    "subdistrict_centre": 1,
    "community_centre": 16,
    "station": 146,
    "point": 1423,
}


@dataclass
class BenchScenario:
    network: RoadNetwork
    facilities: pd.DataFrame  # id, name, tier, lon, lat, x, y
    residents: pd.DataFrame  # id, population, elderly, children, lon, lat, x, y


def make_network(
    side: int = 388, spacing_m: float = 55.0, drop: float = 0.18, seed: int = 7
) -> RoadNetwork:
    rng = np.random.default_rng(seed)
    ix, iy = np.meshgrid(np.arange(side), np.arange(side))
    x = ORIGIN[0] + ix.ravel() * spacing_m + rng.uniform(-12, 12, side * side)
    y = ORIGIN[1] + iy.ravel() * spacing_m + rng.uniform(-12, 12, side * side)
    ids = np.arange(side * side).reshape(side, side)
    u = np.concatenate([ids[:, :-1].ravel(), ids[:-1, :].ravel()])
    v = np.concatenate([ids[:, 1:].ravel(), ids[1:, :].ravel()])
    keep = rng.random(len(u)) >= drop
    u, v = u[keep], v[keep]
    used = np.unique(np.concatenate([u, v]))
    remap = np.full(side * side, -1)
    remap[used] = np.arange(len(used))
    return from_arrays(
        x[used],
        y[used],
        remap[u],
        remap[v],
        crs=CRS,
        mode="walk",
        source=f"synthetic benchmark grid (seed {seed})",
    )


def make_scenario(n_residents: int = 200_000, seed: int = 7) -> BenchScenario:
    net = make_network(seed=seed)
    rng = np.random.default_rng(seed + 1)
    minx, miny, maxx, maxy = net.bounds
    # residents around density centres, clipped to the network's extent
    centres = rng.uniform([minx, miny], [maxx, maxy], size=(12, 2))
    which = rng.integers(0, len(centres), n_residents)
    pts = centres[which] + rng.normal(0, 2500, size=(n_residents, 2))
    pts[:, 0] = np.clip(pts[:, 0], minx, maxx)
    pts[:, 1] = np.clip(pts[:, 1], miny, maxy)
    pop = rng.integers(1, 20, n_residents).astype(float)
    lon, lat = net.to_lonlat(pts[:, 0], pts[:, 1])
    residents = pd.DataFrame(
        {
            "id": [f"R{i}" for i in range(n_residents)],
            "population": pop,
            "elderly": np.floor(pop * 0.14),
            "children": np.floor(pop * 0.25),
            "lon": lon,
            "lat": lat,
            "x": pts[:, 0],
            "y": pts[:, 1],
        }
    )
    tiers = np.repeat(list(TIER_COUNTS), list(TIER_COUNTS.values()))
    fpts = rng.uniform([minx, miny], [maxx, maxy], size=(len(tiers), 2))
    flon, flat = net.to_lonlat(fpts[:, 0], fpts[:, 1])
    facilities = pd.DataFrame(
        {
            "id": [f"F{i}" for i in range(len(tiers))],
            "name": [f"{t} {i}" for i, t in enumerate(tiers)],
            "tier": tiers,
            "lon": flon,
            "lat": flat,
            "x": fpts[:, 0],
            "y": fpts[:, 1],
        }
    )
    return BenchScenario(net, facilities, residents)


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far, in MB (Linux ru_maxrss is in KiB)."""
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


class Timer:
    """``with Timer() as t: ...; t.s`` — wall-clock seconds."""

    def __enter__(self) -> Timer:
        self.t0 = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        self.s = time.perf_counter() - self.t0

"""Entry points of the SYNTHETIC demo generator: :func:`generate` and :func:`ensure_demo`."""

from __future__ import annotations

import json
import logging
import os
import time
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Final, Literal

import numpy as np
from shapely.geometry import Point, Polygon, shape

from lifecircle.coords import convert
from lifecircle.demo.county import _build_county
from lifecircle.demo.facilities import _place_facilities
from lifecircle.demo.files import (
    _csv_text,
    _errors_rows,
    _fmt,
    _geojson,
    _population_scenario_toml,
    _population_table_text,
    _readme,
    _scenario_toml,
    _write_text,
)
from lifecircle.demo.network import _node_ways, _write_osm
from lifecircle.demo.residents import _finalise_residents
from lifecircle.demo.scene import _SYNTH_NOTE, _Frame, _parts, _Scene
from lifecircle.demo.town import _build_town
from lifecircle.demo.units import _build_units, _subdistrict_local
from lifecircle.errors import InputError

logger = logging.getLogger(__name__)


#: Where ``lifecircle demo`` and :func:`ensure_demo` put the town-scale scenario, relative to the
#: current working directory (the repository keeps the committed copy there).
DEFAULT_DEMO_DIR: Final = Path("data") / "demo" / "tancheng"
#: File name of the county outline shipped as package data (``lifecircle/_data``).
OUTLINE_NAME: Final = "tancheng_county_wgs84.geojson"


def packaged_outline() -> Traversable:
    """The real Tancheng county outline (WGS84 GeoJSON) shipped inside the package.

    Returns
    -------
    importlib.resources.abc.Traversable
        The package-data file ``lifecircle/_data/tancheng_county_wgs84.geojson`` (a plain
        :class:`~pathlib.Path` for an ordinary installation); its provenance is in the README
        next to it.
    """
    return resources.files("lifecircle") / "_data" / OUTLINE_NAME


#: The county outline shipped with the package (WGS84).
DEFAULT_BOUNDARY_PATH: Final = packaged_outline()


def _load_boundary(path: str | Path | None) -> Polygon:
    """The largest polygon of the county outline at ``path`` (default: the packaged outline)."""
    src: Path | Traversable = Path(path) if path is not None else DEFAULT_BOUNDARY_PATH
    if not src.is_file():
        raise InputError(
            f"County outline not found: {src}. Pass boundary_path= with a GeoJSON outline "
            "(WGS84), or reinstall lifecircle (it ships the Tancheng outline as package data)."
        )
    try:
        doc = json.loads(src.read_text(encoding="utf-8"))
        feats = doc["features"] if doc.get("type") == "FeatureCollection" else [doc]
        geoms = [shape(f["geometry"] if "geometry" in f else f) for f in feats]
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise InputError(f"Cannot read the county outline {src}: {exc}") from exc
    polys = [g for g0 in geoms for g in _parts(g0, "Polygon")]
    if not polys:
        raise InputError(f"The county outline {src} holds no polygon.")
    return max(polys, key=lambda g: g.area)


def _county_reference(boundary_path: str | Path | None, out: Path) -> str:
    """How ``scenario.toml`` names the county outline.

    A given outline is named relative to the scenario folder (so that a repository can move as a
    whole), or absolutely when no relative path exists (another drive). The packaged outline is
    named by its absolute installed path.
    """
    if boundary_path is None:
        return Path(str(DEFAULT_BOUNDARY_PATH)).resolve().as_posix()
    boundary_file = Path(boundary_path).resolve()
    try:
        return Path(os.path.relpath(boundary_file, out.resolve())).as_posix()
    except ValueError:  # Windows: another drive
        return boundary_file.as_posix()


def generate(
    out_dir: str | Path,
    *,
    seed: int = 2020,
    scale: Literal["town", "county"] = "town",
    boundary_path: str | Path | None = None,
) -> dict[str, Path]:
    """Generate the SYNTHETIC Tancheng demonstration scenario.

    Parameters
    ----------
    out_dir : str or Path
        Output directory (created if needed). Existing files of the same names are overwritten.
    seed : int, default 2020
        Random seed. The same seed gives byte-identical files.
    scale : {"town", "county"}, default "town"
        ``"town"``: the county seat (郯城街道, about 200,000 people, 16 communities, 108 grids).
        ``"county"``: the town plus 15 townships and several hundred villages over the whole
        county outline (885,156 people, >= 100,000 network nodes); not committed.
    boundary_path : str or Path, optional
        County outline (GeoJSON, WGS84). Defaults to the real Tancheng outline shipped with the
        package (:func:`packaged_outline`). ``scenario.toml`` names a given outline relative to
        ``out_dir``, the packaged one by its absolute path.

    Returns
    -------
    dict of str to Path
        ``roads``, ``residents``, ``facilities``, ``facilities_with_errors``, ``communities``,
        ``grids``, ``subdistrict``, ``scenario`` and ``readme``.

    Raises
    ------
    InputError
        If the county outline is missing or unreadable, or ``scale`` is unknown.
    """
    if scale not in ("town", "county"):
        raise InputError(f"Unknown demo scale {scale!r}: use 'town' or 'county'.")
    t0 = time.perf_counter()
    out = Path(out_dir)
    outline_ll = _load_boundary(boundary_path)
    frame = _Frame()
    county = frame.geom_to_local(outline_ll)
    scene = _Scene(seed=int(seed), scale=scale, county=county)
    if not county.contains(Point(0.0, 0.0).buffer(6000.0)):
        raise InputError(
            "The county outline does not contain the synthetic town (centre 118.337 E, 34.614 N)."
        )
    town = _build_town(scene)
    sd_local = _subdistrict_local(scene, town)
    if scale == "county":
        _build_county(scene, sd_local, town)
    t1 = time.perf_counter()
    net = _node_ways(scene)
    t2 = time.perf_counter()
    res = _finalise_residents(scene)
    town_m = np.array([g == "town" for g in res.group])
    units = _build_units(
        scene, frame, sd_local, town, res.xy[town_m], res.pop[town_m].astype(float)
    )
    facilities = _place_facilities(scene, frame, net, res, units)
    t3 = time.perf_counter()

    out.mkdir(parents=True, exist_ok=True)
    paths = {
        "roads": out / "roads.osm",
        "residents": out / "residents.csv",
        "facilities": out / "facilities.csv",
        "facilities_with_errors": out / "facilities_with_errors.csv",
        "communities": out / "communities.geojson",
        "grids": out / "grids.geojson",
        "subdistrict": out / "subdistrict.geojson",
        "scenario": out / "scenario.toml",
        "population_table": out / "community_population.csv",
        "scenario_population_table": out / "scenario_population_table.toml",
        "readme": out / "README.md",
    }
    osm_stats = _write_osm(paths["roads"], frame, scene, net)
    # residents
    lon, lat = frame.to_lonlat(res.xy[:, 0], res.xy[:, 1])
    rrows = [
        [
            f"R{k + 1:06d}",
            res.name[k],
            res.kind[k],
            _fmt(lon[k]),
            _fmt(lat[k]),
            int(res.pop[k]),
            int(res.elderly[k]),
            int(res.children[k]),
        ]
        for k in range(len(lon))
    ]
    _write_text(
        paths["residents"],
        _csv_text(
            ["id", "name", "kind", "lon", "lat", "population", "elderly", "children"], rrows, seed
        ),
    )
    # facilities (GCJ-02)
    fx = np.array([r["x"] for r in facilities])
    fy = np.array([r["y"] for r in facilities])
    flon, flat = frame.to_lonlat(fx, fy)
    glon, glat = convert(flon, flat, "wgs84", "gcj02")
    frows = [[r["id"], r["name"], r["tier"], r["kind"], _fmt(float(glon[k])), _fmt(float(glat[k]))]
             for k, r in enumerate(facilities)]  # fmt: skip
    header = ["id", "name", "tier", "kind", "lon", "lat"]
    _write_text(paths["facilities"], _csv_text(header, frows, seed))
    _write_text(paths["facilities_with_errors"], _csv_text(header, _errors_rows(frows), seed))
    # units
    desc = f"{_SYNTH_NOTE} seed={seed}; SYNTHETIC units, not real boundaries"
    comm_feats = [({"community_id": cid, "name": n, "kind": "community", "synthetic": True}, g)
                  for cid, n, g in units.communities]  # fmt: skip
    comm_feats += [({"community_id": tid, "name": n, "kind": "township", "synthetic": True}, g)
                   for tid, n, g in units.townships]  # fmt: skip
    _write_text(paths["communities"], _geojson("tancheng_communities_SYNTHETIC", desc, comm_feats))
    grid_feats = [({"grid_id": gid, "community_id": cid, "name": n, "synthetic": True}, g)
                  for gid, cid, n, g in units.grids]  # fmt: skip
    grid_feats += [
        (
            {
                "grid_id": f"{tid}-G01",
                "community_id": tid,
                "name": f"{n}（整体）",
                "synthetic": True,
            },
            g,
        )
        for tid, n, g in units.townships
    ]
    _write_text(paths["grids"], _geojson("tancheng_grids_SYNTHETIC", desc, grid_feats))
    _write_text(
        paths["subdistrict"],
        _geojson(
            "tancheng_subdistrict_SYNTHETIC",
            desc,
            [({"name": "郯城街道", "synthetic": True}, units.subdistrict)],
        ),
    )
    # the census-style population table per community (GB18030, title row) for the variant
    # that places people from community polygons instead of points
    comm_all = [*units.communities, *units.townships]
    paths["population_table"].write_bytes(
        _population_table_text(comm_all, lon, lat, res.pop, res.elderly, res.children, seed)
    )
    # scenario + README
    county_rel = _county_reference(boundary_path, out)
    bridges = sum(1 for _, t, _ in net.ways if t.get("bridge") == "yes")
    tunnels = sum(1 for _, t, _ in net.ways if t.get("tunnel") == "yes")
    stats = {
        "population": int(res.pop.sum()),
        "county_rel": county_rel,
        "nodes": osm_stats["nodes"],
        "ways": osm_stats["ways"],
        "residents": len(res.pop),
        "bridges": bridges,
        "underpasses": tunnels,
        "villages": len(scene.villages),
    }
    _write_text(paths["scenario"], _scenario_toml(seed, scale, stats))
    _write_text(paths["scenario_population_table"], _population_scenario_toml(seed, scale, stats))
    weak_names = [f"{cid} {n}" for cid, n, _ in units.communities if cid in units.weak]
    _write_text(paths["readme"], _readme(seed, scale, stats, scene.islands, weak_names))
    logger.info(
        "SYNTHETIC Tancheng demo (%s, seed %d) written to %s: %d nodes, %d ways, %d residents, "
        "population %d; build %.1fs, noding %.1fs, units/facilities %.1fs, total %.1fs",
        scale, seed, out, stats["nodes"], stats["ways"], stats["residents"], stats["population"],
        t1 - t0, t2 - t1, t3 - t2, time.perf_counter() - t0,
    )  # fmt: skip
    return paths


def ensure_demo(out_dir: str | Path = DEFAULT_DEMO_DIR, *, seed: int = 2020) -> Path:
    """Generate the town-scale demo into ``out_dir`` unless its ``scenario.toml`` exists.

    Parameters
    ----------
    out_dir : str or Path, default :data:`DEFAULT_DEMO_DIR`
        Scenario directory.
    seed : int, default 2020
        Seed used if the scenario has to be generated.

    Returns
    -------
    Path
        The path of ``scenario.toml``.
    """
    scenario = Path(out_dir) / "scenario.toml"
    if not scenario.is_file():
        logger.info("No demo scenario at %s: generating it (seed %d)", out_dir, seed)
        generate(out_dir, seed=seed)
    return scenario

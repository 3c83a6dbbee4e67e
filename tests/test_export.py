"""GIS export: layers, schemas, CRSs, RFC 7946, Shapefile details, round trips, bad requests."""

from __future__ import annotations

import json
import re
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely

from conftest import GRID_ORIGIN, export_inputs
from lifecircle.errors import CRSError, InputError, OutputExistsError
from lifecircle.export import (
    LAYER_BUILDERS,
    ExportSources,
    LayerUnavailableError,
    build_layers,
    export_layers,
    field_table,
    layer_fields,
    layer_geojson,
    read_back,
    resolve_output_crs,
    schema_markdown,
)
from lifecircle.pipeline import Inputs, run_coverage, run_export
from lifecircle.routing import RoutingGraph, nearest_sources
from lifecircle.units import unit_coverage

X0, Y0 = GRID_ORIGIN
TIERS = ("county_centre", "subdistrict_centre", "community_centre", "station", "point")
DOCS = Path(__file__).resolve().parents[1] / "docs" / "gis-export.md"


@pytest.fixture(scope="module")
def inputs() -> Inputs:
    return export_inputs()


@pytest.fixture(scope="module")
def run(inputs):
    return run_coverage(inputs)


@pytest.fixture(scope="module")
def layers(run):
    return build_layers(ExportSources(run), ["facilities", "residents", "units", "network"])


# -- layers and schema ---------------------------------------------------------------------


def test_layers_follow_the_documented_schema(layers):
    for name in ("facilities", "residents", "units", "network"):
        g = layers[name]
        assert g.crs.to_epsg() == 4326
        assert [c for c in g.columns if c != "geometry"] == [
            f.name for f in layer_fields(name, TIERS)
        ]
    assert "t1_dist_m" in field_table(layers["residents"], "residents", TIERS)["field"].tolist()


def test_population_within_standard_is_an_independent_network_count(run, layers):
    """Each site's population within its tier's standard, from one single-source search each."""
    fac = layers["facilities"].set_index("id")
    res = run.result
    pop = res.residents["population"].to_numpy()
    std = res.standard
    for i, row in res.facilities.reset_index(drop=True).iterrows():
        tier = std.tier(row["tier"])
        graph = RoutingGraph.from_network(run.inputs.networks[tier.mode])
        d = nearest_sources(
            graph,
            res.facility_located.positions(tier.mode).subset(np.array([i])),
            res.resident_located.positions(tier.mode),
        ).distance_m
        within = d <= tier.threshold_m
        assert fac.loc[row["id"], "population_within"] == pytest.approx(pop[within].sum())
        assert fac.loc[row["id"], "residents_within"] == within.sum()
    # with two stations, the overlap makes population_within exceed the catchment
    st = fac[fac["tier"] == "station"]
    assert (st["population_within"] >= st["catchment_population"]).all()
    assert st["population_within"].sum() > st["catchment_population"].sum()
    assert fac.loc["S1", "tier_label"] == "服务站" and fac.loc["S1", "threshold_m"] == 500


def test_units_match_report_and_add_up(run, layers):
    u = layers["units"]
    pop = run.result.residents["population"].sum()
    # residents in the hole of C1 belong to no unit; everything else is in exactly one
    assert u["population"].sum() <= pop
    assert u["residents"].sum() + 0 <= len(run.result.residents)
    level = run.inputs.unit_levels()[1]
    ref = unit_coverage(run.result, level).set_index("unit_id")
    for _, r in u.iterrows():
        assert r["population"] == pytest.approx(ref.loc[r["unit_id"], "population"])
        for key in (*TIERS, "all"):
            assert r[f"{key}_population_covered"] == pytest.approx(
                ref.loc[r["unit_id"], f"{key}_population_covered"]
            )
            assert r[f"{key}_share"] == pytest.approx(
                ref.loc[r["unit_id"], f"{key}_share"], nan_ok=True
            )


def test_network_layer_lengths(run, layers):
    net = layers["network"]
    assert len(net) == sum(len(n.edge_u) for n in run.inputs.networks.values())
    assert set(net["mode"]) == {"walk", "bike"}
    utm = net.to_crs(run.inputs.crs)
    np.testing.assert_allclose(utm.geometry.length, net["length_m"], atol=0.01)


@pytest.mark.parametrize("doc", [DOCS, DOCS.parents[1] / "README.md"], ids=["docs", "README"])
def test_schema_table_in_docs_matches_code(doc):
    # README.md is refreshed with scripts/update_schema_docs.py
    text = doc.read_text(encoding="utf-8")
    for line in schema_markdown().splitlines():
        if line.startswith("| `"):
            assert line in text, f"{doc.name} is missing or has a stale row: {line}"


# -- CRS choice ----------------------------------------------------------------------------


def test_gauss_kruger_zone_is_chosen_from_the_data():
    c = resolve_output_crs("cgcs2000-gk", lon_range=(118.10, 118.58))  # Tancheng county
    assert c.name == "EPSG:4548" and c.tag == "epsg4548" and not c.geographic
    assert "117E" in c.reason and "118.3400E" in c.reason
    assert resolve_output_crs("cgcs2000-gk", lon_range=(118.6, 119.2)).name == "EPSG:4549"
    edge = resolve_output_crs("cgcs2000-gk", lon_range=(118.2, 118.7))
    assert edge.name == "EPSG:4548" and "outside that zone" in edge.reason
    assert resolve_output_crs("cgcs2000-gk:120").name == "EPSG:4549"
    assert resolve_output_crs("EPSG:4326").name == "wgs84"
    assert resolve_output_crs("CGCS2000").pyproj_crs().to_epsg() == 4490
    for bad in ("cgcs2000-gk:118", "cgcs2000-gk:x", "gcj03", "EPSG:0"):
        with pytest.raises(CRSError):
            resolve_output_crs(bad, lon_range=(118.1, 118.5))
    with pytest.raises(CRSError, match="cgcs2000-gk:<CM>"):
        resolve_output_crs("cgcs2000-gk")
    with pytest.raises(CRSError, match="outside China"):
        resolve_output_crs("cgcs2000-gk", lon_range=(24.8, 25.0))


# -- round trips ---------------------------------------------------------------------------


def _metres_apart(a: gpd.GeoSeries, b: gpd.GeoSeries, crs: str) -> np.ndarray:
    ga = np.asarray(a.set_crs(4326, allow_override=True).to_crs(crs).values)
    gb = np.asarray(b.set_crs(4326, allow_override=True).to_crs(crs).values)
    return np.asarray(shapely.hausdorff_distance(ga, gb))


def _same_attributes(got: pd.DataFrame, want: pd.DataFrame) -> None:
    for c in want.columns:
        if c == "geometry":
            continue
        w, g = want[c], got[c]
        if pd.api.types.is_float_dtype(w):
            np.testing.assert_allclose(
                g.to_numpy(float),
                w.replace([np.inf, -np.inf], np.nan).to_numpy(float),
                rtol=1e-12,
                atol=1e-9,
                err_msg=c,
            )
        elif pd.api.types.is_bool_dtype(w):
            assert (g.astype(bool).to_numpy() == w.to_numpy()).all(), c
        elif pd.api.types.is_integer_dtype(w):
            assert (g.astype(np.int64).to_numpy() == w.to_numpy()).all(), c
        else:
            assert (
                g.fillna("").astype(str).to_numpy() == w.fillna("").astype(str).to_numpy()
            ).all(), c


TOLERANCE_M = {
    "wgs84": 0.1,
    "cgcs2000": 0.1,
    "cgcs2000-gk": 0.01,
    "EPSG:32650": 0.01,
    "gcj02": 0.5,
    "bd09": 0.5,
}


@pytest.mark.parametrize("fmt", ["geojson", "gpkg", "shp"])
@pytest.mark.parametrize("crs", list(TOLERANCE_M))
def test_round_trip(layers, run, tmp_path, fmt, crs):
    out = tmp_path / ("x.gpkg" if fmt == "gpkg" else "out")
    res = export_layers(layers, out, fmt, crs, tier_keys=TIERS)
    if crs == "cgcs2000-gk":
        assert res.crs.name == "EPSG:4548"  # the grid lies at 115.9E: zone CM 117E
    for name, want in layers.items():
        path = res.paths[name][0]
        if fmt != "gpkg":
            assert res.crs.tag in path.name
        back = read_back(path, layer=name if fmt == "gpkg" else None, crs=res.crs)
        assert len(back) == len(want)
        assert list(back.columns[:-1]) == list(want.columns[:-1])
        _same_attributes(back, want)
        err = _metres_apart(back.geometry, want.geometry, run.inputs.crs)
        assert err.max() < TOLERANCE_M[crs], (name, err.max())


@pytest.mark.parametrize("crs", ["wgs84", "cgcs2000-gk", "gcj02"])
def test_csv_round_trip(layers, run, tmp_path, crs):
    res = export_layers(layers, tmp_path, "csv", crs, tier_keys=TIERS)
    for name, want in layers.items():
        got = pd.read_csv(res.paths[name][0], keep_default_na=False, na_values=[""])
        if "wkt" in got.columns:
            geoms = shapely.from_wkt(got["wkt"].to_numpy(str))
        else:
            cols = ("lon", "lat") if res.crs.geographic else ("easting", "northing")
            geoms = shapely.points(got[cols[0]].to_numpy(float), got[cols[1]].to_numpy(float))
            assert "x" not in got.columns and "y" not in got.columns
            # WGS84 lon/lat always: in the CRS's own columns, or beside easting/northing
            wlon, wlat = ("lon", "lat") if not res.crs.geographic else ("wgs84_lon", "wgs84_lat")
            if not res.crs.is_wgs84:
                wgs = shapely.points(got[wlon].to_numpy(float), got[wlat].to_numpy(float))
                err = _metres_apart(gpd.GeoSeries(wgs), want.geometry, run.inputs.crs)
                assert err.max() < 0.1, name  # 7 decimals from coordinates rounded to 6 or 2
        back = res.crs.transform_geometries(np.asarray(geoms), inverse=True)
        err = _metres_apart(gpd.GeoSeries(back), want.geometry, run.inputs.crs)
        assert err.max() < TOLERANCE_M[crs]
        assert len(got) == len(want)
        # sidecars name the CRS: .prj (read by pyproj) and _crs.txt (EPSG code first)
        _csv, prj, crs_txt = res.paths[name]
        assert prj.suffix == ".prj" and crs_txt.name.endswith("_crs.txt")
        first = crs_txt.read_text(encoding="utf-8").splitlines()[0]
        if not res.crs.obfuscated:
            from pyproj import CRS

            code = res.crs.pyproj_crs().to_epsg()
            assert CRS.from_user_input(first).to_epsg() == code
            assert CRS.from_wkt(prj.read_text(encoding="utf-8")).to_epsg() == code
        else:
            assert first == "gcj02" and "GCJ-02" in prj.read_text(encoding="utf-8")
        if not res.crs.geographic:
            assert "northing" in crs_txt.read_text(encoding="utf-8")
            assert ("easting" in got.columns) == ("wkt" not in got.columns)
    fac = pd.read_csv(res.paths["facilities"][0])
    assert fac["name"].tolist() == layers["facilities"]["name"].tolist()  # Chinese intact


# -- GeoJSON -------------------------------------------------------------------------------


def _rings(geom: dict) -> list[tuple[int, list]]:
    polys = (
        [geom["coordinates"]]
        if geom["type"] == "Polygon"
        else (geom["coordinates"] if geom["type"] == "MultiPolygon" else [])
    )
    return [(i, ring) for poly in polys for i, ring in enumerate(poly)]


def _signed_area(ring: list) -> float:
    xy = np.asarray(ring)
    return 0.5 * float(np.sum(xy[:-1, 0] * xy[1:, 1] - xy[1:, 0] * xy[:-1, 1]))


def _decimals(text: str) -> int:
    nums = re.findall(r"-?\d+\.(\d+)", text)
    return max(len(n) for n in nums)


def _coord_text(data: dict) -> str:
    return json.dumps([f["geometry"]["coordinates"] for f in data["features"]])


@pytest.mark.parametrize("crs", ["wgs84", "cgcs2000-gk"])
def test_rfc7946_winding_ranges_and_crs_member(layers, tmp_path, crs):
    # a clockwise polygon with a counter-clockwise hole, to see both flipped
    bad = shapely.Polygon(
        shapely.get_coordinates(layers["units"].geometry.iloc[1].exterior)[::-1],
        holes=[shapely.get_coordinates(layers["units"].geometry.iloc[0].interiors[0])[::-1]],
    )
    extra = gpd.GeoDataFrame({"name": ["顺时针"]}, geometry=[bad], crs="EPSG:4326")
    res = export_layers({**layers, "cw": extra}, tmp_path, "geojson", crs, tier_keys=TIERS)
    for name in ("units", "cw", "facilities"):
        raw = res.paths[name][0].read_bytes()
        data = json.loads(raw.decode("utf-8"))
        rings = [r for f in data["features"] for r in _rings(f["geometry"])]
        for i, ring in rings:
            assert (_signed_area(ring) > 0) == (i == 0), "exterior CCW, holes CW"
        coords = np.array(
            [
                c
                for f in data["features"]
                for c in np.reshape(
                    shapely.get_coordinates(shapely.geometry.shape(f["geometry"])), (-1, 2)
                )
            ]
        )
        if crs == "wgs84":
            assert "crs" not in data
            assert (np.abs(coords[:, 0] - 115.91) < 0.1).all() and (
                np.abs(coords[:, 1] - 34.6) < 0.1
            ).all()
            assert _decimals(_coord_text(data)) <= 6
        else:
            assert data["crs"]["properties"]["name"].endswith("EPSG::4548")
            assert res.paths[name][0].name == f"{name}_epsg4548.geojson"
            assert (coords[:, 0] > 300_000).all() and (coords[:, 1] > 3_800_000).all()
            assert _decimals(_coord_text(data)) <= 2
    assert "顺时针".encode() in res.paths["cw"][0].read_bytes()  # UTF-8, not \u escapes
    assert "西社区".encode() in res.paths["units"][0].read_bytes()


def test_geojson_precision_option(layers, tmp_path):
    res = export_layers(
        {"facilities": layers["facilities"]}, tmp_path, "geojson", "wgs84", precision=3
    )
    data = json.loads(res.paths["facilities"][0].read_text(encoding="utf-8"))
    assert _decimals(_coord_text(data)) <= 3
    with pytest.raises(InputError, match="precision"):
        export_layers(layers, tmp_path / "p", "geojson", precision=20)


def test_gcj02_geojson_declares_itself(layers, tmp_path):
    res = export_layers({"facilities": layers["facilities"]}, tmp_path, "geojson", "gcj02")
    path = res.paths["facilities"][0]
    assert path.name == "facilities_gcj02.geojson"
    data = json.loads(path.read_text(encoding="utf-8"))
    assert "GCJ-02" in data["crs"]["properties"]["name"]
    assert gpd.read_file(path).crs.name == "GCJ-02"  # GDAL reads the declaration back
    # the shift is the GCJ-02 one (hundreds of metres), not a datum change
    d = _metres_apart(gpd.read_file(path).geometry, layers["facilities"].geometry, "EPSG:32650")
    assert (d > 100).all()


def test_layer_geojson_in_memory(layers):
    text = layer_geojson(layers["units"], name="units")
    data = json.loads(text)
    assert data["type"] == "FeatureCollection" and "crs" not in data and len(data["features"]) == 2
    assert data["features"][0]["properties"]["name"] == "西社区"
    gk = json.loads(layer_geojson(layers["units"], crs="cgcs2000-gk"))
    assert gk["crs"]["properties"]["name"].endswith("EPSG::4548")


# -- Shapefile -----------------------------------------------------------------------------


def test_shapefile_cpg_prj_and_field_sidecar(layers, tmp_path):
    res = export_layers(layers, tmp_path, "shp", "cgcs2000-gk", tier_keys=TIERS)
    shp = res.paths["residents"][0]
    assert shp.name == "residents_epsg4548.shp"
    assert shp.with_suffix(".cpg").read_text().strip().upper() in ("UTF-8", "UTF8")
    from pyproj import CRS

    assert CRS.from_wkt(shp.with_suffix(".prj").read_text()).to_epsg() == 4548
    fields = pd.read_csv(tmp_path / "residents_epsg4548_fields.csv")
    raw = gpd.read_file(shp)
    assert list(raw.columns[:-1]) == fields["field"].tolist()
    assert all(len(f) <= 10 for f in fields["field"])
    row = fields.set_index("name").loc["community_centre_distance_m"]
    assert row["field"] == "t3_dist_m" and row["unit"] == "m"
    units_raw = gpd.read_file(res.paths["units"][0])
    assert set(units_raw["name"]) == {"西社区", "东社区"}


def test_field_names_truncate_predictably():
    g = gpd.GeoDataFrame(
        {
            "population_density_per_ha": [1.0],
            "population_density_per_km2": [2.0],
            "Population_density_x": [3.0],
            "score": [4.0],
        },
        geometry=[shapely.Point(0, 0)],
        crs=4326,
    )
    ft = field_table(g, "candidates", TIERS)
    assert ft["field"].tolist() == ["pop_densit", "pop_dens_2", "pop_dens_3", "score"]


# -- bad requests write nothing ------------------------------------------------------------


def test_unknown_layer_crs_format(inputs, run, tmp_path):
    out = tmp_path / "o"
    with pytest.raises(InputError, match=r"unknown layer.*bogus"):
        run_export(inputs, out=out, layers="facilities,bogus", coverage=run)
    with pytest.raises(CRSError, match="unknown coordinate system"):
        run_export(inputs, out=out, layers="facilities", crs="gcj03", coverage=run)
    with pytest.raises(InputError, match="unknown format"):
        run_export(inputs, out=out, layers="facilities", fmt="kml", coverage=run)
    with pytest.raises(InputError, match="give a folder"):
        run_export(inputs, out=tmp_path / "a.geojson", layers="facilities", coverage=run)
    assert not out.exists() or not any(out.iterdir())


def test_unavailable_layers_write_nothing(inputs, run, tmp_path):
    no_units = Inputs(
        standard=inputs.standard,
        networks=inputs.networks,
        facilities=inputs.facilities,
        residents=inputs.residents,
    )
    with pytest.raises(
        LayerUnavailableError, match=r"'units' is not available.*nothing was written"
    ):
        run_export(no_units, out=tmp_path, layers="facilities,units", coverage=run)
    assert not any(tmp_path.iterdir())
    from importlib.util import find_spec

    for layer, module in (("service_areas", "service_areas"), ("candidates", "siting")):
        if find_spec(f"lifecircle.{module}") is None:
            with pytest.raises(LayerUnavailableError, match=f"lifecircle.{module}"):
                run_export(inputs, out=tmp_path, layers=f"facilities,{layer}", coverage=run)
            with pytest.raises(LayerUnavailableError):
                build_layers(ExportSources(run), [layer])
    assert not any(tmp_path.iterdir())
    assert set(LAYER_BUILDERS) == {
        "facilities",
        "residents",
        "service_areas",
        "catchments",
        "gaps",
        "units",
        "candidates",
        "network",
        "rejects",
    }


def test_precomputed_layers_are_used(run, tmp_path):
    sa = gpd.GeoDataFrame(
        {
            "facility_id": ["F3"],
            "name": ["社区中心"],
            "tier": ["community_centre"],
            "budget_min": [15.0],
            "budget_m": [1000.0],
            "area_m2": [1.0],
            "population": [5.0],
        },
        geometry=[shapely.box(X0, Y0, X0 + 100, Y0 + 100)],
        crs="EPSG:32650",
    )
    built = build_layers(ExportSources(run, service_areas=sa), ["service_areas"])
    assert built["service_areas"].crs.to_epsg() == 4326
    ft = field_table(built["service_areas"], "service_areas", TIERS)
    assert ft.set_index("name").loc["facility_id", "field"] == "fac_id"


def test_refuses_to_overwrite_and_never_writes_partially(layers, tmp_path):
    res = export_layers(layers, tmp_path, "geojson", "wgs84", tier_keys=TIERS)
    before = {p: p.read_bytes() for ps in res.paths.values() for p in ps}
    with pytest.raises(OutputExistsError, match="--overwrite"):
        export_layers(layers, tmp_path, "geojson", "wgs84", precision=2)
    assert all(p.read_bytes() == b for p, b in before.items())
    export_layers(layers, tmp_path, "geojson", "wgs84", precision=2, overwrite=True)
    assert any(p.read_bytes() != b for p, b in before.items())


@pytest.mark.parametrize("fmt", ["shp", "gpkg", "geojson", "csv"])
def test_failure_while_writing_leaves_nothing(layers, tmp_path, monkeypatch, fmt):
    """The second layer fails to write: not even the first one appears."""
    import lifecircle.export as ex
    import lifecircle.export.writers as writers

    calls = {"n": 0}
    real_to_file, real_to_csv = gpd.GeoDataFrame.to_file, pd.DataFrame.to_csv
    real_geojson = writers._geojson

    def failing(self, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:
            raise RuntimeError("disk full")
        real = {"csv": real_to_csv, "geojson": real_geojson}.get(fmt, real_to_file)
        return real(self, *args, **kwargs)

    if fmt == "geojson":  # GeoJSON is written by lifecircle._files, not GDAL
        monkeypatch.setattr(writers, "_geojson", failing)
    else:
        monkeypatch.setattr(
            pd.DataFrame if fmt == "csv" else gpd.GeoDataFrame,
            "to_csv" if fmt == "csv" else "to_file",
            failing,
        )
    out = tmp_path / ("o.gpkg" if fmt == "gpkg" else "o")
    with pytest.raises(RuntimeError, match="disk full"):
        ex.export_layers({"facilities": layers["facilities"], "units": layers["units"]}, out, fmt)
    assert calls["n"] == 2
    assert not out.exists() or list(out.iterdir()) == []
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_gpkg_multi_layer(layers, tmp_path):
    import pyogrio

    res = export_layers(layers, tmp_path / "r.gpkg", "gpkg", "cgcs2000", tier_keys=TIERS)
    names = [n for n, _ in pyogrio.list_layers(tmp_path / "r.gpkg")]
    assert names == [*layers, "layer_styles"]  # and QGIS's style table
    assert gpd.read_file(res.paths["units"][0], layer="units").crs.to_epsg() == 4490


# -- command line --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def helsinki_files(tmp_path_factory, helsinki_walk):
    d = tmp_path_factory.mktemp("export_cli")
    rng = np.random.default_rng(3)
    minx, miny, maxx, maxy = helsinki_walk.bounds
    cx, cy = (minx + maxx) / 2, (miny + maxy) / 2
    lon, lat = helsinki_walk.to_lonlat(
        cx + rng.uniform(-600, 600, 200), cy + rng.uniform(-400, 400, 200)
    )
    pd.DataFrame(
        {
            "id": [f"R{i}" for i in range(200)],
            "lon": lon,
            "lat": lat,
            "population": rng.integers(1, 20, 200),
        }
    ).to_csv(d / "res.csv", index=False)
    tiers = [
        "county_centre",
        "subdistrict_centre",
        "community_centre",
        "station",
        "station",
        "point",
        "point",
    ]
    flon, flat = helsinki_walk.to_lonlat(
        cx + rng.uniform(-600, 600, 7), cy + rng.uniform(-400, 400, 7)
    )
    fac = pd.DataFrame(
        {"id": [f"F{i}" for i in range(7)], "name": "站点", "tier": tiers, "lon": flon, "lat": flat}
    )
    pd.concat(
        [
            fac,
            pd.DataFrame(
                {"id": ["X"], "name": "far", "tier": ["point"], "lon": [116.39], "lat": [39.9]}
            ),
        ]
    ).to_csv(d / "fac.csv", index=False)
    return d


def test_cli_export(helsinki_files, helsinki_pbf, tmp_path, capsys):
    from lifecircle.cli import main

    d = helsinki_files
    common = [
        "export",
        "--network",
        str(helsinki_pbf),
        "--facilities",
        str(d / "fac.csv"),
        "--residents",
        str(d / "res.csv"),
    ]
    out = tmp_path / "h.gpkg"
    assert (
        main(
            [
                *common,
                "--layers",
                "facilities,residents,network",
                "--format",
                "gpkg",
                "--crs",
                "EPSG:3067",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    printed = capsys.readouterr().out
    assert "EPSG:3067" in printed and "facilities" in printed
    fac = gpd.read_file(out, layer="facilities")
    assert fac.crs.to_epsg() == 3067 and len(fac) == 7
    rejects = pd.read_csv(tmp_path / "h_rejects.csv")
    assert rejects["reason"].tolist() == ["outside_network_area"]
    # bad requests: one-line error, exit 1, nothing written
    for extra, msg in (
        (["--layers", "bogus"], "unknown layer"),
        (["--layers", "units"], "not available"),
        (["--layers", "facilities", "--crs", "cgcs2000-gk"], "outside China"),
        (["--crs", "mars2"], "unknown coordinate system"),
    ):
        assert main([*common, *extra, "--out", str(tmp_path / "bad")]) == 1
        err = capsys.readouterr().err
        assert msg in err and "Traceback" not in err
    assert not (tmp_path / "bad").exists() or not any((tmp_path / "bad").iterdir())
    assert main([*common, "--layers", "facilities", "--format", "gpkg", "--out", str(out)]) == 1
    assert "--overwrite" in capsys.readouterr().err
    # GIS options: service-area bands, GBK Shapefiles
    shp = tmp_path / "shp"
    argv = [*common, "--layers", "service_areas,facilities", "--format", "shp"]
    argv += ["--minutes", "3,5", "--rings", "--shp-encoding", "cp936", "--out", str(shp)]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "rejects.csv" in printed
    sa = read_back(shp / "service_areas.shp", encoding="cp936")
    assert set(sa["budget_min"]) == {3.0, 5.0} and sa.geometry.is_valid.all()
    assert (shp / "service_areas.cpg").read_text(encoding="ascii").strip() in ("936", "CP936")
    assert (shp / "service_areas.qml").exists()


def test_layers_from_other_modules(inputs, run, tmp_path):
    """service_areas, catchments (lifecircle.service_areas), gaps (lifecircle.report) and
    candidates (lifecircle.siting) through the full pipeline, as Shapefiles in Gauss-Krüger."""
    res = run_export(
        inputs,
        out=tmp_path,
        layers="service_areas,catchments,gaps,candidates",
        fmt="shp",
        crs="cgcs2000-gk",
        coverage=run,
        score_tier="station",
        candidates="auto",
    )
    for name in ("service_areas", "catchments", "gaps", "candidates"):
        back = read_back(res.paths[name][0], crs=res.crs)
        assert len(back) == res.features[name] > 0
    sa = read_back(res.paths["service_areas"][0], crs=res.crs)
    assert set(sa["facility_id"]) == set(inputs.facilities.frame["id"])
    assert {"budget_m", "population", "area_m2"} <= set(sa.columns)
    # the service area of a site reaches everyone counted in its population_within
    fac = build_layers(ExportSources(run), ["facilities"])["facilities"].set_index("id")
    for _, r in sa.iterrows():
        assert r["population"] == pytest.approx(fac.loc[r["facility_id"], "population_within"])
    cat = read_back(res.paths["catchments"][0], crs=res.crs)
    assert cat.groupby("tier")["population"].sum().loc["station"] == pytest.approx(
        fac.loc[fac["tier"] == "station", "catchment_population"].sum()
    )
    gaps = read_back(res.paths["gaps"][0], crs=res.crs)
    assert gaps["shortfall_m"].gt(0).all()
    fields = pd.read_csv(tmp_path / "candidates_epsg4548_fields.csv").set_index("name")
    assert fields.loc["marginal_gain_population", "field"] == "gain_pop"

"""GIS staff: every layer valid in every CRS and format, GeoPackage 1.2 with aliases, styles and
descriptions, QML sidecars, CP936 Shapefiles, the rejects layer, ``--layers all``, GDAL checks."""

from __future__ import annotations

import shutil
import sqlite3
import subprocess
import xml.etree.ElementTree as ET
from contextlib import closing
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pyogrio
import pytest
import shapely
from pyproj import CRS

from conftest import export_inputs
from lifecircle._palette import GAP_COLOUR, SHARE_COLOURS, TIER_COLOURS
from lifecircle.errors import InputError
from lifecircle.export import (
    LAYER_BUILDERS,
    ExportMeta,
    ExportSources,
    build_layers,
    export_layers,
    field_table,
    layer_fields,
    read_back,
    resolve_output_crs,
    write_service_areas,
)
from lifecircle.io import REJECT_COLUMNS, PointTable
from lifecircle.pipeline import Inputs, run_coverage, run_export, run_scoring
from lifecircle.runs import CoverageRun

CRSS = ("wgs84", "cgcs2000", "cgcs2000-gk", "gcj02", "bd09", "EPSG:32650")
FORMATS = ("geojson", "gpkg", "shp", "csv")


def _with_rejects(inputs: Inputs) -> Inputs:
    """The export grid with two rejected resident rows: one off the map area (placeable), one
    whose coordinates do not parse."""
    res = inputs.residents
    assert res is not None
    lon, lat = res.frame["lon"].iloc[0] + 0.01, res.frame["lat"].iloc[0]
    rejects = pd.DataFrame(
        {
            "file": ["res.csv", "res.csv"],
            "row": [70, 71],
            "id": ["R70", "R71"],
            "reason": ["outside_network_area", "bad_coordinates"],
            "detail": ["the point is 900 m from the nearest street", "lon 'abc' is not a number"],
            "lon": [lon, np.nan],
            "lat": [lat, np.nan],
        }
    )[REJECT_COLUMNS]
    table = PointTable("residents", "res.csv", "wgs84", res.frame, rejects, len(res.frame) + 2)
    return Inputs(
        standard=inputs.standard,
        networks=inputs.networks,
        facilities=inputs.facilities,
        residents=table,
        units=inputs.units,
    )


@pytest.fixture(scope="module")
def run() -> CoverageRun:
    return run_coverage(_with_rejects(export_inputs()))


@pytest.fixture(scope="module")
def all_layers(run: CoverageRun) -> dict[str, gpd.GeoDataFrame]:
    """Every layer: candidates scored for the station tier among automatic candidate sites."""
    scored = run_scoring(run.inputs, tier="station", candidates="auto:20", select_k=2)
    layers = build_layers(ExportSources(run, candidates=scored), list(LAYER_BUILDERS))
    assert all(len(g) for g in layers.values())
    return layers


@pytest.fixture(scope="module")
def meta(run: CoverageRun) -> ExportMeta:
    return ExportMeta(standard=run.inputs.standard, synthetic=True, date="2026-01-02")


# -- every layer x CRS x format --------------------------------------------------------------


@pytest.mark.parametrize("crs", CRSS)
@pytest.mark.parametrize("fmt", FORMATS)
def test_every_layer_valid_and_read_back(all_layers, meta, tmp_path, fmt, crs):
    out = tmp_path / ("x.gpkg" if fmt == "gpkg" else "out")
    res = export_layers(all_layers, out, fmt, crs, meta=meta)
    want_crs = res.crs.pyproj_crs()
    for name, want in all_layers.items():
        path = res.paths[name][0]
        if fmt == "csv":
            got = pd.read_csv(path, keep_default_na=False, na_values=[""])
            assert len(got) == len(want), name
            prj = CRS.from_wkt(res.paths[name][1].read_text(encoding="utf-8"))
            if res.crs.obfuscated:
                assert ("GCJ-02" if crs == "gcj02" else "BD-09") in prj.name
            else:
                assert prj.to_epsg() == want_crs.to_epsg(), name
            if "wkt" in got.columns:
                geoms = shapely.from_wkt(got["wkt"].to_numpy(str))
                assert shapely.is_valid(geoms).all(), name
            continue
        raw = gpd.read_file(path, layer=name if fmt == "gpkg" else None, engine="pyogrio")
        assert len(raw) == len(want), (name, len(raw), len(want))
        assert raw.crs is not None
        if res.crs.obfuscated:
            assert ("GCJ-02" if crs == "gcj02" else "BD-09") in raw.crs.name
        else:
            assert raw.crs.equals(want_crs, ignore_axis_order=True), (name, raw.crs)
        bad = ~shapely.is_valid(np.asarray(raw.geometry.values))
        assert not bad.any(), (name, shapely.is_valid_reason(raw.geometry[bad].iloc[0]))
        if fmt != "gpkg":
            style = path.with_suffix(".qml")
            ET.fromstring(style.read_text(encoding="utf-8").split("\n", 1)[1])


def test_a_polygon_broken_by_projection_and_rounding_is_repaired(tmp_path):
    """A ring with a notch 3 mm wide in Gauss-Krüger metres is valid in WGS84, but rounding to
    1 cm collapses the notch into a self-overlap; the export repairs it (and would not without)."""
    ocrs = resolve_output_crs("cgcs2000-gk:117")
    x0, y0 = 500_000.0, 3_830_000.0
    # a "C" whose tips come within 4 mm of each other across a notch
    ring_gk = np.array(
        [
            (x0, y0),
            (x0 + 100, y0),
            (x0 + 100, y0 + 50.001),
            (x0 + 1, y0 + 50.001),
            (x0 + 1, y0 + 50.004),
            (x0 + 100, y0 + 50.004),
            (x0 + 100, y0 + 100),
            (x0, y0 + 100),
        ]
    )
    lon, lat = ocrs.to_wgs84(ring_gk[:, 0], ring_gk[:, 1])
    poly = shapely.Polygon(np.column_stack([lon, lat]))
    assert poly.is_valid
    naive = shapely.transform(
        shapely.Polygon(np.column_stack(ocrs.from_wgs84(lon, lat))), lambda xy: np.round(xy, 2)
    )
    assert not naive.is_valid  # what the writer used to produce
    g = gpd.GeoDataFrame({"name": ["C"]}, geometry=[poly], crs=4326)
    res = export_layers({"catchments": g}, tmp_path, "geojson", ocrs)
    back = gpd.read_file(res.paths["catchments"][0])
    assert back.geometry.is_valid.all()
    assert abs(back.geometry.area.iloc[0] - 100 * 100) < 1.0


# -- GeoPackage: version, aliases, styles, descriptions ----------------------------------------


def _sql(path: Path, query: str, *args: object) -> list[tuple]:
    with closing(sqlite3.connect(path)) as con:
        return con.execute(query, args).fetchall()


def test_geopackage_version_aliases_styles_descriptions(all_layers, meta, run, tmp_path):
    path = tmp_path / "t.gpkg"
    export_layers(all_layers, path, "gpkg", "cgcs2000-gk", meta=meta)
    assert _sql(path, "PRAGMA application_id") == [(0x47504B47,)]  # "GPKG"
    assert _sql(path, "PRAGMA user_version") == [(10200,)]  # 1.2.0
    labels = {t.key: t.label_zh for t in run.inputs.standard.tiers}
    for name, g in all_layers.items():
        # an alias and a description for every field, from the one schema
        cols = dict(
            (r[0], (r[1], r[2]))
            for r in _sql(
                path,
                "SELECT column_name, name, description FROM gpkg_data_columns WHERE table_name=?",
                name,
            )
        )
        fields = [c for c in g.columns if c != "geometry"]
        assert set(cols) == set(fields), name
        ft = field_table(g, name, run.inputs.standard.keys, labels).set_index("name")
        for c in fields:
            assert cols[c][0] == ft.loc[c, "alias_zh"] and cols[c][1], (name, c)
        # one default style per layer, well-formed QML
        styles = _sql(
            path,
            "SELECT styleQML, useAsDefault, f_geometry_column FROM layer_styles "
            "WHERE f_table_name=?",
            name,
        )
        geom_col = _sql(
            path, "SELECT column_name FROM gpkg_geometry_columns WHERE table_name=?", name
        )
        assert len(styles) == 1 and styles[0][1] == 1, name
        assert [(styles[0][2],)] == geom_col, name
        root = ET.fromstring(styles[0][0].split("\n", 1)[1])
        assert root.tag == "qgis" and root.find("renderer-v2") is not None
        aliases = {a.get("field"): a.get("name") for a in root.iter("alias")}
        assert aliases == {c: cols[c][0] for c in fields}
        # layer description: what, standard, CRS, date, synthetic
        ident, desc = _sql(
            path, "SELECT identifier, description FROM gpkg_contents WHERE table_name=?", name
        )[0]
        assert ident != name and desc.count("EPSG:4548") and "2026-01-02" in desc
        assert "SYNTHETIC" in desc and run.inputs.standard.name in desc
    units = dict(
        _sql(path, "SELECT column_name, name FROM gpkg_data_columns WHERE table_name='units'")
    )
    assert units["station_share"] == f"{labels['station']}达标率(0-1)"
    assert units["population"] == "人口(人)"
    ext = _sql(path, "SELECT table_name FROM gpkg_extensions WHERE extension_name='gpkg_schema'")
    assert ("gpkg_data_columns",) in ext


def test_qml_renderers_use_the_map_palette(all_layers, meta, tmp_path):
    path = tmp_path / "t.gpkg"
    export_layers(all_layers, path, "gpkg", "wgs84", meta=meta)
    qml = dict(_sql(path, "SELECT f_table_name, styleQML FROM layer_styles"))

    def colours(layer: str) -> list[str]:
        root = ET.fromstring(qml[layer].split("\n", 1)[1])
        return [
            o.get("value")
            for o in root.iter("Option")
            if o.get("name") in ("color", "outline_color", "line_color")
        ]

    def rgb(h: str) -> str:
        return ",".join(str(int(h[i : i + 2], 16)) for i in (1, 3, 5))

    fac = ET.fromstring(qml["facilities"].split("\n", 1)[1]).find("renderer-v2")
    assert fac.get("type") == "categorizedSymbol" and fac.get("attr") == "tier"
    cats = [c.get("value") for c in fac.iter("category")]
    assert cats == list(meta.tier_keys)
    fac_colours = colours("facilities")
    for k in range(len(cats)):
        assert any(c.startswith(rgb(TIER_COLOURS[k])) for c in fac_colours)
    units = ET.fromstring(qml["units"].split("\n", 1)[1]).find("renderer-v2")
    assert units.get("type") == "graduatedSymbol" and units.get("attr") == "all_share"
    assert [r.get("lower") for r in units.iter("range")] == ["0", "0.2", "0.4", "0.6", "0.8"]
    assert all(any(c.startswith(rgb(h)) for c in colours("units")) for h in SHARE_COLOURS)
    gap_fill = ET.fromstring(qml["gaps"].split("\n", 1)[1])
    opts = {o.get("name"): o.get("value") for o in gap_fill.iter("Option")}
    assert opts["style"] == "no" and opts["outline_color"].startswith(rgb(GAP_COLOUR))
    catch = ET.fromstring(qml["catchments"].split("\n", 1)[1]).find("renderer-v2")
    assert catch.get("attr") == "tier"


@pytest.mark.skipif(shutil.which("ogrinfo") is None, reason="gdal-bin (ogrinfo) not installed")
def test_geopackage_passes_gdal_checks(all_layers, meta, tmp_path):
    """GDAL's command-line reader (gdal-bin: 3.6 on Debian 12, the QGIS 3.28 LTR era) opens
    every layer without a warning, with its feature count and description; SQLite's integrity
    check passes."""
    path = tmp_path / "t.gpkg"
    export_layers(all_layers, path, "gpkg", "cgcs2000-gk", meta=meta)
    run_ = subprocess.run(
        ["ogrinfo", "-ro", "-al", "-so", str(path)], capture_output=True, text=True, check=False
    )
    assert run_.returncode == 0, run_.stderr
    assert "Warning" not in run_.stderr and "ERROR" not in run_.stderr, run_.stderr
    for name, g in all_layers.items():
        assert f"Layer name: {name}" in run_.stdout
        block = run_.stdout.split(f"Layer name: {name}")[1].split("Layer name:")[0]
        assert f"Feature Count: {len(g)}" in block, name
        assert "DESCRIPTION=" in block and "SYNTHETIC" in block, name  # from gpkg_contents
    check = subprocess.run(
        ["ogrinfo", "-ro", str(path), "-sql", "PRAGMA integrity_check"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert check.returncode == 0 and "integrity_check (String) = ok" in check.stdout, check.stdout
    # 1.4 (GDAL's own default in recent versions) is what the old reader warns about
    old = tmp_path / "v14.gpkg"
    export_layers({"facilities": all_layers["facilities"]}, old, "gpkg", gpkg_version="1.4")
    assert _sql(old, "PRAGMA user_version") == [(10400,)]


# -- Shapefile --------------------------------------------------------------------------------


def test_cp936_shapefile_reads_back_with_gbk(all_layers, meta, tmp_path):
    res = export_layers(
        {k: all_layers[k] for k in ("facilities", "residents", "units")},
        tmp_path,
        "shp",
        "cgcs2000",
        meta=meta,
        shp_encoding="cp936",
    )
    shp = res.paths["facilities"][0]
    assert shp.with_suffix(".cpg").read_text(encoding="ascii").strip() in ("936", "CP936")
    dbf = shp.with_suffix(".dbf").read_bytes()
    assert "县中心".encode("cp936") in dbf and "县中心".encode() not in dbf
    raw = gpd.read_file(shp, encoding="cp936")
    assert raw["name"].tolist() == all_layers["facilities"]["name"].tolist()
    # booleans as integers 0/1, the mapping in the sidecar
    assert pd.api.types.is_integer_dtype(raw["off_net"]) and set(raw["off_net"]) <= {0, 1}
    fields = pd.read_csv(shp.with_name("facilities_cgcs2000_fields.csv"))
    row = fields.set_index("field").loc["off_net"]
    assert row["type"] == "bool" and row["values"] == "1 = true, 0 = false"
    assert row["alias_zh"] == "不在路网上(1是0否)"
    back = read_back(shp, encoding="cp936")
    assert back["off_network"].dtype == bool
    assert (back["off_network"] == all_layers["facilities"]["off_network"]).all()
    units = gpd.read_file(res.paths["units"][0], encoding="cp936")
    assert set(units["name"]) == {"西社区", "东社区"}
    # the QML sidecar names the short fields
    root = ET.fromstring(shp.with_suffix(".qml").read_text(encoding="utf-8").split("\n", 1)[1])
    assert {a.get("field") for a in root.iter("alias")} == set(fields["field"])
    # and carries the layer description as metadata
    assert root.findtext("resourceMetadata/title") == "公共服务设施"
    assert "SYNTHETIC" in root.findtext("resourceMetadata/abstract")


def test_cp936_refuses_text_it_cannot_store(all_layers, tmp_path):
    fac = all_layers["facilities"].copy()
    fac.loc[2, "name"] = "便民点\U0001f3e5"
    with pytest.raises(InputError, match=r"feature 3, field name.*--shp-encoding utf-8"):
        export_layers({"facilities": fac}, tmp_path, "shp", shp_encoding="cp936")
    assert not any(tmp_path.iterdir())
    with pytest.raises(InputError, match="unknown Shapefile encoding"):
        export_layers({"facilities": fac}, tmp_path, "shp", shp_encoding="big5")
    with pytest.raises(InputError, match="unknown GeoPackage version"):
        export_layers({"facilities": fac}, tmp_path / "a.gpkg", "gpkg", gpkg_version="1.0")


def test_utf8_shapefile_booleans_are_integers(all_layers, tmp_path):
    res = export_layers({"residents": all_layers["residents"]}, tmp_path, "shp")
    shp = res.paths["residents"][0]
    assert shp.with_suffix(".cpg").read_text(encoding="ascii").strip().upper() == "UTF-8"
    info = pyogrio.read_info(shp)
    types = dict(zip(info["fields"], info["dtypes"], strict=True))
    assert types["all_cov"].startswith("int")


# -- rejects, --layers all, service areas, isochrones ---------------------------------------


def test_rejects_layer_places_rows_with_coordinates(all_layers, run):
    rej = all_layers["rejects"]
    assert len(run.inputs.rejects()) == 2 and len(rej) == 1  # the other has no coordinates
    assert rej.iloc[0]["reason"] == "outside_network_area" and rej.iloc[0]["row"] == 70
    assert list(rej.columns[:-1]) == [f.name for f in layer_fields("rejects", ())]


def test_run_export_all_skips_what_it_cannot_build_and_adds_rejects(run, tmp_path):
    res = run_export(run.inputs, out=tmp_path / "a.gpkg", layers="all", fmt="gpkg", coverage=run)
    assert set(res.skipped) == {"candidates"}
    assert "--score-tier" in res.skipped["candidates"]
    layers = {n for n, _ in pyogrio.list_layers(tmp_path / "a.gpkg")}
    assert layers == {n for n in LAYER_BUILDERS if n != "candidates"} | {"layer_styles"}
    assert res.features["rejects"] == 1 and res.features["rejects_csv"] == 2
    # GeoJSON exports get the rejects layer too, without asking
    res2 = run_export(run.inputs, out=tmp_path / "g", layers="facilities", coverage=run)
    assert set(res2.features) == {"facilities", "rejects", "rejects_csv"}


def test_export_service_area_budgets_and_rings(run, tmp_path):
    res = run_export(
        run.inputs,
        out=tmp_path / "s.gpkg",
        layers="service_areas",
        fmt="gpkg",
        coverage=run,
        area_minutes=[3, 6],
        area_rings=True,
    )
    g = gpd.read_file(tmp_path / "s.gpkg", layer="service_areas")
    assert res.features["service_areas"] == len(g)
    assert set(g["budget_min"]) == {3.0, 6.0}
    outer = g[g["budget_min"] == 6.0]
    assert (outer["ring_from_min"] == 3.0).all()
    assert g.geometry.is_valid.all()


def test_write_service_areas_in_gauss_kruger(all_layers, meta, tmp_path):
    areas = all_layers["service_areas"]
    out = write_service_areas(areas, tmp_path / "sa.geojson", crs="cgcs2000-gk", meta=meta)
    back = gpd.read_file(out)
    assert back.crs.to_epsg() == 4548 and len(back) == len(areas)
    assert back.geometry.is_valid.all()
    assert out.with_suffix(".qml").exists()
    gp = write_service_areas(areas, tmp_path / "sa.gpkg", crs="EPSG:4548", meta=meta)
    assert _sql(gp, "PRAGMA user_version") == [(10200,)]
    assert len(_sql(gp, "SELECT * FROM layer_styles")) == 1
    assert CRS.from_user_input(gpd.read_file(gp, layer="service_areas").crs).to_epsg() == 4548


def test_cli_layers_all_names_what_it_skipped(tmp_path, capsys):
    from lifecircle.cli import main
    from test_service import write_scenario

    (tmp_path / "s").mkdir()
    scenario = write_scenario(tmp_path / "s", n_residents=40)
    out = tmp_path / "all.gpkg"
    argv = ["export", "--scenario", str(scenario), "--layers", "all", "--format", "gpkg"]
    assert main([*argv, "--crs", "cgcs2000-gk", "--out", str(out), "--no-cache"]) == 0
    printed = capsys.readouterr().out
    assert "skipped candidates:" in printed and "--score-tier" in printed
    layers = {n for n, _ in pyogrio.list_layers(out)} - {"layer_styles"}
    assert layers == set(LAYER_BUILDERS) - {"candidates", "rejects"}
    assert _sql(out, "PRAGMA user_version") == [(10200,)]
    # with --score-tier the candidates are built too; --gpkg-version is honoured
    out2 = tmp_path / "all14.gpkg"
    argv2 = [*argv, "--score-tier", "point", "--candidates", "auto:10", "--gpkg-version", "1.4"]
    assert main([*argv2, "--out", str(out2), "--no-cache"]) == 0
    assert "skipped candidates" not in capsys.readouterr().out
    assert "candidates" in {n for n, _ in pyogrio.list_layers(out2)}
    assert _sql(out2, "PRAGMA user_version") == [(10400,)]


def test_boolean_categories_follow_how_qgis_reads_the_field(all_layers, meta, tmp_path):
    """Residents are styled on all_covered: booleans in GeoPackage/GeoJSON, 0/1 in Shapefiles."""
    res = {"residents": all_layers["residents"]}
    gp = tmp_path / "r.gpkg"
    export_layers(res, gp, "gpkg", meta=meta)
    shp = export_layers(res, tmp_path / "shp", "shp", meta=meta).paths["residents"][-2]
    gj = export_layers(res, tmp_path / "gj", "geojson", meta=meta).paths["residents"][1]
    for text, attr, values in (
        (_sql(gp, "SELECT styleQML FROM layer_styles")[0][0], "all_covered", ["true", "false"]),
        (gj.read_text(encoding="utf-8"), "all_covered", ["true", "false"]),
        (shp.read_text(encoding="utf-8"), "all_cov", ["1", "0"]),
    ):
        renderer = ET.fromstring(text.split("\n", 1)[1]).find("renderer-v2")
        assert renderer.get("attr") == attr
        assert [c.get("value") for c in renderer.iter("category")] == values

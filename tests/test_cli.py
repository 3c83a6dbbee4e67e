"""End-to-end: the lifecircle command on real OSM data (Helsinki) with input files."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from lifecircle.cli import main


@pytest.fixture(scope="module")
def inputs(tmp_path_factory, helsinki_walk):
    d = tmp_path_factory.mktemp("cli")
    rng = np.random.default_rng(5)
    minx, miny, maxx, maxy = helsinki_walk.bounds
    cx, cy = (minx + maxx) / 2, (miny + maxy) / 2
    n = 500
    lon, lat = helsinki_walk.to_lonlat(
        cx + rng.uniform(-800, 800, n), cy + rng.uniform(-500, 500, n)
    )
    res = pd.DataFrame(
        {
            "id": [f"R{i}" for i in range(n)],
            "lon": lon,
            "lat": lat,
            "population": rng.integers(1, 30, n),
            "elderly": 1,
        }
    )
    res.loc[3, "population"] = -2
    res.to_csv(d / "res.csv", index=False)
    tiers = (
        ["county_centre", "subdistrict_centre"]
        + ["community_centre"] * 3
        + ["station"] * 8
        + ["point"] * 30
    )
    flon, flat = helsinki_walk.to_lonlat(
        cx + rng.uniform(-800, 800, len(tiers)), cy + rng.uniform(-500, 500, len(tiers))
    )
    fac = pd.DataFrame(
        {
            "id": [f"F{i}" for i in range(len(tiers))],
            "name": "site",
            "tier": tiers,
            "lon": flon,
            "lat": flat,
        }
    )
    bad = pd.DataFrame(
        {
            "id": ["F0", "X1", "X2", "X3"],
            "name": "bad",
            "tier": ["point", "卫生站", "point", "point"],
            "lon": [flon[0], flon[0], "", 116.39],
            "lat": [flat[0], flat[0], 60.1, 39.9],
        }
    )
    pd.concat([fac, bad]).to_csv(d / "fac.csv", index=False)
    return d


def run_cli(*args: str) -> int:
    return main(list(args))


def test_coverage_end_to_end(inputs: Path, helsinki_pbf: Path, capsys):
    out = inputs / "out"
    code = run_cli(
        "coverage",
        "--network",
        str(helsinki_pbf),
        "--facilities",
        str(inputs / "fac.csv"),
        "--residents",
        str(inputs / "res.csv"),
        "--out",
        str(out),
        "--no-cache",
        "--lang",
        "en",
    )
    assert code == 0
    printed = capsys.readouterr().out
    assert "point" in printed and "all tiers" in printed
    residents = pd.read_csv(out / "residents.csv", keep_default_na=False, dtype={"id": str})
    summary = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    rejects = pd.read_csv(out / "rejects.csv")
    # every input row is used or rejected, and the counts reconcile
    for kind, n_in in (("facilities", 47), ("residents", 500)):
        c = summary["inputs"][kind]
        assert c["input"] == n_in and c["input"] == c["used"] + c["rejected"]
    assert len(residents) == summary["inputs"]["residents"]["used"]
    assert (
        len(rejects)
        == summary["inputs"]["facilities"]["rejected"] + summary["inputs"]["residents"]["rejected"]
    )
    assert set(rejects["reason"]) >= {
        "duplicate_id",
        "unknown_tier",
        "missing_coordinates",
        "outside_network_area",
        "negative_population",
    }
    for key in ("county_centre", "subdistrict_centre", "community_centre", "station", "point"):
        for col in ("distance_m", "minutes", "nearest_id", "covered"):
            assert f"{key}_{col}" in residents.columns
        t = summary["tiers"][key]
        covered = residents.loc[
            residents[f"{key}_covered"].astype(str) == "True", "population"
        ].sum()
        assert t["population_covered"] == pytest.approx(covered)
        assert t["population_total"] == pytest.approx(residents["population"].sum())
        assert t["share"] == pytest.approx(covered / residents["population"].sum())
    assert set(summary["timings_s"]) >= {"load", "snap", "route", "total"}
    assert summary["tiers"]["point"]["threshold_m"] == 300


def test_coverage_tables_as_geoparquet(inputs: Path, helsinki_pbf: Path, capsys):
    """--format parquet: the same rows and values as the CSVs, typed, with WGS84 points."""
    import geopandas as gpd

    common = [
        "coverage",
        "--network",
        str(helsinki_pbf),
        "--facilities",
        str(inputs / "fac.csv"),
        "--residents",
        str(inputs / "res.csv"),
        "--no-cache",
        "--no-workbook",
    ]
    assert run_cli(*common, "--out", str(inputs / "csv_out")) == 0
    assert run_cli(*common, "--out", str(inputs / "pq_out"), "--format", "parquet") == 0
    capsys.readouterr()
    assert not (inputs / "pq_out" / "residents.csv").exists()
    assert (inputs / "pq_out" / "rejects.csv").exists()
    for kind in ("residents", "facilities"):
        gdf = gpd.read_parquet(inputs / "pq_out" / f"{kind}.parquet")
        ref = pd.read_csv(inputs / "csv_out" / f"{kind}.csv", dtype={"id": str})
        assert gdf.crs.to_epsg() == 4326 and len(gdf) == len(ref) > 0
        assert list(gdf.columns) == [*ref.columns, "geometry"]
        np.testing.assert_allclose(gdf.geometry.x, gdf["lon"])
        np.testing.assert_allclose(gdf.geometry.y, gdf["lat"])
        for col in ref.columns:
            if pd.api.types.is_float_dtype(ref[col]) and pd.api.types.is_float_dtype(gdf[col]):
                np.testing.assert_allclose(gdf[col].fillna(-1), ref[col].fillna(-1), atol=1e-6)
    res = gpd.read_parquet(inputs / "pq_out" / "residents.parquet")
    assert res["point_covered"].dtype == bool  # typed, not the text "True"
    with pytest.raises(SystemExit) as exc:
        run_cli(*common, "--out", str(inputs / "x"), "--format", "xlsx")
    assert exc.value.code == 2


def test_refuses_to_overwrite(inputs: Path, helsinki_pbf: Path, capsys):
    out = inputs / "out2"
    args = [
        "coverage",
        "--network",
        str(helsinki_pbf),
        "--facilities",
        str(inputs / "fac.csv"),
        "--residents",
        str(inputs / "res.csv"),
        "--out",
        str(out),
        "--no-cache",
        "-q",
    ]
    assert run_cli(*args) == 0
    before = (out / "residents.csv").stat().st_mtime_ns
    assert run_cli(*args) == 1
    err = capsys.readouterr().err
    assert "already exists" in err and "--overwrite" in err
    assert (out / "residents.csv").stat().st_mtime_ns == before
    assert run_cli(*args, "--overwrite") == 0


def test_errors_are_one_line_not_tracebacks(inputs: Path, helsinki_pbf: Path, capsys):
    code = run_cli(
        "coverage",
        "--network",
        str(inputs / "nope.osm"),
        "--facilities",
        "x.csv",
        "--residents",
        "y.csv",
        "--out",
        str(inputs / "o"),
    )
    err = capsys.readouterr().err
    assert code == 1 and "does not exist" in err and "Traceback" not in err
    (inputs / "nopop.csv").write_text("id,lon,lat\nR1,24.9,60.1\n")
    code = run_cli(
        "coverage",
        "--network",
        str(helsinki_pbf),
        "--facilities",
        str(inputs / "fac.csv"),
        "--residents",
        str(inputs / "nopop.csv"),
        "--out",
        str(inputs / "o"),
        "--no-cache",
    )
    err = capsys.readouterr().err
    assert code == 1 and "population" in err
    with pytest.raises(SystemExit) as exc:
        run_cli("coverage", "--mode", "fly")
    assert exc.value.code == 2


def test_module_entry_point_help():
    out = subprocess.run(
        [sys.executable, "-m", "lifecircle", "--help"], capture_output=True, text=True, check=True
    )
    assert "coverage" in out.stdout
    out = subprocess.run(
        [sys.executable, "-m", "lifecircle", "coverage", "--help"],
        capture_output=True,
        text=True,
        check=True,
    )
    for opt in (
        "--scenario",
        "--network",
        "--facilities",
        "--residents",
        "--standard",
        "--mode",
        "--max-snap-m",
        "--facilities-crs",
        "--residents-crs",
        "--out",
    ):
        assert opt in out.stdout


def test_import_is_light():
    code = (
        "import sys, lifecircle; heavy = [m for m in ('folium', 'osmnx', 'fastapi', 'geopandas', "
        "'matplotlib') if m in sys.modules]; print(heavy)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_coverage_with_units_writes_the_report(inputs: Path, helsinki_pbf: Path, helsinki_walk):
    import geopandas as gpd
    from shapely.geometry import box

    minx, miny, maxx, maxy = helsinki_walk.bounds
    cx = (minx + maxx) / 2
    west = box(minx - 1000, miny - 1000, cx, maxy + 1000)
    east = box(cx, miny - 1000, maxx + 1000, maxy + 1000)
    units = gpd.GeoDataFrame(
        {"community_id": ["W", "E"], "name": ["西", "东"]},
        geometry=[west, east],
        crs=helsinki_walk.crs,
    ).to_crs(4326)
    units.to_file(inputs / "communities.geojson")
    out = inputs / "out_units"
    code = run_cli(
        "coverage",
        "--network",
        str(helsinki_pbf),
        "--facilities",
        str(inputs / "fac.csv"),
        "--residents",
        str(inputs / "res.csv"),
        "--units",
        str(inputs / "communities.geojson"),
        "--out",
        str(out),
        "--no-cache",
        "-q",
    )
    assert code == 0
    for name in ("units_community.csv", "units.json", "gaps.csv", "report.md", "report.html"):
        assert (out / name).exists()
    tables = list(out.glob("units_*.csv"))
    per_unit = pd.concat([pd.read_csv(t) for t in tables if "subdistrict" not in t.name])
    residents = pd.read_csv(out / "residents.csv")
    # every resident is in exactly one of the two halves: populations add up
    assert per_unit["population"].sum() == pytest.approx(residents["population"].sum())
    covered = residents.loc[residents["point_covered"], "population"].sum()
    assert per_unit["point_population_covered"].sum() == pytest.approx(covered)


def _coverage_args(inputs: Path, helsinki_pbf: Path, out: Path) -> list[str]:
    return [
        "coverage",
        "--network",
        str(helsinki_pbf),
        "--facilities",
        str(inputs / "fac.csv"),
        "--residents",
        str(inputs / "res.csv"),
        "--out",
        str(out),
        "--no-cache",
    ]


def test_console_quiet_json_and_lang(inputs: Path, helsinki_pbf: Path, capsys):
    """-q prints nothing on success; --json prints only parseable JSON; --lang zh speaks Chinese."""
    assert run_cli(*_coverage_args(inputs, helsinki_pbf, inputs / "q"), "-q") == 0
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err == ""
    # every CSV the command wrote starts with a byte-order mark (Excel on Chinese Windows)
    csvs = sorted((inputs / "q").glob("*.csv"))
    assert {p.name for p in csvs} >= {"residents.csv", "facilities.csv", "rejects.csv"}
    for p in csvs:
        assert p.read_bytes().startswith(b"\xef\xbb\xbf"), p.name
    assert (inputs / "q" / "lifecircle.xlsx").exists()
    assert run_cli(*_coverage_args(inputs, helsinki_pbf, inputs / "j"), "--json") == 0
    data = json.loads(capsys.readouterr().out)
    summary = json.loads((inputs / "j" / "summary.json").read_text(encoding="utf-8"))
    assert data["tiers"] == summary["tiers"]
    assert data["inputs"]["residents"]["input"] == 500
    assert run_cli(*_coverage_args(inputs, helsinki_pbf, inputs / "z"), "--lang", "zh") == 0
    printed = capsys.readouterr().out
    assert "便民点" in printed and "全部层级" in printed and "居民：输入 500 行" in printed
    # no tier key and no English header in the Chinese summary
    assert "point" not in printed and "all tiers" not in printed


def test_console_cp1252_exits_zero(inputs: Path, helsinki_pbf: Path):
    """A console that cannot show Chinese (English Windows, cp1252) still gets exit code 0."""
    out = inputs / "cp1252"
    env = {
        "PATH": "/usr/bin:/bin",
        "PYTHONPATH": str(Path(__file__).resolve().parents[1] / "src"),
        "PYTHONIOENCODING": "cp1252",
        "LANG": "zh_CN.UTF-8",
    }
    proc = subprocess.run(
        [sys.executable, "-m", "lifecircle", *_coverage_args(inputs, helsinki_pbf, out)],
        capture_output=True,
        env=env,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr.decode("cp1252", errors="replace")
    text = proc.stdout.decode("cp1252")
    assert "?" in text and "%" in text  # Chinese replaced, the figures still there
    assert (out / "summary.json").exists()

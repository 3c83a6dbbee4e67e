"""Input files: formats, coordinate systems, and every reject reason (counts reconcile)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from lifecircle.config import preset
from lifecircle.coords import convert
from lifecircle.errors import CRSError, InputError
from lifecircle.io import load_scenario, read_points, read_units

STD = preset("tancheng")


def write(tmp_path: Path, name: str, text: str) -> Path:
    p = tmp_path / name
    p.write_text(text, encoding="utf-8")
    return p


def test_facilities_every_reject_reason(tmp_path):
    p = write(
        tmp_path,
        "fac.csv",
        "\n".join(
            [
                "# a comment line, skipped",
                "id,name,tier,lon,lat",
                "F1,甲便民点,point,118.33,34.61",  # line 3: good
                "F2,乙服务站,服务站,118.331,34.611",  # line 4: good (Chinese label)
                "F3,,point,,34.61",  # missing lon
                "F4,x,point,abc,34.61",  # non-numeric
                "F5,x,point,118.33,134.61",  # out of range
                "F1,x,point,118.33,34.61",  # duplicate id
                "F6,x,卫生站,118.33,34.61",  # unknown tier
                ",x,point,118.33,34.61",  # missing id
            ]
        )
        + "\n",
    )
    t = read_points(p, "facilities", standard=STD)
    assert t.n_input == 8 and len(t.frame) == 2 and len(t.rejects) == 6
    assert list(t.frame["tier"]) == ["point", "station"]
    r = t.rejects.set_index("row")
    assert r.loc[5, "reason"] == "missing_coordinates"
    assert r.loc[6, "reason"] == "non_numeric_coordinates" and "'abc'" in r.loc[6, "detail"]
    assert r.loc[7, "reason"] == "coordinates_out_of_range" and "swapped" in r.loc[7, "detail"]
    assert r.loc[8, "reason"] == "duplicate_id" and "row 3" in r.loc[8, "detail"]
    assert r.loc[9, "reason"] == "unknown_tier" and "便民点" in r.loc[9, "detail"]
    assert r.loc[10, "reason"] == "missing_id"
    assert set(t.rejects.columns) == {"file", "row", "id", "reason", "detail", "lon", "lat"}
    assert (t.rejects["file"] == str(p)).all()


def test_residents_population_reasons(tmp_path):
    p = write(
        tmp_path,
        "res.csv",
        "id,lon,lat,population,elderly,children\n"
        "R1,118.33,34.61,100,10,20\nR2,118.33,34.61,,,\nR3,118.33,34.61,-5,,\n"
        "R4,118.33,34.61,many,,\nR5,118.33,34.61,10,20,\nR6,118.33,34.61,0,,\n"
        "R7,118.33,34.61,10,,-1\n",
    )
    t = read_points(p, "residents")
    reasons = dict(zip(t.rejects["id"], t.rejects["reason"], strict=True))
    assert reasons == {
        "R2": "missing_population",
        "R3": "negative_population",
        "R4": "non_numeric_population",
        "R5": "bad_elderly",
        "R7": "bad_children",
    }
    assert "exceeds population" in t.rejects.set_index("id").loc["R5", "detail"]
    assert list(t.frame["id"]) == ["R1", "R6"]
    assert t.frame["population"].tolist() == [100.0, 0.0]
    assert t.n_input == len(t.frame) + len(t.rejects)


def test_missing_column_is_one_clear_error(tmp_path):
    p = write(tmp_path, "res.csv", "id,lon,lat,people_count\nR1,118.3,34.6,3\n")
    with pytest.raises(InputError, match=r"missing required column\(s\) population"):
        read_points(p, "residents")
    p2 = write(tmp_path, "fac.csv", "id,tier\nF1,point\n")
    with pytest.raises(InputError, match="lon, lat"):
        read_points(p2, "facilities", standard=STD)


def test_unreadable_and_unknown_files(tmp_path):
    with pytest.raises(InputError, match="does not exist"):
        read_points(tmp_path / "none.csv", "residents")
    with pytest.raises(InputError, match="unknown file type"):
        read_points(write(tmp_path, "x.docx", "hello"), "residents")
    bad = tmp_path / "bad.xlsx"
    bad.write_bytes(b"not a zip")
    with pytest.raises(InputError, match="cannot read"):
        read_points(bad, "residents")
    with pytest.raises(CRSError, match="unknown coordinate system"):
        read_points(write(tmp_path, "r.csv", "id,lon,lat,population\n"), "residents", crs="mars2")


def test_gcj02_and_bd09_declared_files_are_converted(tmp_path):
    wlon, wlat = np.array([118.337, 118.35]), np.array([34.614, 34.60])
    glon, glat = convert(wlon, wlat, "wgs84", "gcj02")
    blon, blat = convert(wlon, wlat, "wgs84", "bd09")
    g = write(
        tmp_path,
        "g.csv",
        "id,tier,lon,lat\n"
        + "".join(
            f"G{i},point,{float(a)!r},{float(b)!r}\n"
            for i, (a, b) in enumerate(zip(glon, glat, strict=True))
        ),
    )
    b = write(
        tmp_path,
        "b.csv",
        "id,tier,lng,latitude\n"
        + "".join(
            f"B{i},point,{float(a)!r},{float(c)!r}\n"
            for i, (a, c) in enumerate(zip(blon, blat, strict=True))
        ),
    )
    for path, crs in ((g, "gcj02"), (b, "bd09")):
        t = read_points(path, "facilities", crs=crs, standard=STD)
        np.testing.assert_allclose(t.frame["lon"], wlon, atol=1e-8)  # ~1 mm
        np.testing.assert_allclose(t.frame["lat"], wlat, atol=1e-8)
    raw = read_points(g, "facilities", standard=STD)  # declared wgs84 by mistake: ~500 m off
    from lifecircle.network import haversine_m

    off = haversine_m(raw.frame["lon"].to_numpy(), raw.frame["lat"].to_numpy(), wlon, wlat)
    assert (off > 400).all()


def test_projected_epsg_input(tmp_path):
    p = write(tmp_path, "r.csv", "id,x,y,population\nR1,622000.0,3831000.0,5\n")
    t = read_points(p, "residents", crs="EPSG:32650")
    assert 118.0 < t.frame["lon"][0] < 118.4 and 34.5 < t.frame["lat"][0] < 34.7


def test_xlsx_geojson_gpkg(tmp_path):
    import geopandas as gpd
    from shapely.geometry import Point, box

    df = pd.DataFrame(
        {"id": ["R1", "R2"], "population": [10, 20], "lon": [118.33, 118.34], "lat": [34.61, 34.62]}
    )
    df.to_excel(tmp_path / "r.xlsx", index=False)
    t = read_points(tmp_path / "r.xlsx", "residents")
    assert t.frame["population"].tolist() == [10.0, 20.0] and t.frame["row"].tolist() == [2, 3]
    gdf = gpd.GeoDataFrame(
        {"id": ["A", "B"], "population": [5, 7]},
        geometry=[Point(118.33, 34.61), box(118.34, 34.62, 118.341, 34.621)],
        crs=4326,
    )
    gdf.to_file(tmp_path / "r.geojson")
    gdf.to_file(tmp_path / "r.gpkg")
    for name in ("r.geojson", "r.gpkg"):
        t = read_points(tmp_path / name, "residents")
        assert t.frame["id"].tolist() == ["A", "B"]
        assert t.frame["lon"][1] == pytest.approx(118.3405, abs=1e-3)  # a point inside the polygon


def test_units_and_scenario(tmp_path):
    import geopandas as gpd
    from shapely.geometry import box

    gpd.GeoDataFrame(
        {"community_id": ["C1", "C2"], "name": ["东关社区", "西关社区"]},
        geometry=[box(118.33, 34.60, 118.34, 34.61), box(118.34, 34.60, 118.35, 34.61)],
        crs=4326,
    ).to_file(tmp_path / "communities.geojson")
    u = read_units(tmp_path / "communities.geojson", key="community")
    assert u.frame["unit_id"].tolist() == ["C1", "C2"] and u.frame["name"][0] == "东关社区"
    g = read_units(tmp_path / "communities.geojson", key="community", crs="gcj02")
    # converted from GCJ-02: shifted west by ~500 m
    assert g.frame.geometry.bounds["minx"][0] < 118.33 - 0.004
    sc = write(
        tmp_path,
        "scenario.toml",
        """
[scenario]
name = "测试"
synthetic = true
[network]
path = "roads.osm"
[facilities]
path = "fac.csv"
crs = "gcj02"
[residents]
path = "res.csv"
[standard]
preset = "gb50180"
[[units]]
key = "community"
path = "communities.geojson"
""",
    )
    s = load_scenario(sc)
    assert s.synthetic and s.facilities_crs == "gcj02" and s.standard == "gb50180"
    assert s.network == (tmp_path / "roads.osm").resolve()
    assert s.units[0].read().frame["unit_id"].tolist() == ["C1", "C2"]
    with pytest.raises(InputError, match="unknown section"):
        load_scenario(write(tmp_path, "bad.toml", "[nets]\npath='x'\n"))
    with pytest.raises(InputError, match=r"missing required section \[network\]"):
        load_scenario(write(tmp_path, "bad2.toml", "[facilities]\npath='x'\n"))


def test_candidates_tier_is_optional(tmp_path):
    p = write(
        tmp_path,
        "cand.csv",
        "id,tier,lon,lat\nK1,,118.33,34.61\nK2,服务站,118.33,34.61\nK3,卫生站,118.33,34.61\n",
    )
    t = read_points(p, "candidates", standard=STD)
    assert t.frame["id"].tolist() == ["K1", "K2"] and t.frame["tier"].tolist() == ["", "station"]
    assert t.rejects["reason"].tolist() == ["unknown_tier"]

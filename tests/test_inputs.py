"""Real-world input files: GBK CSVs and Shapefiles, spreadsheets with title rows and several
sheets, Amap POI exports with a ``location`` column, tier rules, duplicate POIs, ``--columns``."""

from __future__ import annotations

import logging
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
from shapely.geometry import Point, box

from lifecircle._commands._common import parse_columns, parse_sheets
from lifecircle._tables import dbf_encoding, detect_encoding, header_row, read_raw_table
from lifecircle.config import load_standard
from lifecircle.coords import to_wgs84
from lifecircle.errors import InputError
from lifecircle.io import load_scenario, read_points, read_units
from lifecircle.tier_rules import load_tier_rules

REPO = Path(__file__).resolve().parents[1]
RULES = REPO / "data" / "tier_rules" / "amap_tancheng.toml"

RESIDENTS_ZH = (
    "编号,小区名称,常住人口,经度,纬度\nR1,清华新村,120,118.34,34.61\nR2,东关小区,80,118.35,34.62\n"
)


def test_gbk_csv_with_chinese_headers(tmp_path, caplog):
    p = tmp_path / "res.csv"
    p.write_bytes(RESIDENTS_ZH.encode("gbk"))
    with caplog.at_level(logging.INFO, logger="lifecircle"):
        t = read_points(p, "residents")
    assert t.frame["name"].tolist() == ["清华新村", "东关小区"]
    assert t.frame["population"].tolist() == [120.0, 80.0]
    assert t.frame["id"].tolist() == ["R1", "R2"]
    assert "gb18030" in caplog.text and "--encoding" in caplog.text


def test_utf8_bom_and_explicit_encoding(tmp_path):
    p = tmp_path / "res.csv"
    p.write_bytes(RESIDENTS_ZH.encode("utf-8-sig"))
    assert read_points(p, "residents").frame["name"][0] == "清华新村"
    assert read_raw_table(p).encoding == "utf-8-sig"
    assert read_raw_table(p, encoding="utf-8").frame.columns[0] == "编号"
    g = tmp_path / "gbk.csv"
    g.write_bytes(RESIDENTS_ZH.encode("gbk"))
    # naming the wrong encoding is one clear line, naming the option
    with pytest.raises(InputError, match=r"line 1 is not valid utf-8 .*--encoding"):
        read_points(g, "residents", encoding="utf-8")
    with pytest.raises(InputError, match="unknown encoding 'klingon'"):
        read_points(g, "residents", encoding="klingon")
    assert read_points(g, "residents", encoding="gbk").frame["name"][1] == "东关小区"


def test_detect_encoding_cut_multibyte_character():
    data = "社区".encode()
    assert detect_encoding(data[:-1]) == "utf-8"  # a sample cut inside the last character
    assert detect_encoding("社区人口".encode("gb18030")) == "gb18030"


def test_csv_title_rows_from_excel(tmp_path):
    p = tmp_path / "res.csv"
    text = "郯城县小区人口统计表,,,,\n,,,,\n" + RESIDENTS_ZH
    p.write_bytes(text.encode("gb18030"))
    t = read_points(p, "residents")
    assert t.frame["population"].tolist() == [120.0, 80.0]
    assert t.frame["row"].tolist() == [4, 5]  # header on spreadsheet line 3


def test_header_row_rules():
    assert header_row([["标题"], ["编号", "人口"], ["1", "2"]]) == 1
    # a numeric first row is data, not a header
    assert header_row([["1", "2", "3"], ["4", "5", "6"]]) == 0


def test_xlsx_title_row_and_second_sheet(tmp_path):
    from openpyxl import Workbook

    wb = Workbook()
    ws = wb.active
    ws.title = "说明"
    ws.append(["本表为示例"])
    ws2 = wb.create_sheet("人口")
    ws2.append(["郯城县各小区常住人口（2024年）"])
    ws2.append([])
    ws2.append(["编号", "小区名称", "常住人口", "60岁以上", "经度", "纬度"])
    ws2.append(["007", "清华新村", 120, 30, 118.34, 34.61])
    ws2.append(["008", "东关小区", 80, 10, 118.35, 34.62])
    p = tmp_path / "res.xlsx"
    wb.save(p)
    cols = {"elderly": "60岁以上"}
    for sheet in ("人口", "2", 2):
        t = read_points(p, "residents", sheet=sheet, columns=cols)
        assert t.frame["id"].tolist() == ["007", "008"]
        assert t.frame["population"].tolist() == [120.0, 80.0]
        assert t.frame["elderly"].tolist() == [30.0, 10.0]
        assert t.frame["row"].tolist() == [4, 5]
    with pytest.raises(InputError, match=r"no sheet '3'; the sheets are 说明, 人口 \(--sheet"):
        read_points(p, "residents", sheet="3")
    # the first sheet has no such columns: the message names options that exist
    with pytest.raises(InputError, match=r"missing required column\(s\) id, population.*--columns"):
        read_points(p, "residents")


def test_gbk_shapefile_without_cpg(tmp_path, caplog):
    gdf = gpd.GeoDataFrame(
        {"id": ["A", "B"], "name": ["东关社区", "西关社区"], "population": [5, 7]},
        geometry=[Point(118.33, 34.61), Point(118.34, 34.62)],
        crs=4326,
    )
    p = tmp_path / "res.shp"
    gdf.to_file(p, encoding="gbk")
    p.with_suffix(".cpg").unlink(missing_ok=True)
    assert not p.with_suffix(".cpg").exists()
    with caplog.at_level(logging.WARNING, logger="lifecircle"):
        t = read_points(p, "residents")
    assert t.frame["name"].tolist() == ["东关社区", "西关社区"]
    assert "GB18030" in caplog.text
    assert dbf_encoding(p) == "gb18030"
    # units from an old GBK Shapefile too
    units = gpd.GeoDataFrame(
        {"unit_id": ["C1"], "name": ["马陵社区"]},
        geometry=[box(118.3, 34.6, 118.4, 34.7)],
        crs=4326,
    )
    u = tmp_path / "communities.shp"
    units.to_file(u, encoding="gbk")
    u.with_suffix(".cpg").unlink(missing_ok=True)
    assert read_units(u).frame["name"].tolist() == ["马陵社区"]
    # a UTF-8 Shapefile without .cpg stays UTF-8
    q = tmp_path / "utf8.shp"
    gdf.to_file(q, encoding="utf-8")
    q.with_suffix(".cpg").unlink(missing_ok=True)
    assert dbf_encoding(q) == "utf-8"
    assert read_points(q, "residents").frame["name"][0] == "东关社区"


def _amap_export(tmp_path: Path) -> Path:
    rows = [
        (
            "B0FFG1",
            "郯城县党群服务中心",
            "政府机构及社会团体;政府机关;区县级政府",
            "130104",
            "118.3473,34.6103",
        ),
        (
            "B0FFG2",
            "郯城街道党群服务中心",
            "政府机构及社会团体;政府机关;乡镇级政府",
            "130105",
            "118.3522,34.6069",
        ),
        (
            "B0FFG3",
            "银杏社区党群服务中心",
            "政府机构及社会团体;社会团体;社会团体相关",
            "130500",
            "118.3112,34.6320",
        ),
        (
            "B0FFG4",
            "马陵社区便民服务站",
            "生活服务;生活服务场所;生活服务场所",
            "070000",
            "118.3200,34.6200",
        ),
        (
            "B0FFG5",
            "马陵社区便民服务站",
            "生活服务;生活服务场所;生活服务场所",
            "070000",
            "118.32003,34.62002",
        ),
        (
            "B0FFG6",
            "东关小区便民点",
            "生活服务;便民服务;便民服务",
            "071000|070000",
            "118.3300,34.6250",
        ),
        ("B0FFG7", "郯城县第一中学", "科教文化服务;学校;高等院校", "141201", "118.3400,34.6000"),
        ("B0FFG8", "幸福超市", "购物服务;超级市场;超市", "060400", "118.3350,34.6150"),
        ("B0FFG9", "花园社区便民服务站", "生活服务;生活服务场所", "070000", "118.3200,34.6200"),
    ]
    df = pd.DataFrame(rows, columns=["id", "name", "type", "typecode", "location"])
    p = tmp_path / "amap.csv"
    p.write_bytes(df.to_csv(index=False).encode("gb18030"))
    return p


def test_amap_export_location_typecode_and_tier_rules(tmp_path):
    std = load_standard("tancheng")
    rules = load_tier_rules(RULES, std)
    t = read_points(
        _amap_export(tmp_path), "facilities", crs="gcj02", standard=std, tier_rules=rules
    )
    f = t.frame.set_index("id")
    assert f.loc["B0FFG1", "tier"] == "county_centre"
    assert f.loc["B0FFG2", "tier"] == "subdistrict_centre"
    assert f.loc["B0FFG3", "tier"] == "community_centre"
    assert f.loc["B0FFG3", "tier_rule"] == "社区/村党群服务中心"
    assert f.loc["B0FFG4", "tier"] == "station" and f.loc["B0FFG4", "tier_rule"] == "服务站"
    assert f.loc["B0FFG6", "tier"] == "point"
    # location "lng,lat" in GCJ-02 converted to WGS84
    wlon, wlat = to_wgs84(np.array([118.3112]), np.array([34.6320]), "gcj02")
    assert f.loc["B0FFG3", "lon"] == pytest.approx(wlon[0], abs=1e-9)
    assert f.loc["B0FFG3", "lat"] == pytest.approx(wlat[0], abs=1e-9)
    assert f.loc["B0FFG3", "typecode"] == "130500"
    rej = t.rejects.set_index("id")
    assert rej.loc["B0FFG7", "reason"] == "unknown_tier"
    assert rej.loc["B0FFG8", "reason"] == "unknown_tier"
    assert "no rule of" in rej.loc["B0FFG8", "detail"] and "幸福超市" in rej.loc["B0FFG8", "detail"]
    # the same name 3 m away is one site listed twice; another name at the same spot is not
    assert rej.loc["B0FFG5", "reason"] == "duplicate_location"
    assert "row 5" in rej.loc["B0FFG5", "detail"]
    assert "B0FFG9" in f.index
    assert t.n_input == 9 == len(t.frame) + len(t.rejects)


def test_tier_rules_match_typecode_prefix_and_exclusions():
    std = load_standard("tancheng")
    r = load_tier_rules(RULES, std)
    names = pd.Series(["县委党群服务中心", "花园街道党群服务中心", "城北社区党群服务中心", "某店"])
    types = pd.Series(["", "", "", "生活服务;便民服务;便民服务"])
    codes = pd.Series(["", "", "", "071000"])
    tier, rule = r.assign(names, types, codes)
    assert tier.tolist() == ["county_centre", "subdistrict_centre", "community_centre", "point"]
    assert rule[3] == "生活服务类便民点（按类型）"


def test_tier_rules_file_errors(tmp_path):
    std = load_standard("tancheng")
    bad = tmp_path / "r.toml"
    for text, msg in [
        ('[[rule]]\ntier = "station"\n', "no condition"),
        ('[[rule]]\ntier = "hospital"\nname_contains = "院"\n', "tier 'hospital' is not one of"),
        ('[[rule]]\ntier = "station"\nname_like = "站"\n', "unknown key"),
        ('[[rule]]\ntier = "station"\nname_regex = "("\n', "bad name_regex"),
        ('tier = "station"\n', r"expected \[\[rule\]\]"),
    ]:
        bad.write_text(text, encoding="utf-8")
        with pytest.raises(InputError, match=msg):
            load_tier_rules(bad, std)
    with pytest.raises(InputError, match="--tier-rules"):
        load_tier_rules(tmp_path / "missing.toml", std)


def test_amap_export_without_rules_points_at_tier_rules(tmp_path):
    df = pd.DataFrame({"id": ["A"], "name": ["x"], "location": ["118.3,34.6"]})
    p = tmp_path / "poi.csv"
    df.to_csv(p, index=False)
    with pytest.raises(InputError, match="--tier-rules FILE"):
        read_points(p, "facilities", standard=load_standard("tancheng"))


def test_columns_option_parsing_and_errors(tmp_path):
    assert parse_columns(["residents:id=编号,population=常住人口"]) == {
        "residents": {"id": "编号", "population": "常住人口"}
    }
    assert parse_sheets(["residents:人口", "2"]) == {"residents": "人口", "": "2"}
    with pytest.raises(InputError, match="unknown field 'people'"):
        parse_columns(["people=人数"])
    with pytest.raises(InputError, match="'houses' is not an input"):
        parse_columns(["houses:id=编号"])
    with pytest.raises(InputError, match="is not FIELD=COLUMN"):
        parse_columns(["residents:id"])
    p = tmp_path / "r.csv"
    p.write_text("ID号,人数,X坐标,Y坐标\nA,3,118.3,34.6\n", encoding="utf-8")
    cols = {"id": "ID号", "population": "人数", "lon": "X坐标", "lat": "Y坐标"}
    t = read_points(p, "residents", columns=cols)
    assert t.frame["population"].tolist() == [3.0]
    with pytest.raises(InputError, match=r"column '人口数' \(given for population with --columns"):
        read_points(p, "residents", columns={**cols, "population": "人口数"})


def test_scenario_columns_sheet_encoding_and_tier_rules(tmp_path):
    (tmp_path / "s.toml").write_text(
        '[network]\npath = "roads.osm"\n'
        '[facilities]\npath = "poi.csv"\ncrs = "gcj02"\ntier_rules = "rules.toml"\n'
        'encoding = "gb18030"\n'
        '[residents]\npath = "res.xlsx"\nsheet = "人口"\n'
        'columns = { id = "编号", population = "常住人口" }\n',
        encoding="utf-8",
    )
    sc = load_scenario(tmp_path / "s.toml")
    assert sc.columns == {"residents": {"id": "编号", "population": "常住人口"}}
    assert sc.sheets == {"residents": "人口"} and sc.encodings == {"facilities": "gb18030"}
    assert sc.tier_rules == (tmp_path / "rules.toml").resolve()
    (tmp_path / "t.toml").write_text(
        '[network]\npath = "a"\n[facilities]\npath = "b"\ncolumns = "编号"\n', encoding="utf-8"
    )
    with pytest.raises(InputError, match="columns must be a table"):
        load_scenario(tmp_path / "t.toml")


def test_cli_real_inputs_end_to_end(tmp_path, capsys):
    """A GBK Amap export with tier rules + community polygons joined to a census-style table."""
    import json

    from lifecircle.cli import main

    demo = REPO / "data" / "demo" / "tancheng"
    fac = pd.read_csv(demo / "facilities.csv", comment="#")
    fac = fac[fac["tier"].isin(["community_centre", "subdistrict_centre", "county_centre"])]
    poi = pd.DataFrame(
        {
            "编号": fac["id"],
            "名称": fac["name"],
            "类型": "政府机构及社会团体;政府机关",
            "typecode": "130100",
            "location": [f"{a},{b}" for a, b in zip(fac["lon"], fac["lat"], strict=True)],
        }
    )
    poi_path = tmp_path / "高德导出.csv"
    poi_path.write_bytes(poi.to_csv(index=False).encode("gb18030"))
    out = tmp_path / "out"
    rc = main(
        [
            "coverage",
            "--network", str(demo / "roads.osm"),
            "--facilities", str(poi_path), "--facilities-crs", "gcj02",
            "--tier-rules", str(RULES),
            "--columns", "facilities:id=编号,poi_type=类型",
            "--residents", str(demo / "communities.geojson"),
            "--population-table", str(demo / "community_population.csv"),
            "--population-join", "社区名称=name",
            "--population-field", "常住人口",
            "--no-cache", "--out", str(out),
        ]
    )  # fmt: skip
    assert rc == 0
    assert "residents table rows: 16 = 16 used + 0 rejected" in capsys.readouterr().out
    summary = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    table = pd.read_csv(demo / "community_population.csv", encoding="gb18030", skiprows=1)
    assert summary["population_inputs"]["population"] == table["常住人口"].sum()
    assert summary["inputs"]["facilities"]["used"] == len(fac)
    facilities = pd.read_csv(out / "facilities.csv", dtype=str)
    assert set(facilities["tier_rule"]) == {
        "县级党群服务中心",
        "街道/镇党群服务中心",
        "社区/村党群服务中心",
    }
    residents = pd.read_csv(out / "residents.csv", dtype={"source_id": str})
    assert set(residents["placement"]) <= {"street", "representative_point"}
    # a bad option value is one line naming the option
    rc = main(["coverage", "--network", str(demo / "roads.osm"), "--facilities", str(poi_path),
               "--residents", str(demo / "residents.csv"), "--columns", "houses:id=编号",
               "--no-cache", "--out", str(out)])  # fmt: skip
    assert rc == 1
    assert "'houses' is not an input" in capsys.readouterr().err


def test_units_columns_and_gbk_through_load_inputs(tmp_path):
    import networkx as nx

    import lifecircle as lc

    g = nx.Graph(crs="EPSG:4326")
    g.add_node(1, x=118.340, y=34.610)
    g.add_node(2, x=118.350, y=34.610)
    g.add_edge(1, 2)
    fac = gpd.GeoDataFrame(
        {"id": ["S1"], "tier": ["station"]}, geometry=[Point(118.341, 34.610)], crs=4326
    )
    res = gpd.GeoDataFrame(
        {"id": ["R1"], "population": [120]}, geometry=[Point(118.345, 34.6102)], crs=4326
    )
    u = tmp_path / "社区.shp"
    gpd.GeoDataFrame(
        {"编码": ["371322001"], "名称": ["马陵社区"]},
        geometry=[box(118.33, 34.60, 118.36, 34.62)],
        crs=4326,
    ).to_file(u, encoding="gbk")
    u.with_suffix(".cpg").unlink(missing_ok=True)
    assert parse_columns(["units:id=编码,name=名称"]) == {"units": {"id": "编码", "name": "名称"}}
    with pytest.raises(InputError, match="fields are id, name"):
        parse_columns(["units:population=人口"])
    inputs = lc.load_inputs(
        network=g,
        facilities=fac,
        residents=res,
        units=[u],
        columns={"units": {"id": "编码", "name": "名称"}},
        cache_dir=None,
    )
    layer = inputs.units[0]
    assert layer.frame["unit_id"].tolist() == ["371322001"]
    assert layer.frame["name"].tolist() == ["马陵社区"]


def test_poi_type_column_as_tier_hints_at_tier_rules(tmp_path):
    p = tmp_path / "poi.csv"
    p.write_text(
        'id,name,type,location\nA,某社区党群服务中心,政府机构及社会团体;政府机关,"118.3,34.6"\n',
        encoding="utf-8",
    )
    t = read_points(p, "facilities", standard=load_standard("tancheng"))
    assert t.rejects["reason"].tolist() == ["unknown_tier"]
    assert "--tier-rules FILE" in t.rejects["detail"][0]

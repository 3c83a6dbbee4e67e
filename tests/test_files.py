"""lifecircle._files: atomic writes, overwrite checks, jsonable, the GeoJSON writer."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely
from shapely.geometry import Point, Polygon

from lifecircle._files import (
    atomic_path,
    check_writable,
    geojson_dict,
    geojson_text,
    geometry_dict,
    jsonable,
    to_json_text,
    write_csv,
    write_geojson,
    write_json,
    write_text,
)
from lifecircle.errors import InputError, OutputExistsError


def _ring_is_ccw(ring: list[list[float]]) -> bool:
    return bool(shapely.LinearRing(ring).is_ccw)


# -- atomic writes -----------------------------------------------------------------------------


def test_atomic_path_leaves_no_partial_file_on_error(tmp_path: Path) -> None:
    target = tmp_path / "sub" / "out.txt"
    with pytest.raises(RuntimeError, match="boom"), atomic_path(target) as tmp:
        tmp.write_text("half", encoding="utf-8")
        raise RuntimeError("boom")
    assert not target.exists()
    assert list(target.parent.iterdir()) == []


def test_atomic_path_keeps_old_file_on_error(tmp_path: Path) -> None:
    target = write_text("old", tmp_path / "out.txt")
    with pytest.raises(RuntimeError), atomic_path(target, overwrite=True) as tmp:
        tmp.write_text("new", encoding="utf-8")
        raise RuntimeError("boom")
    assert target.read_text(encoding="utf-8") == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["out.txt"]


def test_failing_writer_leaves_nothing(tmp_path: Path) -> None:
    class Unserialisable:
        pass

    with pytest.raises(TypeError, match="Unserialisable"):
        write_json({"a": Unserialisable()}, tmp_path / "x.json")
    assert list(tmp_path.iterdir()) == []


def test_check_writable_refuses_existing_files(tmp_path: Path) -> None:
    a = write_text("a", tmp_path / "a.txt")
    b = write_text("b", tmp_path / "b.txt")
    with pytest.raises(OutputExistsError, match=r"a\.txt.*b\.txt.*--overwrite"):
        check_writable([a, b, tmp_path / "c.txt"], overwrite=False)
    check_writable([a, b], overwrite=True)
    check_writable([tmp_path / "c.txt"], overwrite=False)
    with pytest.raises(FileExistsError):  # OutputExistsError is also the builtin
        write_text("again", a)
    assert a.read_text(encoding="utf-8") == "a"
    write_text("again", a, overwrite=True)
    assert a.read_text(encoding="utf-8") == "again"


# -- JSON --------------------------------------------------------------------------------------


@dataclasses.dataclass
class _Rec:
    name: str
    value: float


def test_jsonable_nan_inf_numpy_paths_dataclasses() -> None:
    data = {
        "nan": float("nan"),
        "inf": float("inf"),
        "ninf": -np.inf,
        "f32": np.float32(1.5),
        "f64nan": np.float64("nan"),
        "i": np.int64(7),
        "b": np.bool_(True),
        "arr": np.array([1.0, np.nan]),
        "tuple": (1, 2),
        "path": Path("a/b"),
        "na": pd.NA,
        "nat": pd.NaT,
        "rec": _Rec("x", float("inf")),
        3: "int key",
        "ts": pd.Timestamp("2024-01-02"),
        "none": None,
        "zh": "社区",
    }
    out = jsonable(data)
    assert out == {
        "nan": None,
        "inf": None,
        "ninf": None,
        "f32": 1.5,
        "f64nan": None,
        "i": 7,
        "b": True,
        "arr": [1.0, None],
        "tuple": [1, 2],
        "path": str(Path("a/b")),
        "na": None,
        "nat": None,
        "rec": {"name": "x", "value": None},
        "3": "int key",
        "ts": "2024-01-02T00:00:00",
        "none": None,
        "zh": "社区",
    }
    assert type(out["i"]) is int and type(out["b"]) is bool and type(out["f32"]) is float
    json.dumps(out, allow_nan=False)
    with pytest.raises(TypeError, match="object"):
        jsonable({"x": object()})


def test_to_json_text_keeps_chinese_and_writes_null(tmp_path: Path) -> None:
    text = to_json_text({"名称": "郯城", "d": float("inf")})
    assert "郯城" in text and "null" in text and "Infinity" not in text
    p = write_json({"a": [np.int32(1)]}, tmp_path / "a.json")
    assert json.loads(p.read_text(encoding="utf-8")) == {"a": [1]}


def test_write_csv_infinite_as_empty(tmp_path: Path) -> None:
    p = write_csv(pd.DataFrame({"id": ["a", "b"], "d": [1.5, np.inf]}), tmp_path / "t.csv")
    assert p.read_text(encoding="utf-8-sig") == "id,d\na,1.5\nb,\n"


def test_write_csv_bom_booleans_shares_and_encodings(tmp_path: Path) -> None:
    frame = pd.DataFrame(
        {
            "name": ["新城社区", "老城社区", "东关社区"],
            "covered": [True, False, True],
            "outside": pd.Series([True, None, False], dtype=object),
            "point_share": [1 / 3, 2 / 3, np.nan],
            "population": [1.0 / 3, 2.0, 3.0],
        }
    )
    p = write_csv(frame, tmp_path / "t.csv")
    raw = p.read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf")  # Excel needs the BOM to read UTF-8 Chinese
    lines = raw.decode("utf-8-sig").splitlines()
    assert lines[0] == "name,covered,outside,point_share,population"
    assert lines[1].startswith("新城社区,true,true,0.3333,0.333333")
    assert lines[2] == "老城社区,false,,0.6667,2.0"
    back = pd.read_csv(p)
    assert back["covered"].tolist() == [True, False, True]
    assert frame["covered"].dtype == bool  # the input is not changed
    g = write_csv(frame, tmp_path / "g.csv", encoding="gb18030")
    assert g.read_bytes().decode("gb18030").startswith("name,")
    assert "新城社区" in g.read_bytes().decode("gb18030")
    u = write_csv(frame, tmp_path / "u.csv", encoding="utf-8")
    assert not u.read_bytes().startswith(b"\xef\xbb\xbf")
    with pytest.raises(InputError, match="CSV encoding 'latin-1' is not supported"):
        write_csv(frame, tmp_path / "x.csv", encoding="latin-1")
    assert not (tmp_path / "x.csv").exists()


# -- GeoJSON -----------------------------------------------------------------------------------


def _square_with_hole_cw() -> Polygon:
    # exterior clockwise, hole counter-clockwise: both the wrong way round for RFC 7946
    outer = [(0, 0), (0, 1), (1, 1), (1, 0), (0, 0)]
    hole = [(0.25, 0.25), (0.75, 0.25), (0.75, 0.75), (0.25, 0.75), (0.25, 0.25)]
    return Polygon(outer, [hole])


def test_geojson_ring_orientation_rfc7946() -> None:
    poly = _square_with_hole_cw()
    assert not poly.exterior.is_ccw
    gj = geometry_dict(poly)
    assert gj is not None
    exterior, hole = gj["coordinates"]
    assert _ring_is_ccw(exterior)
    assert not _ring_is_ccw(hole)
    gdf = gpd.GeoDataFrame({"id": [1]}, geometry=[shapely.MultiPolygon([poly])], crs=4326)
    feat = geojson_dict(gdf)["features"][0]
    assert _ring_is_ccw(feat["geometry"]["coordinates"][0][0])
    assert not _ring_is_ccw(feat["geometry"]["coordinates"][0][1])


def test_geojson_precision_and_properties() -> None:
    gdf = gpd.GeoDataFrame(
        {"name": ["社区", None], "v": [np.inf, 2.0], "n": np.array([1, 2], dtype="int64")},
        geometry=[Point(118.123456789, 34.987654321), None],
        crs="EPSG:4326",
    )
    doc = geojson_dict(gdf, name="layer")
    assert doc["type"] == "FeatureCollection" and doc["name"] == "layer" and "crs" not in doc
    f0, f1 = doc["features"]
    assert f0["geometry"]["coordinates"] == [118.123457, 34.987654]
    assert f0["properties"] == {"name": "社区", "v": None, "n": 1}
    assert f1["geometry"] is None
    assert geojson_dict(gdf, precision=3)["features"][0]["geometry"]["coordinates"] == [
        118.123,
        34.988,
    ]
    assert len(geojson_dict(gdf, drop_empty=True)["features"]) == 1
    text = geojson_text(gdf)
    assert "NaN" not in text and "Infinity" not in text and "社区" in text
    assert json.loads(text)["features"] == doc["features"]


def test_geojson_reprojects_to_wgs84(tmp_path: Path) -> None:
    gdf = gpd.GeoDataFrame({"id": ["a"]}, geometry=[Point(118.35, 34.61)], crs=4326).to_crs(32650)
    p = write_geojson(gdf, tmp_path / "a.geojson", name="pts")
    doc = json.loads(p.read_text(encoding="utf-8"))
    lon, lat = doc["features"][0]["geometry"]["coordinates"]
    assert lon == pytest.approx(118.35, abs=1e-6) and lat == pytest.approx(34.61, abs=1e-6)
    back = gpd.read_file(p)
    assert back.crs.to_epsg() == 4326 and list(back["id"]) == ["a"]
    with pytest.raises(OutputExistsError):
        write_geojson(gdf, p)


def test_geojson_from_pairs_with_members() -> None:
    text = geojson_text(
        [({"id": "A"}, _square_with_hole_cw())],
        precision=7,
        name="n",
        members={"description": "d"},
        compact=True,
    )
    assert text.startswith('{"type":"FeatureCollection","name":"n","description":"d","features":[{')
    assert text.endswith("]}\n") and "\n" not in text[:-1]
    empty = json.loads(geojson_text([]))
    assert empty == {"type": "FeatureCollection", "features": []}

"""Interactive HTML maps (online and offline) and the static PNG (lifecircle.maps)."""

from __future__ import annotations

import json
import re
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest

from conftest import GRID_ORIGIN, grid_lonlat
from lifecircle.errors import InputError, OutputExistsError
from lifecircle.maps import (
    LEAFLET_VERSION,
    build_candidates_map,
    build_map,
    external_references,
    map_layers,
    render_map_html,
    resident_cells,
    write_candidates_map,
    write_coverage_map,
    write_static_map,
)
from lifecircle.pipeline import run_coverage
from lifecircle.report import find_gaps
from test_report import make_inputs, node_xy

X0, Y0 = GRID_ORIGIN


@pytest.fixture
def grid_run(tmp_path):
    xy = node_xy()
    inputs = make_inputs(
        tmp_path,
        res_xy=xy,
        pop=np.arange(1, 37),
        fac_xy=xy[[14, 0, 35]],
        fac_tier=["station", "point", "point"],
    )
    return run_coverage(inputs)


class _Sources(HTMLParser):
    """Collect every src/href of script, link, img and iframe tags."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []

    def handle_starttag(self, tag, attrs):
        if tag in ("script", "link", "img", "iframe"):
            self.urls += [v for k, v in attrs if k in ("src", "href") and v]


def sources(page: str) -> list[str]:
    p = _Sources()
    p.feed(page)
    return p.urls


def overlay_names(page: str) -> list[str]:
    """Overlay names as written into the Leaflet layer control."""
    block = re.search(r"overlays\s*:\s*\{(.*?)\n\s*\},", page, re.S)
    assert block, "no layer control in the page"
    return [
        json.loads(f'"{n}"')
        for n in re.findall(r'"((?:[^"\\]|\\.)*)"\s*:\s*lifecircle_layer_', block.group(1))
    ]


def test_offline_map_layers_counts_bounds_and_no_external_assets(grid_run):
    m = build_map(grid_run, offline=True)
    layers = map_layers(m)
    kinds = {ly["kind"]: ly for ly in layers}
    assert kinds["facilities:station"]["count"] == 1
    assert kinds["facilities:point"]["count"] == 2
    assert kinds["units:community"]["count"] == 2 and kinds["units:community"]["show"]
    assert kinds["residents:all"]["count"] == 36 and kinds["residents:all"]["show"]
    assert not kinds["residents:point"]["show"] and not kinds["residents:station"]["show"]
    assert kinds["roads"]["show"] and kinds["roads"]["count"] == len(
        grid_run.inputs.networks["walk"].edge_u
    )
    assert kinds["gaps"]["count"] == len(find_gaps(grid_run.result).table) > 0
    assert kinds["facilities:point"]["name"] == "设施：便民点 (2)"
    page = render_map_html(m, offline=True)
    assert overlay_names(page) == [ly["name"] for ly in layers]
    # no external script/stylesheet/image: checked by our regex and by an HTML parser
    assert external_references(page) == []
    assert [u for u in sources(page) if re.match(r"(https?:)?//", u)] == []
    assert f'version="{LEAFLET_VERSION}"' in page  # Leaflet inlined
    assert "data:image/png;base64," in page  # its CSS images too
    for lib in ("jquery", "bootstrap", "font-awesome", "fontawesome", "awesome-markers"):
        assert lib not in page.lower()
    assert "L.tileLayer(" not in page
    # bounds: the extent of residents and facilities
    res, fac = grid_run.result.residents, grid_run.result.facilities
    fb = re.search(r"map_\w+\.fitBounds\(\s*(\[\[.*?\]\])", page, re.S)
    got = np.array(json.loads(fb.group(1)))
    lat = np.r_[res["lat"], fac["lat"]]
    lon = np.r_[res["lon"], fac["lon"]]
    assert got == pytest.approx(np.array([[lat.min(), lon.min()], [lat.max(), lon.max()]]))
    assert "lifecircle-probe" in page and "lifecircle-legend" in page and "L.control.scale" in page


def test_online_map_uses_cdn_leaflet_and_basemap_only(grid_run):
    page = render_map_html(build_map(grid_run, offline=False), offline=False)
    urls = sources(page)
    assert any(u.endswith(f"leaflet@{LEAFLET_VERSION}/dist/leaflet.js") for u in urls)
    assert not any(k in u for u in urls for k in ("jquery", "bootstrap", "fontawesome", "awesome"))
    assert "tile.openstreetmap.org" in page
    assert "L.polyline" not in page  # no road layer: the basemap shows streets


def test_offline_with_intranet_tiles(grid_run, tmp_path):
    url = "http://tiles.intranet.local/osm/{z}/{x}/{y}.png"
    path = write_coverage_map(grid_run, tmp_path / "m.html", offline=True, tiles=url)
    page = path.read_text(encoding="utf-8")
    assert url in page
    assert external_references(page) == []
    roads = next(
        ly
        for ly in map_layers(build_map(grid_run, offline=True, tiles=url))
        if ly["kind"] == "roads"
    )
    assert roads["show"] is False  # the basemap is there: the road layer starts hidden
    with pytest.raises(OutputExistsError):
        write_coverage_map(grid_run, path, offline=True)
    write_coverage_map(grid_run, path, offline=True, overwrite=True)


def test_many_residents_are_aggregated_to_cells(grid_run):
    m = build_map(grid_run, offline=True, max_resident_points=10)
    kinds = {ly["kind"]: ly for ly in map_layers(m)}
    assert "residents:all" not in kinds
    size, cells = resident_cells(grid_run.result)
    assert size == 100.0
    res = grid_run.result.residents
    occupied = {
        (int(np.floor(x / 100)), int(np.floor(y / 100)))
        for x, y in zip(res["x"], res["y"], strict=True)
    }
    assert kinds["resident_cells:all"]["count"] == len(cells["population"]) == len(occupied)
    assert cells["population"].sum() == pytest.approx(grid_run.result.population_total)
    for key in ("station", "point"):
        res = grid_run.result.residents
        assert cells[key].sum() == pytest.approx(res.loc[res[f"{key}_covered"], "population"].sum())
    # a coarse cell merges residents
    size, cells = resident_cells(grid_run.result, cell_m=1000)
    assert size == 1000.0 and len(cells["population"]) < len(occupied)


def test_service_areas_and_english_labels(grid_run):
    import geopandas as gpd
    import shapely

    net = grid_run.inputs.networks["walk"]
    lon, lat = grid_lonlat(net, np.array([X0, X0 + 200]), np.array([Y0, Y0 + 200]))
    poly = shapely.box(lon[0], lat[0], lon[1], lat[1])
    sa = gpd.GeoDataFrame(
        {"tier": ["station", "point", "point"], "budget_m": [300.0, 150.0, 150.0]},
        geometry=[poly, poly, poly],
        crs="EPSG:4326",
    )
    m = build_map(grid_run, offline=True, service_areas=sa, lang="en")
    kinds = {ly["kind"]: ly for ly in map_layers(m)}
    assert kinds["service_areas:station"]["count"] == 1
    assert kinds["service_areas:point"]["count"] == 2
    assert not kinds["service_areas:point"]["show"]
    assert kinds["facilities:point"]["name"] == "Facilities: Point (2)"
    page = render_map_html(m, offline=True)
    assert "Service area: Station" in overlay_names(page)
    with pytest.raises(InputError):
        build_map(grid_run, lang="fr")


def test_static_png(grid_run, tmp_path):
    from PIL import Image

    path = write_static_map(grid_run, tmp_path / "map.png", lang="en", dpi=60)
    with Image.open(path) as im:
        assert im.format == "PNG" and im.size == (600, 600)
        rgb = np.asarray(im.convert("RGB"))
    assert len(np.unique(rgb.reshape(-1, 3), axis=0)) > 20  # not blank
    with pytest.raises(OutputExistsError):
        write_static_map(grid_run, path)


def test_map_sheets_png_pdf_svg(grid_run, tmp_path):
    """Map sheets (图件): A4/A3 landscape at the asked dpi, vector PDF/SVG, one tier or all."""
    import subprocess

    from PIL import Image

    from lifecircle.maps import write_map_sheet

    png = write_map_sheet(grid_run, tmp_path / "s.png", lang="en", dpi=100)
    with Image.open(png) as im:
        # A4 landscape, 297 x 210 mm at 100 dpi (matplotlib rounds pixels down)
        assert np.allclose(im.size, (297 / 25.4 * 100, 210 / 25.4 * 100), atol=1)
    a3 = write_map_sheet(grid_run, tmp_path / "a3.png", lang="en", dpi=50, paper="A3")
    with Image.open(a3) as im:
        assert np.allclose(im.size, (420 / 25.4 * 50, 297 / 25.4 * 50), atol=1)
    pdf = write_map_sheet(grid_run, tmp_path / "s.pdf", lang="zh", tier="point")
    info = subprocess.run(["pdfinfo", str(pdf)], capture_output=True, text=True).stdout
    assert re.search(r"Page size:\s+841\.\d+ x 595\.\d+ pts", info)
    images = subprocess.run(["pdfimages", "-list", str(pdf)], capture_output=True, text=True)
    assert len(images.stdout.strip().splitlines()) == 2  # header only: everything is vector
    text = subprocess.run(["pdftotext", str(pdf), "-"], capture_output=True, text=True).stdout
    for words in ("制图信息", "坐标系", "数据来源", "图例", "北", "便民点", "服务标准"):
        assert words in text
    svg = write_map_sheet(grid_run, tmp_path / "s.svg", lang="en")
    assert "<svg" in svg.read_text(encoding="utf-8")[:1000]
    with pytest.raises(InputError, match=r"should end in \.png, \.pdf or \.svg"):
        write_map_sheet(grid_run, tmp_path / "s.jpg")
    with pytest.raises(InputError, match="out of range"):
        write_map_sheet(grid_run, tmp_path / "t.png", dpi=5000)


def test_map_cli_offline_demo(tmp_path, capsys):
    """``lifecircle map`` takes the shared input options and writes an offline page and a PNG."""
    from lifecircle.cli import main

    scenario = Path(__file__).resolve().parents[1] / "data" / "demo" / "tancheng" / "scenario.toml"
    if not scenario.exists():
        from lifecircle.demo import generate

        scenario = generate(tmp_path / "demo")["scenario"]
    out = tmp_path / "maps" / "demo.html"
    rc = main(
        [
            "map",
            "--scenario",
            str(scenario),
            "--out",
            str(out),
            "--offline",
            "--png",
            str(tmp_path / "maps" / "demo.png"),
            "--dpi",
            "60",
            "--per-tier",
            "--no-cache",
        ]
    )
    assert rc == 0
    page = out.read_text(encoding="utf-8")
    assert out.stat().st_size <= 15e6
    assert external_references(page) == []
    assert "合成示范数据" in page  # the synthetic-data warning in the title
    # --per-tier: one sheet per tier, named after the tier key
    for key in ("county_centre", "subdistrict_centre", "community_centre", "station", "point"):
        assert (tmp_path / "maps" / f"demo_{key}.png").stat().st_size > 5_000
    assert not (tmp_path / "maps" / "demo.png").exists()
    assert "demo.html" in capsys.readouterr().out
    assert main(["map", "--scenario", str(scenario), "--out", str(out), "--no-cache"]) == 1
    assert (
        main(["map", "--scenario", str(scenario), "--out", str(tmp_path / "x.txt"), "--no-cache"])
        == 1
    )


def test_candidates_map_offline_picks_and_gaps(grid_run, tmp_path):
    """The site-scoring map: candidates sized by gain, picks numbered, gaps drawn; offline too."""
    import pandas as pd

    from lifecircle.siting import score_sites

    xy = node_xy()
    lon, lat = grid_lonlat(grid_run.inputs.networks["walk"], xy[[5, 30, 33], 0], xy[[5, 30, 33], 1])
    cands = pd.DataFrame({"id": ["A", "B", "C"], "name": ["a", "b", "c"], "lon": lon, "lat": lat})
    scoring = score_sites(
        grid_run.result, grid_run.inputs.networks["walk"], cands, "point", select_k=1
    )
    m = build_candidates_map(scoring, grid_run, offline=True)
    page = render_map_html(m, offline=True)
    assert external_references(page) == [] and not [u for u in sources(page) if "//" in u]
    assert "candidate sites" in page and "pick 1" in page
    assert "candidates (size = gain)" in page and "gaps (uncovered, per cell)" in page
    path = write_candidates_map(scoring, grid_run, tmp_path / "c" / "candidates.html")
    assert external_references(path.read_text(encoding="utf-8")) == []  # offline by default
    amap = write_candidates_map(scoring, grid_run, tmp_path / "a.html", basemap="amap")
    assert "crs: L.CRS.GCJ02" in amap.read_text(encoding="utf-8")
    assert "crs: L.CRS.GCJ02" not in path.read_text(encoding="utf-8")
    online = write_candidates_map(scoring, grid_run, tmp_path / "o.html", offline=False)
    assert "cdn.jsdelivr.net" in online.read_text(encoding="utf-8")  # --online opts into CDNs
    with pytest.raises(OutputExistsError):
        write_candidates_map(scoring, grid_run, path)


def test_basemaps_resolve_and_tianditu_key():
    from lifecircle.maps import resolve_basemap

    assert resolve_basemap(None) is None and resolve_basemap("none") is None
    assert not resolve_basemap("osm").gcj02
    assert resolve_basemap("amap").gcj02
    assert resolve_basemap("https://webrd01.is.autonavi.com/appmaptile?x={x}&y={y}&z={z}").gcj02
    assert not resolve_basemap("http://tiles.local/{z}/{x}/{y}.png").gcj02
    tdt = resolve_basemap("tianditu-img", environ={"TIANDITU_KEY": "k123"})
    assert [("LAYER=img" in u, "LAYER=cia" in u, "tk=k123" in u) for u, _, _ in tdt.layers] == [
        (True, False, True),
        (False, True, True),
    ]
    with pytest.raises(InputError, match="TIANDITU_KEY"):
        resolve_basemap("tianditu", environ={})
    with pytest.raises(InputError, match="unknown basemap 'google'"):
        resolve_basemap("google")
    with pytest.raises(InputError, match=r"needs \{z\}"):
        resolve_basemap("http://tiles.local/tile.png")

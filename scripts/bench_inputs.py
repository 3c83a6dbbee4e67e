"""Benchmark of real-input loading (issue #12).

Part "clip" (this file's ``bench_clip``): clip a SYNTHETIC ~5-million-node ``.osm.pbf`` (a
2,240 x 2,240 street grid with 60 m blocks, ~134 km square, written here with pyosmium's writer)
to a county-sized polygon (40 x 35 km, about Tancheng's 1,300 km²) plus the default 2,000 m
buffer. Targets: <= 60 s and < 2 GB peak memory. The baseline, measured in the same run, is a bare
pyosmium pass over the same file with node locations (the I/O floor of any one-pass clip).
Each measured step runs in its own process so its peak memory (ru_maxrss) is its own.

    PYTHONPATH=src python scripts/bench_inputs.py [--side 2240] [--keep DIR]

Other parts of #12 (rasters, tables) live in their own functions, added by their branch.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ORIGIN = (117.6, 34.2)  # south-west corner (WGS84): southern Shandong
SPACING_M = 60.0


def county_box(side: int) -> tuple[float, float, float, float]:
    """A 40 x 35 km box in the middle of the synthetic grid (lon/lat)."""
    import numpy as np

    span_lon = side * SPACING_M / (111_195.0 * np.cos(np.deg2rad(ORIGIN[1])))
    span_lat = side * SPACING_M / 111_195.0
    cx, cy = ORIGIN[0] + span_lon / 2, ORIGIN[1] + span_lat / 2
    dlon = 20_000 / (111_195.0 * np.cos(np.deg2rad(cy)))
    dlat = 17_500 / 111_195.0
    return (cx - dlon, cy - dlat, cx + dlon, cy + dlat)


def _peak_mb() -> float:
    """Peak RSS of this process in MB: VmHWM on Linux (not inherited from the parent)."""
    status = Path("/proc/self/status")
    if status.exists():
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return float(line.split()[1]) / 1024.0
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _child(step: str, pbf: str, box: list[float], out: str) -> None:
    """One measured step in this process; prints a JSON line with seconds and peak MB."""
    t0 = time.perf_counter()
    info: dict[str, object] = {}
    if step == "bare":
        import osmium

        class Count(osmium.SimpleHandler):
            def __init__(self) -> None:
                super().__init__()
                self.ways = 0
                self.refs = 0

            def way(self, w: object) -> None:
                self.ways += 1
                self.refs += len(w.nodes)  # type: ignore[attr-defined]

        h = Count()
        h.apply_file(pbf, locations=True)
        info = {"ways": h.ways, "way_nodes": h.refs}
    else:
        from shapely.geometry import box as shp_box

        from lifecircle.extract import extract_regions

        st = extract_regions(pbf, {"county": shp_box(*box)}, {"county": out}, buffer_m=2000.0)
        info = {
            "ways_read": st.ways_read,
            "ways_kept": st.ways_kept["county"],
            "nodes_kept": st.nodes_kept["county"],
        }
    info["seconds"] = time.perf_counter() - t0
    info["peak_mb"] = _peak_mb()
    print(json.dumps(info))


def _measure(step: str, pbf: Path, box: tuple[float, ...], out: Path) -> dict[str, float]:
    cmd = [sys.executable, __file__, "--child", step, str(pbf), json.dumps(list(box)), str(out)]
    res = subprocess.run(cmd, check=True, capture_output=True, text=True)
    return json.loads(res.stdout.strip().splitlines()[-1])


def bench_clip(side: int, folder: Path) -> dict[str, object]:
    """Write the big PBF (once), then time the bare pass and the clip; return the figures."""
    from lifecircle.datasets import write_grid_pbf
    from lifecircle.network import load_network

    pbf = folder / f"grid{side}.osm.pbf"
    if not pbf.exists():
        t0 = time.perf_counter()
        counts = write_grid_pbf(pbf, [(ORIGIN[0], ORIGIN[1], side, side, SPACING_M)])
        print(
            f"wrote {pbf.name}: {counts['nodes']:,} nodes, {counts['ways']:,} ways, "
            f"{pbf.stat().st_size / 1e6:.0f} MB in {time.perf_counter() - t0:.1f} s"
        )
    box = county_box(side)
    out = folder / "county.osm.pbf"
    bare = _measure("bare", pbf, box, out)
    clip = _measure("clip", pbf, box, out)
    net = load_network(out)
    return {"file_mb": pbf.stat().st_size / 1e6, "bare": bare, "clip": clip, "nodes": net.n_nodes}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--side", type=int, default=2240, help="grid side in nodes (2240: ~5.0 M)")
    ap.add_argument("--keep", metavar="DIR", help="keep the synthetic PBF in this folder")
    ap.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child:
        step, pbf, box, out = a.child
        _child(step, pbf, json.loads(box), out)
        return
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(a.keep) if a.keep else Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        r = bench_clip(a.side, folder)
    bare, clip = r["bare"], r["clip"]
    assert isinstance(bare, dict) and isinstance(clip, dict)
    n_m = a.side * a.side / 1e6
    print(f"\nclip a {n_m:.2f} M-node PBF ({r['file_mb']:.0f} MB) to a 40 x 35 km county + 2 km:")
    print(f"  {'step':<34}{'seconds':>10}{'peak MB':>10}")
    print(f"  {'baseline: bare pyosmium pass':<34}{bare['seconds']:>10.1f}{bare['peak_mb']:>10.0f}")
    print(f"  {'clip (extract_regions)':<34}{clip['seconds']:>10.1f}{clip['peak_mb']:>10.0f}")
    print(
        f"  kept {clip['ways_kept']:,} of {clip['ways_read']:,} ways, {clip['nodes_kept']:,} nodes "
        f"({r['nodes']:,} network nodes); clip / bare = {clip['seconds'] / bare['seconds']:.2f}x"
    )
    ok_t = clip["seconds"] <= 60
    ok_m = clip["peak_mb"] < 2048
    print(
        f"  target <= 60 s: {'met' if ok_t else 'NOT met'}; < 2 GB: {'met' if ok_m else 'NOT met'}"
    )


if __name__ == "__main__":
    main()

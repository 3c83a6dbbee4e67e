"""Benchmark of ``lifecircle grids --propose`` on the county-scale demo (issue 18). Prints figures.

Scenario: the SYNTHETIC county-scale Tancheng demo (``lifecircle demo --scale county`` generates
it; this script generates it into a temporary folder when ``--data`` is not given): the whole
county, ~885,000 people, 31 communities and townships, 123 grids, ~120,000 network nodes.

Measured in one run (seconds, wall clock):
- loading the inputs (network parse, facilities, residents, units);
- baseline: ``run_coverage`` on the same inputs (every resident's distance to each of the five
  tiers), the engine's own figure on this machine, to compare the grid analysis against;
- ``run_grids`` without a proposal (coverage check, per-grid table, base distances);
- ``run_grids(propose=True)`` and writing every output (CSV, GeoPackage, map, report): the
  command's cost, target <= 60 s including the load;
- the proposal's result: grids now and proposed, in band, infeasible communities.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_common import peak_rss_mb
from lifecircle import demo
from lifecircle.pipeline import load_inputs, run_coverage, run_grids, write_grids_outputs

TARGET_S = 60.0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", help="county scenario folder (default: generate one)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        if args.data:
            scenario = Path(args.data) / "scenario.toml"
        else:
            t = time.perf_counter()
            demo.generate(Path(tmp) / "county", seed=2020, scale="county")
            scenario = Path(tmp) / "county" / "scenario.toml"
            print(f"generated the county demo in {time.perf_counter() - t:.1f} s")
        t0 = time.perf_counter()
        inputs = load_inputs(scenario=scenario, cache_dir=None)
        t_load = time.perf_counter() - t0
        t = time.perf_counter()
        run_coverage(inputs)
        t_cov = time.perf_counter() - t
        t = time.perf_counter()
        plain = run_grids(inputs)
        t_plain = time.perf_counter() - t
        t = time.perf_counter()
        run = run_grids(inputs, propose=True)
        t_prop = time.perf_counter() - t
        t = time.perf_counter()
        write_grids_outputs(run, Path(tmp) / "out")
        t_write = time.perf_counter() - t
    s = run.summary()
    n_res = len(inputs.residents.frame) if inputs.residents is not None else 0
    total = t_load + t_prop + t_write
    print(f"county demo: {n_res:,} resident points, {s['households']:,.0f} households, "
          f"{s['grids']} grids, {inputs.networks['walk'].n_nodes:,} walk nodes")  # fmt: skip
    print(f"load inputs                         {t_load:8.2f} s")
    print(f"baseline: run_coverage (5 tiers)    {t_cov:8.2f} s")
    print(f"run_grids (check + base distances)  {t_plain:8.2f} s")
    print(f"run_grids --propose                 {t_prop:8.2f} s")
    print(f"write outputs (csv, gpkg, map, report) {t_write:5.2f} s")
    verdict = "meets" if total <= TARGET_S else "MISSES"
    print(
        f"grids --propose end to end          {total:8.2f} s  "
        f"({verdict} the {TARGET_S:.0f} s target)"
    )
    print(f"grids in band today: {plain.summary()['grids_within_band']}/{s['grids']}; proposed: "
          f"{s['proposed_within_band']}/{s['proposed_grids']} in band, {s['proposed_kept']} kept, "
          f"{s['infeasible_communities']} infeasible communities")  # fmt: skip
    print(f"peak memory {peak_rss_mb():.0f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())

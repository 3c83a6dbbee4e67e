"""``lifecircle demo`` end to end: generate, analyse, report, map; the summary names the gap."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pandas as pd
import pytest

from lifecircle.cli import main


def test_demo_end_to_end(tmp_path, capsys):
    data, out, html = tmp_path / "data", tmp_path / "out", tmp_path / "maps" / "demo.html"
    # --no-pdf: test_wheel checks report.pdf of an installed demo; this one stays faster
    argv = ["demo", "--data", str(data), "--out", str(out), "--map", str(html)]
    code = main([*argv, "--lang", "en", "--no-pdf"])
    assert code == 0
    printed = capsys.readouterr().out
    assert "SYNTHETIC" in printed
    # the terminal names the worst-served communities for the 5-minute tier
    worst = re.findall(r"^  (\S+) \((C\d+)\): ([\d.]+)% of", printed, flags=re.M)
    assert len(worst) == 3
    units = pd.read_csv(out / "units_community.csv")
    units = units[~units["outside"]]
    median = units["point_share"].median()
    name, cid, share = worst[0]
    row = units.set_index("unit_id").loc[cid]
    assert row["name"] == name
    assert float(share) == round(100 * row["point_share"], 1)
    assert row["point_share"] == units["point_share"].min()
    assert row["point_share"] < median - 0.3  # clearly worse than the typical community
    # the outputs exist and say what they are
    summary = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    assert summary["synthetic"] is True
    assert summary["inputs"]["facilities"]["used"] == 1587
    page = html.read_text(encoding="utf-8")
    assert "合成" in page or "synthetic" in page.lower()
    assert html.with_suffix(".png").exists()
    assert (out / "lifecircle.xlsx").exists() and not (out / "report.pdf").exists()
    assert html.stat().st_size < 15e6
    # one grid line: grids in band, the largest gap, the farthest household from its base
    line = next(x for x in printed.splitlines() if x.startswith("grids: "))
    grids = pd.read_csv(out / "grids.csv")
    in_band = int(grids["within_band"].sum())
    assert f"grids: {in_band}/{len(grids)} in band (300-500 households)" in line
    far = grids["base_max_m"].max()
    far_id = grids.loc[grids["base_max_m"].idxmax(), "grid_id"]
    assert f"farthest household from its base {far:,.0f} m ({far_id})" in line
    assert "largest gap 0 m² (0 gaps" in line  # the demo's grids tile its communities
    # the grid system is a section of the report, and has its own map
    report = (out / "report.html").read_text(encoding="utf-8")
    assert "Grid system: full coverage, balance and reach" in report  # --lang en
    assert all(f">{g}</td>" in report for g in grids["grid_id"])
    assert "Grids (by households)" in (out / "grids.html").read_text(encoding="utf-8")


@pytest.mark.slow
def test_demo_population_table_variant(tmp_path, capsys):
    repo_data = Path(__file__).resolve().parents[1] / "data" / "demo" / "tancheng"
    out, html = tmp_path / "out", tmp_path / "maps" / "demo.html"
    code = main(
        ["demo", "--data", str(repo_data), "--population", "table", "--out", str(out),
         "--map", str(html), "--lang", "en", "--no-pdf"]
    )  # fmt: skip
    assert code == 0
    printed = capsys.readouterr().out
    assert "people from 16 community polygons + the population table: 200,000 placed" in printed
    summary = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    assert summary["population_inputs"]["kind"] == "polygons_with_table"
    assert summary["tiers"]["point"]["population_total"] == 200000
    residents = pd.read_csv(out / "residents.csv")
    assert set(residents["placement"]) == {"street"}
    assert residents["snap_m"].max() < 0.01

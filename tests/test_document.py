"""The report a planner hands in (lifecircle.document): report.html from Jinja2, report.pdf."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import shapely

from lifecircle.cli import main
from lifecircle.config import PRESETS, preset
from lifecircle.document import find_chromium, nearest_street_names, render_report_html
from lifecircle.errors import InputError, MissingProgramError
from lifecircle.maps import external_references
from lifecircle.pipeline import load_inputs, run_coverage, run_report
from test_report import make_inputs, node_xy

SCENARIO = Path(__file__).resolve().parents[1] / "data" / "demo" / "tancheng" / "scenario.toml"
A4_PT = (595.0, 842.0)


def _pdf_pages(pdf: Path) -> list[tuple[float, float]]:
    info = subprocess.run(
        ["pdfinfo", "-f", "1", "-l", "999", str(pdf)], capture_output=True, text=True, check=True
    ).stdout
    return [
        (float(w), float(h))
        for w, h in re.findall(r"Page\s+\d+ size:\s+([\d.]+) x ([\d.]+) pts", info)
    ]


def _pdf_images(pdf: Path) -> list[int]:
    """Page number of every embedded image."""
    out = subprocess.run(
        ["pdfimages", "-list", str(pdf)], capture_output=True, text=True, check=True
    ).stdout
    return [int(line.split()[0]) for line in out.splitlines()[2:] if line.strip()]


@pytest.fixture(scope="module")
def zh_report(tmp_path_factory):
    if shutil.which("pdfinfo") is None:
        pytest.fail("poppler-utils (pdfinfo, pdftotext, pdfimages) is needed: see .ci/run")
    out = tmp_path_factory.mktemp("doc") / "out"
    rc = main(["-q", "report", "--scenario", str(SCENARIO), "--out", str(out), "--lang", "zh"])
    assert rc == 0
    return out


@pytest.mark.slow
@pytest.mark.browser
def test_pdf_is_a4_with_a_map_per_tier_and_charts(zh_report):
    pdf = zh_report / "report.pdf"
    pages = _pdf_pages(pdf)
    assert len(pages) >= 8
    for w, h in pages:  # A4 portrait or landscape
        assert sorted((round(w), round(h))) == [round(A4_PT[0]), round(A4_PT[1])]
    assert any(w > h for w, h in pages) and any(h > w for w, h in pages)
    std = preset("tancheng")
    images = _pdf_images(pdf)
    # one map per tier and three charts (by tier, by community, distances)
    assert len(images) == len(std.tiers) + 3
    text = subprocess.run(
        ["pdftotext", "-layout", str(pdf), "-"], capture_output=True, text=True, check=True
    ).stdout
    assert "15分钟社区生活圈覆盖评估报告" in text and "郯城街道" in text
    assert "合成示范数据" in text
    for t in std.tiers:
        assert t.label_zh in text
        assert t.key not in text, f"tier key {t.key!r} in the Chinese PDF"
    for key in PRESETS:
        assert key not in text, f"standard key {key!r} in the Chinese PDF"
    for word in ("Community", "Grid", "Sub-district", "community", "grid", "subdistrict"):
        assert word not in text, f"English unit-layer name {word!r} in the Chinese PDF"
    # unit tables: the header is repeated on every page a table continues on
    pages_text = text.split("\f")
    grid_pages = [t for t in pages_text if re.search(r"C\d\d-G\d\d", t)]
    assert len(grid_pages) >= 2
    assert all("人口" in t and "名称" in t for t in grid_pages)
    # gaps are described as places, not as ids such as station-005
    assert not re.search(r"\b\w+_?\w*-\d{3}\b", text)
    assert "社区，近" in text


@pytest.mark.slow
def test_report_html_is_offline_and_self_contained(zh_report):
    page = (zh_report / "report.html").read_text(encoding="utf-8")
    assert external_references(page) == []
    assert "<script" not in page
    assert page.count('src="data:image/png;base64,') == len(preset("tancheng").tiers) + 3
    assert "<thead>" in page and "break-inside: avoid" in page
    assert (zh_report / "lifecircle.xlsx").exists()


def test_template_override_and_errors(tmp_path):
    xy = node_xy()
    inputs = make_inputs(
        tmp_path,
        res_xy=xy,
        pop=np.arange(1, 37),
        fac_xy=xy[[14, 0, 35]],
        fac_tier=["station", "point", "point"],
    )
    cov = run_coverage(inputs)
    rep = run_report(cov)
    tpl = tmp_path / "mine.html"
    tpl.write_text(
        "<h1>{{ title }}</h1><p>{{ maps | length }} maps, {{ charts | length }} charts</p>"
        "{% for u in unit_tables %}<h2>{{ u.title }}</h2>{% endfor %}",
        encoding="utf-8",
    )
    page = render_report_html(cov, rep, lang="en", template=tpl)
    assert page.startswith("<h1>15-minute community living circle: coverage report</h1>")
    assert "<p>2 maps, 3 charts</p>" in page
    assert "<h2>Coverage by Community (worst first)</h2>" in page
    with pytest.raises(InputError, match="does not exist"):
        render_report_html(cov, rep, template=tmp_path / "missing.html")
    bad = tmp_path / "bad.html"
    bad.write_text("{{ no_such_thing }}", encoding="utf-8")
    with pytest.raises(InputError, match=r"report template .*bad\.html"):
        render_report_html(cov, rep, template=bad)


def test_missing_chromium_is_one_clear_line_and_writes_nothing(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("LIFECIRCLE_CHROMIUM", str(tmp_path / "no-chromium"))
    with pytest.raises(MissingProgramError, match="LIFECIRCLE_CHROMIUM"):
        find_chromium()
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.delenv("LIFECIRCLE_CHROMIUM")
    out = tmp_path / "out"
    rc = main(["report", "--scenario", str(SCENARIO), "--out", str(out)])
    assert rc == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "needs Chromium" in err[0] and "--no-pdf" in err[0]
    assert not out.exists() or not any(out.iterdir())


def test_nearest_street_names_match_brute_force():
    inputs = load_inputs(scenario=SCENARIO, cache_dir=None)
    cov = run_coverage(inputs)
    net = inputs.networks["walk"]
    rng = np.random.default_rng(3)
    x = rng.uniform(net.node_x.min(), net.node_x.max(), 25)
    y = rng.uniform(net.node_y.min(), net.node_y.max(), 25)
    got = nearest_street_names(cov, x, y)
    named = np.flatnonzero(net.edge_name >= 0)
    lines = shapely.linestrings(net.edge_coords()[named])
    for i in range(len(x)):
        d = shapely.distance(lines, shapely.Point(x[i], y[i]))
        best = d.min()
        names = {net.name_values[net.edge_name[named[j]]] for j in np.flatnonzero(d <= best + 1e-9)}
        assert got[i] in names

"""Hardening (#15): strict configuration, failing loudly, values, atomic output sets, no traceback.

Each test names the case of issue #15 it covers. The inputs are the tiny file-based scenario of
``tests/hostile.py`` (a real OSM XML grid parsed by lifecircle's reader, CSV inputs).
"""

from __future__ import annotations

import errno
import json
import logging
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import lifecircle as lc
from hostile import facilities_frame, lonlat, residents_frame, write_scenario
from lifecircle import _outset
from lifecircle._schema import SCENARIO, STANDARD, schema_markdown
from lifecircle.cli import main
from lifecircle.config import load_standard
from lifecircle.errors import ConfigError, InputError, RejectThresholdError
from lifecircle.io import load_scenario, read_points

REPO = Path(__file__).resolve().parents[1]


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    cap = capsys.readouterr()
    return code, cap.out, cap.err


def coverage_argv(scenario: Path, out: Path, *extra: str) -> list[str]:
    return ["coverage", "--scenario", str(scenario), "--out", str(out), "--no-cache", *extra]


# -- strict configuration -------------------------------------------------------------------


def test_config_docs_match_the_schema() -> None:
    doc = (REPO / "docs" / "configuration.md").read_text(encoding="utf-8")
    for schema in (SCENARIO, STANDARD):
        for line in schema_markdown(schema).splitlines():
            assert line in doc, f"docs/configuration.md is out of date: {line!r}"


@pytest.mark.parametrize(
    ("section", "line", "expected"),
    [
        (
            "facilities",
            'csr = "gcj02"',
            r"\[facilities\], key 'csr': unknown key; did you mean 'crs'",
        ),
        ("standard", 'presett = "gb50180"', r"\[standard\], key 'presett'.*did you mean 'preset'"),
        ("analysis", "max_snap = 50", r"\[analysis\], key 'max_snap'.*did you mean 'max_snap_m'"),
        ("analysis", 'max_snap_m = "abc"', r"key 'max_snap_m': must be a number.*got string 'abc'"),
        ("analysis", "max_snap_m = -5", r"key 'max_snap_m': -5 is out of range; allowed: ≥ 0"),
        ("analysis", 'mode = "fly"', r"key 'mode': 'fly' is not allowed"),
    ],
)
def test_scenario_typos_and_bad_values_are_errors(
    tmp_path: Path, section: str, line: str, expected: str
) -> None:
    sc = write_scenario(tmp_path)
    text = sc.read_text(encoding="utf-8")
    text = (
        text.replace(f"[{section}]\n", f"[{section}]\n{line}\n")
        if f"[{section}]" in text
        else (text + f"\n[{section}]\n{line}\n")
    )
    sc.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError, match=expected) as info:
        load_scenario(sc)
    assert str(sc) in str(info.value)


def test_every_config_problem_at_once_one_line_each(tmp_path: Path) -> None:
    sc = write_scenario(tmp_path)
    sc.write_text(
        sc.read_text(encoding="utf-8").replace("[facilities]\n", '[facilities]\ncsr = "gcj02"\n')
        + "\n[analysis]\nmax_snap = 50\n[extra]\nx = 1\n",
        encoding="utf-8",
    )
    with pytest.raises(ConfigError) as info:
        load_scenario(sc)
    assert len(info.value.lines) == 3
    assert all(str(sc) in line for line in info.value.lines)
    assert "unknown section 'extra'" in str(info.value)


def test_zero_snap_distance_is_respected(tmp_path: Path) -> None:
    sc = write_scenario(tmp_path)
    sc.write_text(sc.read_text(encoding="utf-8") + "\n[analysis]\nmax_snap_m = 0\n", "utf-8")
    assert load_scenario(sc).max_snap_m == 0
    inputs = lc.load_inputs(scenario=sc, cache_dir=None, min_used_share=0.0)
    assert inputs.max_snap_m == 0.0


def test_standard_toml_is_strict(tmp_path: Path) -> None:
    p = tmp_path / "std.toml"
    p.write_text('nmae = "x"\n[[tiers]]\nkey = "a"\nminutes = 0\nthreshold = 300\n', "utf-8")
    with pytest.raises(ConfigError) as info:
        load_standard(p)
    text = str(info.value)
    assert "unknown key 'nmae'; did you mean 'name'" in text
    assert "key 'minutes': 0 is out of range; allowed: > 0" in text
    assert "key 'threshold': unknown key; did you mean 'threshold_m'" in text


@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("--limit-m", "nan"),
        ("--limit-m", "-100"),
        ("--limit-m", "inf"),
        ("--max-snap-m", "-1"),
        ("--max-snap-m", "abc"),
        ("--max-rejects", "-1"),
        ("--max-population", "0"),
    ],
)
def test_numeric_options_checked_at_parse_time(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], option: str, value: str
) -> None:
    with pytest.raises(SystemExit) as info:
        main(["coverage", "--scenario", "x.toml", "--out", str(tmp_path / "o"), option, value])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert f"argument {option}" in err and "expected" in err and "Traceback" not in err
    assert not (tmp_path / "o").exists()


def test_full_width_digits_in_an_option(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    sc = write_scenario(tmp_path / "in")
    code, _, _ = run(capsys, *coverage_argv(sc, tmp_path / "o", "--limit-m", "５０００", "-q"))
    assert code == 0


# -- fail loudly ------------------------------------------------------------------------------


def _swapped_facilities() -> pd.DataFrame:
    f = facilities_frame()
    f[["lon", "lat"]] = f[["lat", "lon"]].to_numpy()
    return f


def test_swapped_lonlat_stops_with_exit_3_and_a_diagnosis(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sc = write_scenario(tmp_path / "in", facilities=_swapped_facilities())
    out = tmp_path / "out"
    code, _, err = run(capsys, *coverage_argv(sc, out, "-q"))
    assert code == 3
    assert "lon and lat are probably swapped" in err
    # every reject reason is counted on stderr, even with -q
    assert "rejected facilities: coordinates_out_of_range 4" in err
    # the rejects are written, the results are not
    assert sorted(p.name for p in out.iterdir()) == ["manifest.json", "rejects.csv"]
    assert len(pd.read_csv(out / "rejects.csv")) == 4
    assert json.loads((out / "manifest.json").read_text())["status"].startswith("failed")
    assert _outset.verify_manifest(out) == []


def test_wrong_declared_crs_is_diagnosed_with_the_offset(tmp_path: Path) -> None:
    sc = write_scenario(tmp_path, facilities=facilities_frame())
    sc.write_text(
        sc.read_text("utf-8").replace(
            'path = "facilities.csv"', 'path = "facilities.csv"\ncrs = "bd09"'
        ),
        "utf-8",
    )
    # read as Baidu coordinates, the WGS84 sites move ~1 km south-west: off the 500 m grid
    with pytest.raises(RejectThresholdError) as info:
        lc.load_inputs(scenario=sc, cache_dir=None, max_snap_m=20.0)
    msg = str(info.value)
    assert "declared coordinate system bd09 is probably wrong: read as wgs84" in msg
    offset = float(re.search(r"an offset of ([\d,]+) m", msg).group(1).replace(",", ""))  # type: ignore[union-attr]
    assert 500 < offset < 1500  # Baidu's offset at Tancheng is about a kilometre


def test_network_of_another_area_reports_both_bounding_boxes(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the command-line tests configure the "lifecircle" logger not to propagate; caplog listens
    # at the root
    monkeypatch.setattr(logging.getLogger("lifecircle"), "propagate", True)
    caplog.set_level(logging.WARNING, logger="lifecircle")
    res = residents_frame()
    res["lon"] += 0.5  # 45 km east: another county's residents
    sc = write_scenario(tmp_path, residents=res)
    with pytest.raises(RejectThresholdError) as info:
        lc.load_inputs(scenario=sc, cache_dir=None)
    assert "12 of 12 row(s) rejected as outside the road network's area" in caplog.text
    msg = str(info.value)
    assert "residents (by people)" in msg and "does not cover the inputs" in msg
    assert re.search(r"network lon [\d.]+\.\.[\d.]+, lat .* rejected points lon [\d.]+", msg)
    assert info.value.counts == {("residents", "outside_network_area"): 12}


def test_allow_rejects_runs_anyway(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    sc = write_scenario(tmp_path / "in", facilities=_swapped_facilities())
    code, _, _ = run(capsys, *coverage_argv(sc, tmp_path / "out", "--allow-rejects", "-q"))
    assert code == 0
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["inputs"]["facilities"] == {"input": 4, "used": 0, "rejected": 4}


@pytest.mark.parametrize("flag", [["--max-rejects", "0"], ["--strict"]])
def test_max_rejects_and_strict(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], flag: list[str]
) -> None:
    res = residents_frame()
    res.loc[0, "population"] = -3
    sc = write_scenario(tmp_path / "in", residents=res)
    out = tmp_path / "out"
    code, _, err = run(capsys, *coverage_argv(sc, out, *flag))
    assert code == 3 and "more than --max-rejects 0" in err
    assert "rejected residents: negative_population 1" in err
    assert pd.read_csv(out / "rejects.csv")["reason"].tolist() == ["negative_population"]
    code, _, _ = run(capsys, *coverage_argv(sc, tmp_path / "out2", "--max-rejects", "1"))
    assert code == 0


# -- values -----------------------------------------------------------------------------------


def test_population_values(tmp_path: Path) -> None:
    res = residents_frame().astype({"population": object})
    res.loc[0, "population"] = "１９"  # full-width digits
    res.loc[1, "population"] = "1,900"  # thousands separator
    res.loc[2, "population"] = "inf"
    res.loc[3, "population"] = "1e11"
    res.loc[4, "population"] = "1,90"  # ambiguous: not a number
    res.loc[5, "population"] = "６０，０００"  # full-width, above the default maximum
    p = tmp_path / "res.csv"
    res.to_csv(p, index=False)
    t = read_points(p, "residents")
    assert t.frame.set_index("id").loc[["R1", "R2"], "population"].tolist() == [19.0, 1900.0]
    reasons = t.rejects.set_index("id")["reason"].to_dict()
    assert reasons == {
        "R3": "implausible_population",
        "R4": "implausible_population",
        "R5": "non_numeric_population",
        "R6": "implausible_population",
    }
    assert len(t.frame) + len(t.rejects) == t.n_input == 12
    assert "at most 50,000" in t.rejects.set_index("id").loc["R4", "detail"]
    assert read_points(p, "residents", max_population=1e12).rejects["id"].tolist() == ["R3", "R5"]


def test_multipoint_and_line_geometries(tmp_path: Path) -> None:
    import geopandas as gpd
    from shapely.geometry import LineString, MultiPoint, Point, Polygon

    lon, lat = lonlat(np.array([100.0, 400.0, 200.0]), np.array([100.0, 400.0, 300.0]))
    fac = gpd.GeoDataFrame(
        {"id": ["A", "B", "C", "D"], "tier": "station"},
        geometry=[
            MultiPoint([(lon[0], lat[0]), (lon[1], lat[1])]),  # members 420 m apart
            MultiPoint([(lon[2], lat[2]), (lon[2], lat[2])]),  # coincident members: one place
            LineString([(lon[0], lat[0]), (lon[1], lat[1])]),
            Point(lon[2], lat[2]),
        ],
        crs=4326,
    )
    fac.to_file(tmp_path / "fac.geojson")
    t = read_points(tmp_path / "fac.geojson", "facilities", standard=load_standard("tancheng"))
    assert t.frame["id"].tolist() == ["B", "D"]
    assert t.rejects.set_index("id")["reason"].to_dict() == {
        "A": "multipoint_geometry",
        "C": "non_point_geometry",
    }
    res = gpd.GeoDataFrame(
        {"id": ["R1", "R2"], "population": [10, 20]},
        geometry=[
            LineString([(lon[0], lat[0]), (lon[1], lat[1])]),
            Polygon([(lon[0], lat[0]), (lon[1], lat[0]), (lon[1], lat[1])]),
        ],
        crs=4326,
    )
    res.to_file(tmp_path / "res.geojson")
    t = read_points(tmp_path / "res.geojson", "residents")
    assert t.frame["id"].tolist() == ["R2"]  # a building polygon is a resident point
    assert t.rejects["reason"].tolist() == ["non_point_geometry"]


# -- atomic output sets ------------------------------------------------------------------------


def test_output_set_has_a_manifest(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    sc = write_scenario(tmp_path / "in")
    out = tmp_path / "out"
    code, _, _ = run(capsys, *coverage_argv(sc, out, "-q"))
    assert code == 0
    m = json.loads((out / "manifest.json").read_text())
    assert m["status"] == "complete" and m["lifecircle_version"] == lc.__version__
    assert m["command"][:2] == ["lifecircle", "coverage"]
    assert {f["name"] for f in m["files"]} == {
        "residents.csv",
        "facilities.csv",
        "summary.json",
        "rejects.csv",
        "lifecircle.xlsx",  # the planners' workbook (#13) is part of the set
    }
    fingerprints = {Path(i["path"]).name: i for i in m["inputs"]}
    assert set(fingerprints) == {"scenario.toml", "roads.osm", "facilities.csv", "residents.csv"}
    assert fingerprints["roads.osm"]["bytes"] == (tmp_path / "in" / "roads.osm").stat().st_size
    assert _outset.verify_manifest(out) == []
    (out / "residents.csv").write_text("tampered\n")
    assert _outset.verify_manifest(out) == ["residents.csv: size or hash differs from the manifest"]
    assert not list(tmp_path.glob(".out.tmp-*"))


def test_a_run_into_a_locked_folder_fails_at_once(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sc = write_scenario(tmp_path / "in")
    out = tmp_path / "out"
    with _outset._locked(out.absolute()):
        t0 = time.perf_counter()
        code, _, err = run(capsys, *coverage_argv(sc, out, "--overwrite"))
        elapsed = time.perf_counter() - t0
    assert code == 1 and "another lifecircle run" in err and str(os.getpid()) in err
    assert elapsed < 5.0 and not out.exists()


def test_two_concurrent_runs_into_one_folder(tmp_path: Path) -> None:
    sc = write_scenario(tmp_path / "in")
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "lifecircle", *coverage_argv(sc, out, "-q")]
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    procs = [subprocess.Popen(cmd, env=env, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    results = [(p.communicate(timeout=120)[1], p.returncode) for p in procs]
    results = [(c, e) for e, c in results]
    codes = sorted(c for c, _ in results)
    assert codes == [0, 1], results
    loser = next(e for c, e in results if c == 1)
    assert "another lifecircle run" in loser or "already exists" in loser
    assert "Traceback" not in loser
    assert _outset.verify_manifest(out) == []  # never a mixed set


def test_sigterm_during_overwrite_keeps_the_old_set(tmp_path: Path) -> None:
    rng = np.random.default_rng(7)
    n = 300_000  # big enough that the run is still working when the signal arrives
    lon, lat = lonlat(rng.uniform(0, 500, n), rng.uniform(0, 500, n))
    big = pd.DataFrame({"id": [f"R{i}" for i in range(n)], "lon": lon, "lat": lat, "population": 3})
    sc = write_scenario(tmp_path / "in")
    out = tmp_path / "out"
    assert main(coverage_argv(sc, out, "-q")) == 0
    before = (out / "manifest.json").read_bytes()
    big.to_csv(tmp_path / "in" / "residents.csv", index=False)
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    cmd = [sys.executable, "-m", "lifecircle", *coverage_argv(sc, out, "--overwrite", "-q")]
    proc = subprocess.Popen(cmd, env=env, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while not list(tmp_path.glob(".out.tmp-*")) and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.3)
    proc.send_signal(signal.SIGTERM)
    err = proc.communicate(timeout=60)[1]
    code = proc.returncode
    assert code == 143, err
    assert "terminated" in err and "Traceback" not in err
    assert (out / "manifest.json").read_bytes() == before
    assert _outset.verify_manifest(out) == []
    assert not list(tmp_path.glob(".out.tmp-*")) and not list(tmp_path.glob(".out.old-*"))


def test_demo_regenerate_is_atomic(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from lifecircle import demo

    data = tmp_path / "demo"
    data.mkdir()
    (data / "roads.osm").write_text("old roads")
    (data / "facilities.csv").write_text("old sites")

    def broken(out_dir: Path, **kw: object) -> None:
        (Path(out_dir) / "roads.osm").write_text("new roads")
        raise InputError("the generator failed half-way")

    monkeypatch.setattr(demo, "generate", broken)
    assert main(["demo", "--regenerate", "--data", str(data), "--out", str(tmp_path / "o")]) == 1
    assert (data / "roads.osm").read_text() == "old roads"
    assert sorted(p.name for p in tmp_path.iterdir()) == [".demo.lock", "demo"]


# -- no traceback -------------------------------------------------------------------------------


def test_out_naming_a_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    sc = write_scenario(tmp_path / "in")
    (tmp_path / "out").write_text("x")
    code, _, err = run(capsys, *coverage_argv(sc, tmp_path / "out"))
    assert code == 1 and "is a file; give a folder name" in err and "Traceback" not in err


def test_unexpected_error_is_one_line_and_a_log(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from lifecircle._commands import coverage

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))

    def boom(*a: object, **k: object) -> None:
        raise RuntimeError("something nobody expected")

    monkeypatch.setattr(coverage, "run_coverage", boom)
    sc = write_scenario(tmp_path / "in")
    code, _, err = run(capsys, *coverage_argv(sc, tmp_path / "out"))
    assert code == 1 and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1
    assert "unexpected RuntimeError: something nobody expected" in err
    log = Path(re.search(r"details in (\S+\.log)", err).group(1))  # type: ignore[union-attr]
    assert log.parent == tmp_path / "cache" / "lifecircle" / "logs"
    assert "Traceback" in log.read_text() and "boom" in log.read_text()
    assert not (tmp_path / "out").exists()
    code, _, err = run(capsys, *coverage_argv(sc, tmp_path / "out"), "--debug")
    assert code == 1 and "Traceback" in err


@pytest.mark.parametrize("code_", [errno.ENOSPC, errno.EROFS])
def test_disk_full_or_read_only_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, code_: int
) -> None:
    from lifecircle import pipeline

    sc = write_scenario(tmp_path / "in")
    out = tmp_path / "out"
    assert main(coverage_argv(sc, out, "-q")) == 0
    before = (out / "manifest.json").read_bytes()

    def full(frame: object, path: object, **k: object) -> None:
        raise OSError(code_, os.strerror(code_), str(path))

    monkeypatch.setattr(pipeline, "write_csv", full)
    code, _, err = run(capsys, *coverage_argv(sc, out, "--overwrite"))
    assert code == 1 and "Traceback" not in err and "cannot write" in err
    assert os.strerror(code_) in err and len(err.strip().splitlines()) == 1
    assert (out / "manifest.json").read_bytes() == before  # the old set is intact


def test_corrupt_cache_is_ignored_and_rebuilt(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    sc = write_scenario(tmp_path / "in")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    argv = ["coverage", "--scenario", str(sc), "-v"]
    assert main([*argv, "--out", "o1"]) == 0
    cached = list((tmp_path / ".lifecircle_cache").glob("*.npz"))
    assert cached
    for p in cached:
        p.write_bytes(b"not a zip file")
    capsys.readouterr()
    code, _, err = run(capsys, *argv, "--out", "o2")
    assert code == 0 and "ignoring the network cache" in err and "Traceback" not in err
    assert all(p.read_bytes()[:2] == b"PK" for p in cached)  # rebuilt in place
    # a cache folder that cannot be used at all: rebuilt in the user's cache folder
    for p in cached:
        p.unlink()
    (tmp_path / ".lifecircle_cache").rmdir()
    (tmp_path / ".lifecircle_cache").write_text("a file where the cache folder should be")
    code, _, err = run(capsys, *argv, "--out", "o3")
    assert code == 0 and "cannot write the network cache" in err
    assert list((tmp_path / "xdg" / "lifecircle" / "networks").glob("*.npz"))
    assert pd.read_csv(tmp_path / "o3" / "residents.csv").equals(
        pd.read_csv(tmp_path / "o1" / "residents.csv")
    )


def test_cp1252_console(tmp_path: Path) -> None:
    sc = write_scenario(tmp_path / "in")
    sc.write_text(sc.read_text("utf-8").replace("hostile test", "郯城县测试"), "utf-8")
    env = {**os.environ, "PYTHONPATH": str(REPO / "src"), "PYTHONIOENCODING": "cp1252"}
    ok = subprocess.run(
        [sys.executable, "-m", "lifecircle", *coverage_argv(sc, tmp_path / "out")],
        env=env,
        capture_output=True,
        timeout=120,
    )
    assert ok.returncode == 0, ok.stderr
    # stdout shows 郯 as "?" (the console's contract); nothing else changes
    assert b"Traceback" not in ok.stderr and "郯".encode() not in ok.stdout and b"?" in ok.stdout
    bad = subprocess.run(
        [
            sys.executable,
            "-m",
            "lifecircle",
            "coverage",
            "--scenario",
            str(tmp_path / "无.toml"),
            "--out",
            str(tmp_path / "o2"),
        ],
        env=env,
        capture_output=True,
        timeout=120,
    )
    assert bad.returncode == 1 and b"Traceback" not in bad.stderr
    assert b"does not exist" in bad.stderr


def test_isochrones_exit_3_writes_the_rejects(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sc = write_scenario(tmp_path / "in", facilities=_swapped_facilities())
    out = tmp_path / "areas.geojson"
    code, _, err = run(capsys, "isochrones", "--scenario", str(sc), "--out", str(out), "--no-cache")
    assert code == 3 and "swapped" in err
    assert not out.exists()
    assert len(pd.read_csv(tmp_path / "areas_rejects.csv")) == 4


def test_api_checks_distances(tmp_path: Path) -> None:
    sc = write_scenario(tmp_path)
    with pytest.raises(InputError, match="max_snap_m must be a distance"):
        lc.load_inputs(scenario=sc, cache_dir=None, max_snap_m=float("nan"))
    inputs = lc.load_inputs(scenario=sc, cache_dir=None)
    for bad in (float("nan"), -5.0, float("inf")):
        with pytest.raises(InputError, match="limit_m must be a positive number of metres or"):
            lc.run_coverage(inputs, limit_m=bad)


def test_one_implausible_row_does_not_stop_the_run(tmp_path: Path) -> None:
    res = residents_frame()
    res.loc[0, "population"] = 1e11  # rejected, but it is not 1e11 people lost
    inputs = lc.load_inputs(scenario=write_scenario(tmp_path, residents=res), cache_dir=None)
    assert inputs.rejects()["reason"].tolist() == ["implausible_population"]


def test_overwrite_never_replaces_a_folder_of_other_files(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    sc = write_scenario(tmp_path / "in")
    mine = tmp_path / "documents"
    mine.mkdir()
    (mine / "thesis.docx").write_text("years of work")
    code, _, err = run(capsys, *coverage_argv(sc, mine, "--overwrite"))
    assert code == 1 and "holds files lifecircle did not write (thesis.docx)" in err
    assert (mine / "thesis.docx").read_text() == "years of work"
    monkeypatch.chdir(mine)
    code, _, err = run(capsys, *coverage_argv(sc, Path("."), "--overwrite"))
    assert code == 1 and "is the working folder" in err
    assert (mine / "thesis.docx").exists()
    # an earlier set without a manifest (older lifecircle) may be replaced
    old = tmp_path / "old"
    old.mkdir()
    (old / "residents.csv").write_text("id\n")
    (old / "summary.json").write_text("{}")
    code, _, _ = run(capsys, *coverage_argv(sc, old, "--overwrite", "-q"))
    assert code == 0 and _outset.verify_manifest(old) == []

"""The hostile-input suite (#15): property-based fuzzing of input files and option values.

For any input file and option values hypothesis comes up with, ``lifecircle coverage``:

* never shows a traceback, and exits 0, 1, 2 (bad arguments) or 3 (too many rejects);
* accounts for every row: rows used + rows rejected = rows read;
* leaves the output folder either complete (its manifest matches its files) or untouched.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from hostile import facilities_frame, residents_frame, write_scenario
from lifecircle._outset import verify_manifest
from lifecircle.cli import main

HOSTILE_NUMBERS = [
    "12",
    "１９",
    "1,900",
    "1,90",
    "inf",
    "-inf",
    "nan",
    "-3",
    "1e11",
    "",
    "abc",
    "0",
    "５０，０００",
    " 7 ",
    "1e400",
    "0x10",
    "三十",
]
HOSTILE_OPTIONS = [
    "100",
    "nan",
    "-5",
    "inf",
    "１０００",
    "0",
    "abc",
    "1e308",
    "",
    "2,000",
    "50",
    "3",
]


@st.composite
def hostile_rows(draw: st.DrawFn) -> pd.DataFrame:
    base = residents_frame().astype({"population": object, "lon": object, "lat": object})
    n = draw(st.integers(1, len(base)))
    res = base.iloc[:n].copy()
    for i in range(n):
        what = draw(st.sampled_from(["keep", "population", "swap", "lon", "id", "far"]))
        if what == "population":
            res.iloc[i, res.columns.get_loc("population")] = draw(st.sampled_from(HOSTILE_NUMBERS))
        elif what == "swap":
            lon, lat = res.iloc[i]["lon"], res.iloc[i]["lat"]
            res.iloc[i, res.columns.get_loc("lon")] = lat
            res.iloc[i, res.columns.get_loc("lat")] = lon
        elif what == "lon":
            res.iloc[i, res.columns.get_loc("lon")] = draw(st.sampled_from(HOSTILE_NUMBERS))
        elif what == "id":
            res.iloc[i, res.columns.get_loc("id")] = draw(st.sampled_from(["", "R1", "Ｒ１"]))
        elif what == "far":
            res.iloc[i, res.columns.get_loc("lon")] = float(res.iloc[i]["lon"]) + 1.0
    return res


@st.composite
def hostile_facilities(draw: st.DrawFn) -> pd.DataFrame:
    fac = facilities_frame().astype({"lon": object})
    for i in range(len(fac)):
        what = draw(st.sampled_from(["keep", "keep", "tier", "lon"]))
        if what == "tier":
            tier = draw(st.sampled_from(["便民点", "服务站", "卫生站", "", "POINT", " station "]))
            fac.iloc[i, fac.columns.get_loc("tier")] = tier
        elif what == "lon":
            fac.iloc[i, fac.columns.get_loc("lon")] = draw(st.sampled_from(HOSTILE_NUMBERS))
    return fac


def _options(draw: st.DrawFn) -> list[str]:
    opts: list[str] = []
    for name in ("--limit-m", "--max-snap-m", "--max-rejects", "--max-population"):
        if draw(st.integers(0, 3)) == 0:  # mostly the defaults, so that most runs get going
            opts += [name, draw(st.sampled_from(HOSTILE_OPTIONS))]
    if draw(st.booleans()):
        opts.append("--allow-rejects")
    return opts


def _run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    try:
        code = main(argv)
    except SystemExit as exc:  # argparse: bad option values
        code = int(exc.code or 0)
    return code, capsys.readouterr().err


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(res=hostile_rows(), fac=hostile_facilities(), data=st.data(), existing=st.booleans())
def test_hostile_inputs_and_options(
    res: pd.DataFrame,
    fac: pd.DataFrame,
    data: st.DataObject,
    existing: bool,
    capsys: pytest.CaptureFixture[str],
) -> None:
    d = Path(tempfile.mkdtemp(prefix="lc-fuzz-"))
    try:
        sc = write_scenario(d / "in", residents=res, facilities=fac)
        out = d / "out"
        old_manifest = None
        if existing:  # an earlier complete set that a failed run must leave untouched
            assert main(["coverage", "--scenario", str(sc), "--out", str(out), "--no-cache",
                         "-q", "--allow-rejects"]) == 0  # fmt: skip
            old_manifest = (out / "manifest.json").read_bytes()
            capsys.readouterr()
        opts = _options(data.draw)
        argv = ["coverage", "--scenario", str(sc), "--out", str(out), "--no-cache", "-q", *opts]
        code, err = _run([*argv, "--overwrite"] if existing else argv, capsys)
        assert code in (0, 1, 2, 3), err
        event(f"exit {code}")
        assert "Traceback" not in err
        if code in (0, 3):
            assert verify_manifest(out) == []  # a complete set
            manifest = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
            assert manifest["status"] == (
                "complete" if code == 0 else "failed: RejectThresholdError"
            )
        else:
            assert err.strip(), "a failure says why"
            if old_manifest is None:
                assert not out.exists()  # untouched
            else:
                assert (out / "manifest.json").read_bytes() == old_manifest
                assert verify_manifest(out) == []
        if code == 0:
            summary = json.loads((out / "summary.json").read_text(encoding="utf-8"))
            counts = summary["inputs"]["residents"]
            assert counts["input"] == len(res) == counts["used"] + counts["rejected"]
            fcounts = summary["inputs"]["facilities"]
            assert fcounts["input"] == len(fac) == fcounts["used"] + fcounts["rejected"]
            rejects = pd.read_csv(out / "rejects.csv")
            assert len(rejects) == counts["rejected"] + summary["inputs"]["facilities"]["rejected"]
            used = pd.read_csv(out / "residents.csv", dtype={"id": str})
            assert len(used) == counts["used"]
        if code == 3:
            assert "rejected" in err  # every reject reason is counted on stderr, even with -q
        assert not list(d.glob(".out.tmp-*")) and not list(d.glob(".out.old-*"))
    finally:
        shutil.rmtree(d, ignore_errors=True)

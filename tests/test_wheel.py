"""An installed (non-editable) wheel runs ``lifecircle demo`` in an empty folder.

Builds a wheel offline from this checkout, installs it into a temporary folder with
``pip --target`` and runs ``python -m lifecircle demo`` there with ``PYTHONPATH`` pointing at the
install, so that the package data (county outline, Leaflet) must come from the wheel and every
output must land in the working folder. Everything is written under pytest's temporary folders.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]


def _run(
    cmd: list[str], *, cwd: Path, env: dict[str, str] | None = None, timeout: float = 900
) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )
    assert proc.returncode == 0, f"{cmd} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel of this checkout, installed into a temporary ``site`` folder."""
    import setuptools

    # pyproject's [build-system] requires it; the dev extra installs it
    assert int(setuptools.__version__.split(".")[0]) >= 77, (
        f"building offline needs setuptools>=77 (pip install -e '.[dev]'), found "
        f"{setuptools.__version__}"
    )
    base = tmp_path_factory.mktemp("wheel")
    dist = base / "dist"
    # build from a copy of the sources so that no build/ or *.egg-info lands in the checkout
    src = base / "src_copy"
    ignore = shutil.ignore_patterns("__pycache__", "*.egg-info", "build")
    shutil.copytree(ROOT / "src", src / "src", ignore=ignore)
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        if (ROOT / name).exists():
            shutil.copy2(ROOT / name, src / name)
    env = {**os.environ, "PIP_NO_INDEX": "1", "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    _run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            ".",
            "--no-deps",
            "--no-build-isolation",
            "-w",
            str(dist),
        ],
        cwd=src,
        env=env,
    )
    wheels = sorted(dist.glob("lifecircle-*.whl"))
    assert len(wheels) == 1, wheels
    names = zipfile.ZipFile(wheels[0]).namelist()
    for needed in (
        "lifecircle/py.typed",
        "lifecircle/_data/tancheng_county_wgs84.geojson",
        "lifecircle/_data/README.md",
        "lifecircle/_assets/leaflet/leaflet.js",
        "lifecircle/_assets/leaflet/leaflet.css",
        "lifecircle/demo/__init__.py",
    ):
        assert needed in names, needed
    assert not any(n.startswith("lifecircle/demo.py") for n in names)
    target = base / "site"
    _run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--no-deps",
            "--no-index",
            "--target",
            str(target),
            str(wheels[0]),
        ],
        cwd=base,
        env=env,
    )
    return target


def _env(site: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    env["PYTHONPATH"] = str(site)
    env["PYTHONNOUSERSITE"] = "1"
    env["MPLBACKEND"] = "Agg"
    return env


def test_installed_package_is_imported_from_the_wheel(site: Path, tmp_path: Path) -> None:
    code = (
        "import lifecircle, lifecircle.demo as d; print(lifecircle.__file__); "
        "print(d.packaged_outline()); print(d.DEFAULT_DEMO_DIR)"
    )
    out = _run([sys.executable, "-c", code], cwd=tmp_path, env=_env(site)).stdout.splitlines()
    assert Path(out[0]).resolve().is_relative_to(site.resolve()), out[0]
    assert not Path(out[0]).resolve().is_relative_to((ROOT / "src").resolve())
    assert Path(out[1]).resolve().is_relative_to(site.resolve())
    assert out[2] == "data/demo/tancheng"


def test_demo_runs_in_an_empty_folder(site: Path, tmp_path: Path) -> None:
    work = tmp_path / "empty"
    work.mkdir()
    before = {p.relative_to(site) for p in site.rglob("*") if "__pycache__" not in p.parts}
    proc = _run([sys.executable, "-m", "lifecircle", "demo", "--json"], cwd=work, env=_env(site))
    summary = json.loads(proc.stdout)  # --json: only the summary on stdout
    assert summary["synthetic"] is True
    # inputs, tables and maps are written under the working folder
    data = work / "data" / "demo" / "tancheng"
    for name in (
        "scenario.toml",
        "roads.osm",
        "residents.csv",
        "facilities.csv",
        "communities.geojson",
    ):
        assert (data / name).is_file(), name
    out = work / "out" / "tancheng_demo"
    for name in (
        "residents.csv",
        "summary.json",
        "units_community.csv",
        "report.html",
        "report.pdf",  # the report template is package data
        "lifecircle.xlsx",
    ):
        assert (out / name).is_file(), name
    page = work / "maps" / "tancheng_demo.html"
    assert page.stat().st_size > 100_000
    assert (work / "maps" / "tancheng_demo.png").is_file()
    html = page.read_text(encoding="utf-8")
    assert '<script src="http' not in html and "leaflet" in html.lower()
    # the scenario names the county outline installed with the package, which exists
    toml = (data / "scenario.toml").read_text(encoding="utf-8")
    county = next(line for line in toml.splitlines() if line.startswith("county = "))
    assert Path(county.split('"')[1]).is_file()
    # nothing was written into the installed package
    after = {p.relative_to(site) for p in site.rglob("*") if "__pycache__" not in p.parts}
    assert after == before

"""Writing results: CSV and JSON tables (and, in GIS formats, every result layer).

All writers are atomic: they write to a temporary name in the target folder and rename it at
the end, so an error never leaves a partial file behind. Existing files are only replaced with
``overwrite=True``.
"""

from __future__ import annotations

import json
import logging
import math
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from lifecircle.errors import OutputExistsError

logger = logging.getLogger(__name__)


def check_writable(paths: list[Path], *, overwrite: bool) -> None:
    """Raise :class:`OutputExistsError` naming every existing path, unless ``overwrite``."""
    if overwrite:
        return
    existing = [str(p) for p in paths if p.exists()]
    if existing:
        raise OutputExistsError(
            f"output already exists: {', '.join(existing)}; pass --overwrite (overwrite=True) to "
            "replace it, or choose another --out")


@contextmanager
def atomic_path(path: str | Path, *, overwrite: bool = False) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; rename it to ``path`` if the block succeeds."""
    target = Path(path)
    check_writable([target], overwrite=overwrite)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.tmp{os.getpid()}")
    try:
        yield tmp
        os.replace(tmp, target)
    finally:
        if tmp.exists():
            tmp.unlink()


def _json_default(o: Any) -> Any:
    if isinstance(o, np.integer):
        return int(o)
    if isinstance(o, np.floating):
        return None if not np.isfinite(o) else float(o)
    if isinstance(o, np.bool_):
        return bool(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def _clean(o: Any) -> Any:
    """Replace non-finite floats by None (JSON has no Infinity/NaN)."""
    if isinstance(o, float) and not math.isfinite(o):
        return None
    if isinstance(o, dict):
        return {str(k): _clean(v) for k, v in o.items()}
    if isinstance(o, list | tuple):
        return [_clean(v) for v in o]
    return o


def to_json_text(data: Any) -> str:
    """JSON text (UTF-8, Chinese kept, indented; inf/nan as null)."""
    return json.dumps(_clean(data), ensure_ascii=False, indent=2, default=_json_default, allow_nan=False)


def write_json(data: Any, path: str | Path, *, overwrite: bool = False) -> Path:
    """Write ``data`` as JSON atomically."""
    text = to_json_text(data)
    with atomic_path(path, overwrite=overwrite) as tmp:
        tmp.write_text(text + "\n", encoding="utf-8")
    return Path(path)


def write_csv(frame: pd.DataFrame, path: str | Path, *, overwrite: bool = False,
              float_format: str | None = None) -> Path:
    """Write a table as UTF-8 CSV atomically (infinite distances as empty cells)."""
    out = frame.replace([np.inf, -np.inf], np.nan)
    with atomic_path(path, overwrite=overwrite) as tmp:
        out.to_csv(tmp, index=False, encoding="utf-8", float_format=float_format, lineterminator="\n")
    return Path(path)


def write_text(text: str, path: str | Path, *, overwrite: bool = False) -> Path:
    """Write text atomically."""
    with atomic_path(path, overwrite=overwrite) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)


def write_files(writers: dict[Path, Callable[[Path], Any]], *, overwrite: bool = False) -> list[Path]:
    """Check every target first, then write each with its writer (atomic per file)."""
    check_writable(list(writers), overwrite=overwrite)
    done = []
    for path, fn in writers.items():
        fn(path)
        done.append(path)
    return done


def resident_table(result: Any) -> pd.DataFrame:
    """The ``residents.csv`` table of a coverage result, distances rounded to centimetres."""
    res = result.residents
    cols = ["id", "population", "elderly", "children", "lon", "lat", "snap_m", "off_network"]
    for t in result.standard.tiers:
        cols += [f"{t.key}_distance_m", f"{t.key}_minutes", f"{t.key}_nearest_id", f"{t.key}_covered"]
    cols.append("all_covered")
    out = res[[c for c in cols if c in res.columns]].copy()
    for c in out.columns:
        if c.endswith("_distance_m") or c == "snap_m":
            out[c] = out[c].round(2)
        elif c.endswith("_minutes"):
            out[c] = out[c].round(3)
        elif c in ("lon", "lat"):
            out[c] = out[c].round(7)
    return out


def facility_table(result: Any) -> pd.DataFrame:
    """The ``facilities.csv`` table of a coverage result."""
    fac = result.facilities
    cols = ["id", "name", "tier", "lon", "lat", "snap_m", "off_network", "catchment_population",
            "catchment_residents"]
    out = fac[cols].copy()
    out["snap_m"] = out["snap_m"].round(2)
    out[["lon", "lat"]] = out[["lon", "lat"]].round(7)
    return out


def write_coverage_outputs(run: Any, out_dir: str | Path, *, overwrite: bool = False) -> dict[str, Path]:
    """Write ``residents.csv``, ``facilities.csv``, ``summary.json`` and ``rejects.csv``.

    Parameters
    ----------
    run : lifecircle.pipeline.CoverageRun
    out_dir : path
        Created if missing.
    overwrite : bool
        Replace existing files; otherwise any existing target is an error and nothing is written.
    """
    d = Path(out_dir)
    d.mkdir(parents=True, exist_ok=True)
    paths = {
        "residents": d / "residents.csv",
        "facilities": d / "facilities.csv",
        "summary": d / "summary.json",
        "rejects": d / "rejects.csv",
    }
    check_writable(list(paths.values()), overwrite=overwrite)
    write_csv(resident_table(run.result), paths["residents"], overwrite=True)
    write_csv(facility_table(run.result), paths["facilities"], overwrite=True)
    write_csv(run.inputs.rejects(), paths["rejects"], overwrite=True)
    write_json(run.summary(), paths["summary"], overwrite=True)
    logger.info("wrote %s", ", ".join(str(p) for p in paths.values()))
    return paths

"""Many regions at once on Dask: every county of a province (or of China) in one command.

:func:`run_batch` cuts the inputs once on the client and runs one Dask task per region:

1. **Regions** (counties, townships) are read from a polygon file; the big OSM extract is clipped
   to every region plus ``clip_buffer_m`` in **one** streaming pass (:class:`ClipJob`: the
   first Dask tasks, submitted as soon as the workers are up, run while the client does steps
   2-3). The pass over the extract writes its highways as text once; the text is cut to the
   regions in one piece per worker, side by side; each region's task writes its own small
   ``.osm.pbf`` from the pieces.
2. **Residents** are read and validated once; each belongs to exactly one region by the unit rule
   (:func:`lifecircle.units.assign_units`: closed polygons, a border point goes to the region
   listed first). Residents in no region are listed in ``residents_outside_regions.csv``.
3. **Facilities** within the buffered region serve its residents (sites across the border count).
   Any facility within network distance ``d <= clip_buffer_m`` of a resident inside the region
   lies inside the buffered region, so distances up to the buffer, and every share of a tier whose
   threshold is at most the buffer, equal those of ``lifecircle coverage --clip REGION``.
4. **One task per region** runs the normal coverage (and, with units, the report) on the region's
   files, writes its outputs to a temporary folder, renames it to ``DIR/regions/<id>/`` (atomic)
   with a ``done.json`` marker holding the inputs' fingerprint. Tasks move file paths and small
   dicts, never pickled GeoDataFrames. Dask retries a failing task ``retries`` times (and
   reschedules tasks of a lost worker); a region that still fails is listed in ``failed.csv``.
5. ``regions.gpkg``, ``regions.csv`` / ``regions.xlsx`` (the contract columns), ``summary.json``
   (the rollup) and ``regions.html`` (an offline choropleth linking to each region's map).

``resume=True`` skips regions whose ``done.json`` fingerprint matches their current inputs.
"""

from __future__ import annotations

import hashlib
import json
import logging
import multiprocessing
import multiprocessing.forkserver
import os
import shutil
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import numpy as np
import pandas as pd
import pyarrow as pa
import shapely

from lifecircle._files import write_csv, write_json, write_text
from lifecircle._tables import point_arrays, slice_point_arrays, write_point_arrays
from lifecircle.config import ServiceStandard, load_standard
from lifecircle.errors import InputError, LifecircleError, NetworkError
from lifecircle.extract import (
    DEFAULT_CLIP_BUFFER_M,
    buffer_geometry_m,
    clip_fingerprint,
    clip_opl_to_file,
    to_wgs84_geometry,
    write_clipped_region,
    write_highway_opl,
)
from lifecircle.io import PointTable, load_scenario, read_points
from lifecircle.maps import leaflet_inline, share_colour, write_coverage_map
from lifecircle.pipeline import load_inputs, run_coverage, write_coverage_outputs
from lifecircle.report import write_report
from lifecircle.runs import CoverageRun
from lifecircle.units import assign_units

if TYPE_CHECKING:
    import geopandas as gpd
    from distributed import Client
    from distributed import Future as DaskFuture

logger = logging.getLogger(__name__)

BATCH_VERSION: Final = 1
#: Candidate column names of a region id and name (first match wins).
ID_FIELDS: Final = ("region_id", "adcode", "code", "id", "gb", "区划代码")
NAME_FIELDS: Final = ("name", "名称", "县", "区县", "region_name")
DONE_FILE: Final = "done.json"
#: The clip pass's text is cut in one piece per worker thread, at most this many
MAX_CLIP_PIECES: Final = 16


@dataclass(frozen=True)
class ClipJob:
    """The batch's one streaming pass over the big extract, as Dask tasks on the workers.

    The client keeps its cores for reading the points (the pass's libosmium reader and Numba
    kernel would otherwise compete with them), and the workers pay for loading the kernels once
    for the pass and their region tasks. :meth:`read_extract` (one task) has libosmium write the
    extract's highways as OPL text at ``opl``; :meth:`cut` (``pieces`` tasks, side by side on
    as many workers) cuts one piece of that text each to the regions' buffered ``areas`` (sent
    as WKB) and saves the ways kept at ``out_pattern.format(k)``, which the region tasks read.
    Like every batch file, those paths must be paths the workers see.
    """

    source: str
    areas_wkb: dict[str, bytes]
    opl: str
    out_pattern: str
    modes: tuple[str, ...]
    node_index: str
    pieces: int = 1

    def read_extract(self) -> str:
        """The pass over the extract (inside a Dask worker); the text file's path."""
        write_highway_opl(self.source, self.opl, node_index=self.node_index)
        return self.opl

    def cut(self, opl: str, piece: int) -> str:
        """Piece ``piece`` of the text cut to the regions (inside a Dask worker); its file.

        A piece already saved is not cut again: Dask recomputes a piece whose result was held
        only by a lost worker, when the text may be gone, and the file, written atomically under
        a name of this batch alone, is complete.
        """
        out = self.out_pattern.format(piece)
        if Path(out).exists():
            return out
        areas = {r: shapely.from_wkb(w) for r, w in self.areas_wkb.items()}
        clip_opl_to_file(opl, areas, out, modes=self.modes, piece=(piece, self.pieces))
        return out


@dataclass(frozen=True)
class RegionTask:
    """What one Dask task needs: file paths and plain options (cheap to send)."""

    region_id: str
    name: str
    network: str
    facilities: str
    residents: str
    out_dir: str
    fingerprint: str
    options: dict[str, Any] = field(default_factory=dict)


def read_regions(
    path: str | Path | gpd.GeoDataFrame,
    *,
    id_field: str | None = None,
    name_field: str | None = None,
    crs: str = "wgs84",
) -> gpd.GeoDataFrame:
    """Regions as a WGS84 GeoDataFrame with ``region_id``, ``name`` and polygon geometry.

    Raises
    ------
    InputError
        If the file is unreadable, a field is missing, an id is empty or repeated, or a geometry
        is not a polygon.
    """
    import geopandas as gpd

    where = "regions" if isinstance(path, gpd.GeoDataFrame) else f"regions file {path}"
    if isinstance(path, gpd.GeoDataFrame):
        gdf = path.copy()
    else:
        p = Path(path)
        if not p.exists():
            raise InputError(f"{where} does not exist; give a polygon file for --regions")
        try:
            gdf = gpd.read_file(p)
        except Exception as exc:
            raise InputError(f"cannot read {where}: {exc}") from exc
    if len(gdf) == 0:
        raise InputError(f"{where} has no features")

    def pick(field_: str | None, options: Sequence[str], what: str, opt: str) -> str | None:
        if field_ is not None:
            if field_ not in gdf.columns:
                cols = ", ".join(c for c in gdf.columns if c != "geometry")
                raise InputError(f"{where}: no column {field_!r} for {opt}; columns: {cols}")
            return field_
        lower = {str(c).lower(): c for c in gdf.columns}
        for o in options:
            if o.lower() in lower:
                return str(lower[o.lower()])
        if what == "id":
            cols = ", ".join(c for c in gdf.columns if c != "geometry")
            raise InputError(f"{where}: no region id column; name it with {opt} (columns: {cols})")
        return None

    idf = pick(id_field, ID_FIELDS, "id", "--region-id FIELD")
    nmf = pick(name_field, NAME_FIELDS, "name", "--region-name FIELD")
    ids = gdf[idf].astype(str).str.strip()
    bad = [
        f"row {i + 1}: {'empty id' if not v or v == 'nan' else f'id {v!r} repeated'}"
        for i, (v, dup) in enumerate(zip(ids, ids.duplicated(keep="first"), strict=True))
        if not v or v == "nan" or dup
    ]
    bad += [
        f"row {i + 1} ({ids.iloc[i]}): geometry is {t}, not a polygon"
        for i, t in enumerate(gdf.geom_type.fillna("empty"))
        if t not in ("Polygon", "MultiPolygon")
    ]
    bad += [
        f"row {i + 1} ({v}): id has a character not allowed in a folder name"
        for i, v in enumerate(ids)
        if any(c in v for c in '/\\:*?"<>|') or v.startswith(".")
    ]
    if bad:
        raise InputError(f"{where}: " + "; ".join(bad[:10]) + (" ..." if len(bad) > 10 else ""))
    if gdf.crs is not None and gdf.crs.to_epsg() not in (4326, 4490):
        gdf = gdf.to_crs(4326)
    geoms = [to_wgs84_geometry(g, crs) for g in gdf.geometry]
    names = gdf[nmf].astype(str).to_numpy() if nmf else ids.to_numpy()
    return gpd.GeoDataFrame(
        {"region_id": ids.to_numpy(), "name": names}, geometry=geoms, crs="EPSG:4326"
    )


# -- the task ---------------------------------------------------------------------------


def region_row(cov: CoverageRun) -> dict[str, Any]:
    """The contract columns of one region (without id, name, status and seconds)."""
    s = cov.result.summary()
    row: dict[str, Any] = {"population": s["all_tiers"]["population_total"]}
    for key, t in s["tiers"].items():
        row[f"{key}_population_covered"] = t["population_covered"]
        row[f"{key}_share"] = t["share"]
        row[f"{key}_elderly_share"] = t["elderly_share"]
    row["all_share"] = s["all_tiers"]["share"]
    for key, t in s["tiers"].items():
        row[f"{key}_facilities"] = t["facilities"]
    row["rejected"] = len(cov.inputs.rejects())
    return row


def run_region(task: RegionTask, clip_files: Sequence[str] | None = None) -> dict[str, Any]:
    """Run one region (inside a Dask worker): coverage, report, map; atomic; then marked done.

    A region whose network file is not there yet writes it first from ``clip_files``, the
    pieces of the batch's one clip pass (:class:`ClipJob`); given those pieces' futures, Dask
    runs the task after them and passes the files' paths.
    """
    t0 = time.perf_counter()
    cpu0 = time.process_time()
    o = task.options
    out = Path(task.out_dir)
    tmp = out.parent / f".{out.name}.tmp-{uuid.uuid4().hex[:8]}"
    try:
        if not Path(task.network).exists():
            if not clip_files:
                raise NetworkError(f"{task.network} is missing and no clip pass was given")
            write_clipped_region(clip_files, task.region_id, task.network)
        inputs = load_inputs(
            network=task.network,
            facilities=task.facilities,  # .npz arrays, WGS84 (converted when the client read them)
            residents=task.residents,
            standard=o.get("standard"),
            mode=o.get("mode"),
            max_snap_m=o.get("max_snap_m"),
            network_crs=o.get("network_crs"),
            units=tuple(o.get("units", ())),
            upper_tiers_count=o.get("upper_tiers_count"),
            cache_dir=None,
        )
        cov = run_coverage(inputs, limit_m=o.get("limit_m"))
        write_coverage_outputs(cov, tmp)
        if inputs.units:
            write_report(cov, tmp, lang=o.get("lang", "zh"))
        if o.get("maps", True):
            write_coverage_map(cov, tmp / "map.html", offline=True, lang=o.get("lang", "zh"))
        row = region_row(cov)
        row["seconds"] = round(time.perf_counter() - t0, 3)
        worker = {
            "pid": os.getpid(),
            "peak_rss_mb": round(_peak_rss_mb(), 1),
            "cpu_seconds": round(time.process_time() - cpu0, 3),
        }
        write_json({"fingerprint": task.fingerprint, "row": row, "worker": worker}, tmp / DONE_FILE)
        _replace_dir(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return row


def _peak_rss_mb() -> float:
    """Peak resident memory of this process so far, in MB.

    Linux: ``VmHWM`` of ``/proc/self/status`` (per address space, so a worker started by a large
    parent does not inherit the parent's peak as ``ru_maxrss`` would); elsewhere ``ru_maxrss``.
    """
    status = Path("/proc/self/status")
    if status.exists():
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return float(line.split()[1]) / 1024.0
    try:
        import resource
    except ImportError:  # pragma: no cover - Windows
        return 0.0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # pragma: no cover - not Linux
    return peak / 1024.0 if sys.platform != "darwin" else peak / 1024.0**2  # pragma: no cover


def _replace_dir(tmp: Path, out: Path) -> None:
    """Put ``tmp`` in place of ``out`` by renames (a reader sees the old or the new folder)."""
    old = out.parent / f".{out.name}.old-{uuid.uuid4().hex[:8]}"
    if out.exists():
        os.replace(out, old)
    os.replace(tmp, out)
    shutil.rmtree(old, ignore_errors=True)


# -- scheduling ---------------------------------------------------------------------------


def parse_scheduler(scheduler: str) -> tuple[str, int | str]:
    """``local`` -> (local, cores), ``local:N`` -> (local, N), ``tcp://h:p`` -> (tcp, address).

    Examples
    --------
    >>> parse_scheduler("local:2")
    ('local', 2)
    >>> parse_scheduler("tcp://10.0.0.5:8786")
    ('tcp', 'tcp://10.0.0.5:8786')
    """
    s = scheduler.strip()
    if s == "local":
        return "local", max(1, os.cpu_count() or 1)
    if s.startswith("local:"):
        try:
            n = int(s.split(":", 1)[1])
        except ValueError:
            n = 0
        if n < 1:
            raise InputError(f"--scheduler {scheduler!r}: use local:N with N >= 1 workers")
        return "local", n
    if s.startswith("tcp://") and ":" in s[6:]:
        return "tcp", s
    raise InputError(
        f"--scheduler {scheduler!r}: use local (all cores), local:N (N workers) or "
        "tcp://HOST:PORT (a running `dask scheduler`)"
    )


def worker_environ() -> dict[str, Any]:
    """Environment of the local Dask workers: Dask's defaults without ``MALLOC_TRIM_THRESHOLD_``.

    Dask sets ``MALLOC_TRIM_THRESHOLD_=65536`` in every worker to hand freed memory back to the
    system at once. Setting it switches off glibc's dynamic mmap threshold, so every NumPy
    array above 128 KiB is mapped and unmapped afresh and its pages faulted in again: a region
    task ran 40 % slower with it (0.73 s instead of 0.52 s per county-sized region, measured
    by ``scripts/bench_batch.py``). A region task is short and its arrays are freed as a whole
    when it ends, so glibc's default behaviour is the right one here.

    >>> "MALLOC_TRIM_THRESHOLD_" in worker_environ()
    False
    """
    import dask

    env = dict(dask.config.get("distributed.nanny.pre-spawn-environ", default={}) or {})
    env.pop("MALLOC_TRIM_THRESHOLD_", None)
    return env


@contextmanager
def client_environment_kept(names: Iterable[str]) -> Iterator[None]:
    """Put this process's environment variables ``names`` back as they were on leaving.

    The nannies of a local cluster run in this process and set the workers' pre-spawn
    environment here before they spawn each worker, and leave it set. ``OMP_NUM_THREADS=1``
    would then make this process's own threaded steps single-threaded for the rest of its life
    (a notebook's next ``run_coverage`` included).

    >>> import os
    >>> with client_environment_kept(["LIFECIRCLE_DOCTEST"]):
    ...     os.environ["LIFECIRCLE_DOCTEST"] = "1"
    >>> "LIFECIRCLE_DOCTEST" in os.environ
    False
    """
    saved = {k: os.environ.get(k) for k in names}
    try:
        yield
    finally:
        _restore_environment(saved)


def _restore_environment(saved: Mapping[str, str | None]) -> None:
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


#: Modules every local worker needs, imported once in Dask's forkserver
FORKSERVER_PRELOAD: Final = (
    "distributed",
    "lifecircle.batch",
    "lifecircle._worker_preload",
    "lifecircle._piece_grid",
    "lifecircle._readoff",
)


#: Dask timers of an embedded cluster, slower than Dask's defaults (20 ms and 500 ms): the
#: tick only detects a blocked event loop (warned after 3 s), the monitor only feeds dashboard
#: plots; the memory limit has its own monitor (the nanny's, every 100 ms), left as it is
LOCAL_CLUSTER_TIMERS: Final = {
    "distributed.admin.tick.interval": "500ms",
    "distributed.admin.system-monitor.interval": "2s",
}


def worker_context() -> multiprocessing.context.BaseContext:
    """How local workers start: forked from Dask's forkserver with lifecircle imported, where
    the platform has one (Linux, macOS), else spawned (Windows).

    A spawned worker imports Python, NumPy, Dask, lifecircle and Numba afresh, about 0.75 s
    of CPU each, spent while the batch reads its inputs on the same cores. The forkserver
    imports them once and forks every worker from it (0.03 s each). The preload list is read
    when the forkserver starts: call this before the first worker starts.
    """
    import dask
    from distributed.utils import get_mp_context

    if "forkserver" not in multiprocessing.get_all_start_methods():  # pragma: no cover
        return multiprocessing.get_context("spawn")  # Windows
    with dask.config.set({"distributed.worker.multiprocessing-method": "forkserver"}):
        ctx = get_mp_context()  # Dask sets its own preload list on first use: replaced here
    ctx.set_forkserver_preload(list(FORKSERVER_PRELOAD))
    return ctx


def _client(scheduler: str, memory_per_worker: str) -> Client:
    try:
        from distributed import Client, LocalCluster
    except ImportError as exc:  # pragma: no cover - distributed is a dependency
        raise LifecircleError(
            "lifecircle batch needs dask.distributed: pip install 'dask[distributed]'"
        ) from exc
    kind, arg = parse_scheduler(scheduler)
    if kind == "tcp":
        try:
            return Client(str(arg), timeout="20s")
        except OSError as exc:
            raise LifecircleError(
                f"cannot reach the Dask scheduler at {arg}: {exc}; start it with `dask scheduler` "
                "and workers with `dask worker ADDRESS`"
            ) from exc
    import dask

    # the workers' statistical profiler samples every thread's stack every 10 ms while holding
    # the GIL: measurable on CPU-bound tasks, and nobody reads those profiles in a batch
    environ = worker_environ()
    settings: dict[str, Any] = {
        "distributed.worker.profile.enabled": False,
        "distributed.nanny.pre-spawn-environ": environ,
        # every worker's event loop wakes 50 times a second to time itself (the tick) and twice
        # a second to sample the system (dashboard plots); each wake-up takes the GIL from the
        # task. With every core busy (local:2 on 2 cores) tasks waited 0.48 s per worker for
        # 7.5 s of work with Dask's defaults, 0.30 s with these (scripts/bench_batch.py input)
        **LOCAL_CLUSTER_TIMERS,
    }
    ctx = worker_context()
    settings["distributed.worker.multiprocessing-method"] = ctx.get_start_method()
    with dask.config.set(settings), client_environment_kept(environ):
        if ctx.get_start_method() == "forkserver":
            # the forkserver imports lifecircle while the scheduler starts, not after it: started
            # here with the workers' environment, as a nanny would start it
            os.environ.update({k: str(v) for k, v in environ.items()})
            multiprocessing.forkserver.ensure_running()
        cluster = LocalCluster(
            n_workers=int(arg),
            threads_per_worker=1,
            processes=True,
            memory_limit=memory_per_worker,
            # a free port for the scheduler's HTTP server (and the dashboard when bokeh is
            # installed); without one it binds 8787, and two clusters at once collide
            dashboard_address=":0",
            silence_logs=logging.CRITICAL,
        )
    return Client(cluster)


# -- the batch ----------------------------------------------------------------------------


def _hash_file(h: Any, path: Path) -> None:
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)


def _contract_columns(std: ServiceStandard) -> list[str]:
    keys = [t.key for t in std.tiers]
    cols = ["region_id", "name", "population"]
    for k in keys:
        cols += [f"{k}_population_covered", f"{k}_share", f"{k}_elderly_share"]
    cols.append("all_share")
    cols += [f"{k}_facilities" for k in keys]
    return [*cols, "rejected", "status", "seconds"]


def run_batch(
    regions: str | Path | gpd.GeoDataFrame | None = None,
    *,
    out: str | Path,
    scenario: str | Path | None = None,
    network: str | Path | None = None,
    facilities: str | Path | None = None,
    residents: str | Path | None = None,
    region_id: str | None = None,
    region_name: str | None = None,
    regions_crs: str | None = None,
    only: Sequence[str] | None = None,
    standard: str | Path | None = None,
    mode: str | None = None,
    max_snap_m: float | None = None,
    facilities_crs: str | None = None,
    residents_crs: str | None = None,
    network_crs: str | int | None = None,
    units: Sequence[str | Path] = (),
    upper_tiers_count: bool | None = None,
    limit_m: float | None = None,
    lang: str = "zh",
    maps: bool = True,
    clip_buffer_m: float | None = None,
    scheduler: str | None = None,
    client: Client | None = None,
    memory_per_worker: str | None = None,
    retries: int | None = None,
    resume: bool = False,
    progress: bool = False,
    on_region_done: Callable[[str, str], None] | None = None,
    echo: Callable[[str], None] | None = None,
    node_index: str = "flex_mem",
) -> gpd.GeoDataFrame:
    """Run coverage for many regions on Dask and write the batch outputs to ``out``.

    Every argument left out is taken from ``scenario`` (its inputs and its ``[batch]`` section),
    else from the defaults below.

    Parameters
    ----------
    regions : path or GeoDataFrame
        Region polygons (counties, townships); ``region_id``/``region_name`` name the fields
        (default: the first of :data:`ID_FIELDS` / :data:`NAME_FIELDS`).
    out : path
        Output folder: ``regions/<id>/``, ``regions.gpkg``, ``regions.csv``, ``regions.xlsx``,
        ``failed.csv``, ``summary.json``, ``regions.html``.
    scenario : path, optional
        A ``scenario.toml`` with the inputs and a ``[batch]`` section (``regions``, ``region_id``,
        ``region_name``, ``regions_crs``, ``only``, ``clip_buffer_m``, ``scheduler``,
        ``memory_per_worker``, ``retries``).
    network : path
        One large ``.osm.pbf`` covering all regions (clipped in one pass).
    facilities, residents : path
        Point files as for ``lifecircle coverage``.
    regions_crs : str
        ``wgs84``, ``cgcs2000``, ``gcj02`` or ``bd09`` for a regions file without its own CRS.
    only : sequence of str, optional
        Run just these region ids.
    clip_buffer_m : float
        Buffer around each region in metres for streets and facilities (default 2,000 m).
    scheduler : str
        ``local`` (an embedded LocalCluster with one worker per core), ``local:N`` or
        ``tcp://HOST:PORT`` (an existing ``dask scheduler``).
    client : distributed.Client, optional
        Use this client instead of ``scheduler`` (it is not closed).
    memory_per_worker : str
        Memory limit of each local worker (Dask pauses and restarts workers above it).
    retries : int
        Extra attempts of a failing region before it goes to ``failed.csv``.
    resume : bool
        Skip regions already done whose inputs' fingerprint is unchanged.
    progress : bool
        Show a progress bar over regions on stderr.
    on_region_done : callable, optional
        Called as ``on_region_done(region_id, status)`` after each region (status ``ok``,
        ``failed`` or ``skipped``).
    echo : callable, optional
        Called with messages for the user (the Dask dashboard link); the CLI prints them.
    node_index : str
        pyosmium node-location index for the clip pass: ``flex_mem`` (memory) or
        ``sparse_file_array`` (a temporary file on disk, for country-sized extracts).

    Returns
    -------
    geopandas.GeoDataFrame
        One row per region with the contract columns (see :func:`_contract_columns`), EPSG:4326.

    Raises
    ------
    InputError
        On bad regions, unknown ``only`` ids or unreadable point files (before any task runs).
    """

    t_start = time.perf_counter()
    out_dir = Path(out)
    sc = load_scenario(scenario) if scenario is not None else None
    conf = batch_scenario_args(sc.batch, sc.path.parent) if sc and sc.path else {}
    network = network or (sc.network if sc else None)
    facilities = facilities or (sc.facilities if sc else None)
    residents = residents or (sc.residents if sc else None)
    regions = regions if regions is not None else conf.get("regions")
    need = [
        n
        for n, v in (
            ("regions", regions),
            ("network", network),
            ("facilities", facilities),
            ("residents", residents),
        )
        if v is None
    ]
    if need or regions is None or network is None or facilities is None or residents is None:
        raise InputError(
            f"missing {', '.join('--' + n for n in need)}; give them or a --scenario with [batch]"
        )
    region_id = region_id or conf.get("region_id")
    region_name = region_name or conf.get("region_name")
    regions_crs = regions_crs or conf.get("regions_crs", "wgs84")
    only = only if only is not None else conf.get("only")
    if sc is not None:
        standard = standard or sc.standard
        mode = mode or sc.mode
        max_snap_m = max_snap_m if max_snap_m is not None else sc.max_snap_m
        facilities_crs = facilities_crs or sc.facilities_crs
        residents_crs = residents_crs or sc.residents_crs
        units = [*units, *(u.path for u in sc.units)]
    clip_buffer_m = float(
        clip_buffer_m
        if clip_buffer_m is not None
        else conf.get("clip_buffer_m", DEFAULT_CLIP_BUFFER_M)
    )
    scheduler = str(scheduler or conf.get("scheduler", "local"))
    memory_per_worker = str(memory_per_worker or conf.get("memory_per_worker", "2GiB"))
    retries = int(retries if retries is not None else conf.get("retries", 2))
    reg = read_regions(regions, id_field=region_id, name_field=region_name, crs=regions_crs)
    if only:
        unknown = sorted(set(only) - set(reg["region_id"]))
        if unknown:
            raise InputError(
                f"--only: unknown region id(s) {', '.join(unknown)}; ids in the regions file: "
                f"{', '.join(reg['region_id'].head(10))}"
            )
        reg = reg[reg["region_id"].isin(list(only))].reset_index(drop=True)
    std = load_standard(standard or "tancheng")
    if mode:
        std = std.with_mode(mode)
    modes = sorted({t.mode for t in std.tiers})
    too_far = [t.key for t in std.tiers if t.threshold_m > clip_buffer_m]
    if too_far:
        logger.warning(
            "tier(s) %s reach farther than the %.0f m clip buffer: their shares may miss "
            "facilities beyond it; raise --clip-buffer-m",
            ", ".join(too_far),
            clip_buffer_m,
        )
    net_src = Path(network)
    if not net_src.exists():
        raise InputError(f"network file {net_src} does not exist; give the .osm.pbf with --network")
    work = out_dir / "_inputs"
    ids = reg["region_id"].tolist()
    geoms = list(reg.geometry)
    clip_keys = {
        r: clip_fingerprint(net_src, g, clip_buffer_m, modes)
        for r, g in zip(ids, geoms, strict=True)
    }
    net_paths = {r: work / r / f"network.{clip_keys[r]}.osm.pbf" for r in ids}
    # the buffered regions: the clip pass keeps the ways that meet them, and a region's
    # facilities are those inside
    areas = [buffer_geometry_m(g, clip_buffer_m) for g in geoms]
    todo = {r: a for r, a in zip(ids, areas, strict=True) if not net_paths[r].exists()}
    # 1. the one clip pass over the big extract is the first Dask tasks, submitted as soon as
    # the workers are up (they start in the background while this process reads the points)
    fresh_out = not out_dir.exists()
    work.mkdir(parents=True, exist_ok=True)
    for stale in work.glob(".clip-*"):  # left by an interrupted run
        stale.unlink(missing_ok=True)
    clip_stem = work / f".clip-{uuid.uuid4().hex[:8]}"
    clip_job = (
        ClipJob(
            source=str(net_src.resolve()),
            areas_wkb={r: shapely.to_wkb(a) for r, a in todo.items()},
            opl=f"{clip_stem.resolve()}.opl",
            out_pattern=f"{clip_stem.resolve()}-{{}}.npz",
            modes=tuple(modes),
            node_index=node_index,
        )
        if todo
        else None
    )
    submitted = False
    futures: dict[str, DaskFuture[Any]] = {}
    # Arrow sizes its thread pool once, from OMP_NUM_THREADS when set: size it before a local
    # cluster's nannies set that variable in this process (see client_environment_kept)
    pa.cpu_count()
    # a nanny that restarts a lost worker sets the workers' environment here again: undone at
    # the end
    environment = {k: os.environ.get(k) for k in worker_environ()}
    pool = ThreadPoolExecutor(1, thread_name_prefix="lifecircle-dask-start")
    stop_start = threading.Event()  # set when the batch ends: the start thread stops waiting
    pending: Future[tuple[Client, list[DaskFuture[str]]]] = pool.submit(
        _start_client, scheduler, memory_per_worker, client, clip_job, stop_start
    )
    try:
        fac = read_points(facilities, "facilities", crs=facilities_crs, standard=std)
        res = read_points(residents, "residents", crs=residents_crs)
        t_read = time.perf_counter()
        (out_dir / "regions").mkdir(parents=True, exist_ok=True)

        # 2. residents: each in exactly one region; facilities: within the buffered region
        res_frame = res.frame
        region_of = assign_units(res_frame["lon"], res_frame["lat"], geoms)
        outside = res_frame[region_of < 0]
        fac_frame = fac.frame
        fi, ai = shapely.STRtree(np.asarray(areas, dtype=object)).query(
            shapely.points(fac_frame["lon"].to_numpy(float), fac_frame["lat"].to_numpy(float)),
            predicate="intersects",
        )
        options: dict[str, Any] = {
            "standard": str(standard) if standard is not None else None,
            "mode": mode,
            "max_snap_m": max_snap_m,
            "network_crs": network_crs,
            "units": [str(Path(u).resolve()) for u in units],
            "upper_tiers_count": upper_tiers_count,
            "limit_m": limit_m,
            "lang": lang,
            "maps": maps,
            "version": BATCH_VERSION,
        }
        res_cols = ["id", "lon", "lat", "population", "elderly", "children"]
        fac_cols = ["id", "name", "tier", "lon", "lat", "capacity"]
        # rows of each region without a pass over all rows per region (stable: file order kept)
        res_order = np.argsort(region_of, kind="stable")
        res_cut = np.searchsorted(region_of[res_order], np.arange(len(ids) + 1))
        fac_order = np.lexsort((fi, ai))
        fac_cut = np.searchsorted(ai[fac_order], np.arange(len(ids) + 1))
        # the points' columns in region order, gathered once: each region's rows are a slice
        # (a facility near a border is in each region it serves)
        res_arrays = point_arrays(res_frame, res_cols, res_order)
        fac_arrays = point_arrays(fac_frame, fac_cols, fi[fac_order])
        # 3. one Dask task per region, submitted as soon as its files are written and the clip
        # pass is submitted (the workers start on the first regions while this process splits
        # the rest); a region not clipped before writes its network file from the clip pass
        # first. With resume, regions done with the same fingerprint are skipped.
        for pattern in (".*.tmp-*", ".*.old-*"):
            for stale in (out_dir / "regions").glob(pattern):
                shutil.rmtree(stale, ignore_errors=True)
        t_split = time.perf_counter()
        rows: dict[str, dict[str, Any]] = {}
        status: dict[str, str] = {}
        reasons: dict[str, str] = {}
        submitter = _Submitter(pending, futures, set(todo), retries, echo)
        # the regions with most residents first: Dask runs tasks in the order given, so the
        # last ones to run are small and the workers finish together
        names = reg["name"].tolist()
        for k in np.argsort(-np.diff(res_cut), kind="stable").tolist():
            r, name = ids[k], names[k]
            fpath, rpath = work / r / "facilities.npz", work / r / "residents.npz"
            fpath.parent.mkdir(parents=True, exist_ok=True)
            fac_part = slice_point_arrays(fac_arrays, fac_cut[k], fac_cut[k + 1])
            res_part = slice_point_arrays(res_arrays, res_cut[k], res_cut[k + 1])
            write_point_arrays(fac_part, None, fpath)
            write_point_arrays(res_part, None, rpath)
            h = hashlib.sha256(clip_keys[r].encode())
            for part in (fac_part, res_part):
                for col, values in part.items():
                    h.update(col.encode())
                    h.update(np.ascontiguousarray(values).data)
            h.update(json.dumps(options, sort_keys=True, default=str).encode())
            for u in units:
                _hash_file(h, Path(u))
            task = RegionTask(
                region_id=r,
                name=str(name),
                network=str(net_paths[r]),
                facilities=str(fpath),
                residents=str(rpath),
                out_dir=str(out_dir / "regions" / r),
                fingerprint=h.hexdigest()[:20],
                options=options,
            )
            done = _done_row(task) if resume else None
            if done is not None:
                rows[r], status[r] = done, "ok"
                if on_region_done:
                    on_region_done(r, "skipped")
                continue
            submitter.add(task)
        t_workers = time.perf_counter()
        clip_futures = submitter.flush()
        t_run = time.perf_counter()
        if clip_futures:
            _clip_result(clip_futures, net_src)  # its errors (an unreadable file...) end here
            Path(f"{clip_stem}.opl").unlink(missing_ok=True)  # cut into pieces: not needed
        t_clip = time.perf_counter()
        submitted = True
        logger.info(
            "batch: %d region(s), %d to run, %d already done",
            len(ids),
            len(futures),
            len(ids) - len(futures),
        )

        # 4. collect the regions as they finish
        _collect(futures, progress, rows, status, reasons, on_region_done)

        # 5. results
        timings = {
            "prepare": t_run - t_start,
            "prepare_read_inputs": t_read - t_start,
            "prepare_assign": t_split - t_read,
            "prepare_split_and_submit": t_workers - t_split,
            "wait_for_workers": t_run - t_workers,  # and the clip pass's read, then submit
            "wait_for_clip": t_clip - t_run,
            "run": time.perf_counter() - t_run,
        }
        table = _results_table(reg, std, rows, status, reasons)
        _write_results(
            out_dir, table, reasons, outside, fac, res, std, len(futures), timings, clip_buffer_m
        )
        return table
    finally:
        stop_start.set()
        _wind_up(pending, own_client=client is None, futures=futures, submitted=submitted)
        pool.shutdown()
        _restore_environment(environment)
        for f in work.glob(f"{clip_stem.name}*"):  # each region has written its network file
            f.unlink(missing_ok=True)
        if not submitted and fresh_out:
            # failed before the regions ran (bad points, unreadable extract): leave nothing
            shutil.rmtree(out_dir, ignore_errors=True)


class _Submitter:
    """Submits region tasks as soon as the cluster is up and the clip pass submitted (a region
    not clipped before waits for the pass's pieces); until then, keeps them in order."""

    def __init__(
        self,
        pending: Future[tuple[Client, list[DaskFuture[str]]]],
        futures: dict[str, DaskFuture[Any]],
        clipped_here: set[str],
        retries: int,
        echo: Callable[[str], None] | None,
    ) -> None:
        self.pending, self.futures, self.clipped_here = pending, futures, clipped_here
        self.retries, self.echo = retries, echo
        self.queued: list[RegionTask] = []
        self.started: tuple[Client, list[DaskFuture[str]]] | None = None

    def add(self, task: RegionTask) -> None:
        self.queued.append(task)
        if self.started is not None or self.pending.done():
            self.flush()

    def flush(self) -> list[DaskFuture[str]]:
        """Submit every queued task (waiting for the cluster if need be); the clip futures."""
        if self.started is None:
            self.started = self.pending.result()
            _announce(self.started[0], self.echo)
        cl, clip_futures = self.started
        for task in self.queued:
            self.futures[task.region_id] = cl.submit(
                run_region,
                task,
                clip_futures if task.region_id in self.clipped_here else None,
                key=f"region-{task.region_id}-{uuid.uuid4().hex[:6]}",
                retries=self.retries,
                pure=False,
            )
        self.queued.clear()
        return clip_futures


def _clip_result(futures: Sequence[DaskFuture[str]], source: Path) -> list[str]:
    """The clip pass's files; a worker lost while clipping (the usual cause: its memory limit)
    becomes an error that says what to change."""
    from distributed import KilledWorker

    try:
        return [f.result() for f in futures]
    except KilledWorker:
        raise NetworkError(
            f"the clip pass over {source} lost its worker, as many times as Dask allows (out of "
            "memory? its node index takes about 16 bytes per node of the extract): raise "
            "--memory-per-worker, or keep the index on disk with --node-index sparse_file_array"
        ) from None


def _wind_up(
    pending: Future[tuple[Client, list[DaskFuture[str]]]],
    *,
    own_client: bool,
    futures: Mapping[str, DaskFuture[Any]],
    submitted: bool,
) -> None:
    """Close the cluster we started (which stops anything still running on it); on a cluster
    we were given, cancel our tasks if the batch failed before collecting them."""
    try:
        cl, clip_futures = pending.result()
    except Exception:
        logger.debug("Dask client did not start", exc_info=True)
        return
    if own_client:
        _close_client(cl)
    elif not submitted:
        for f in [*futures.values(), *clip_futures]:
            f.cancel()


def _done_row(task: RegionTask) -> dict[str, Any] | None:
    """The row of a region already done with the same inputs' fingerprint, else None."""
    done = Path(task.out_dir) / DONE_FILE
    if not done.exists():
        return None
    try:
        rec = json.loads(done.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if rec.get("fingerprint") != task.fingerprint:
        return None
    return dict(rec["row"])


def _announce(cl: Client, echo: Callable[[str], None] | None) -> None:
    """Log (and echo) the dashboard link and the number of workers."""
    link = getattr(cl, "dashboard_link", None)
    if link and cl.scheduler_info().get("services", {}).get("dashboard"):
        logger.info("Dask dashboard: %s", link)
        if echo is not None:
            echo(f"Dask dashboard: {link}")
    n_workers = len(cl.scheduler_info().get("workers", {}))
    logger.info("batch: Dask cluster with %d worker(s)", n_workers)


def _collect(
    futures: Mapping[str, DaskFuture[Any]],
    progress: bool,
    rows: dict[str, dict[str, Any]],
    status: dict[str, str],
    reasons: dict[str, str],
    on_region_done: Callable[[str, str], None] | None,
) -> None:
    """Wait for the region tasks; record each one's row, or its failure reason."""
    from distributed import as_completed

    if not futures:
        return
    region_of = {f.key: r for r, f in futures.items()}
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=len(futures), unit="region", desc="regions")
    try:
        for fut in as_completed(list(futures.values())):
            r = region_of[fut.key]
            if fut.status == "finished":
                rows[r] = fut.result()
                status[r] = "ok"
            else:
                exc = fut.exception()
                reasons[r] = _reason(exc)
                status[r] = "failed"
                logger.warning("region %s failed: %s", r, reasons[r])
            if bar is not None:
                bar.update(1)
            if on_region_done:
                on_region_done(r, status[r])
    finally:
        if bar is not None:
            bar.close()


async def _warm_up() -> bool:
    """Nothing: unpickling this function on a worker imports ``lifecircle.batch`` and with it
    everything a region task needs, while the client prepares the inputs."""
    return True


def _start_client(
    scheduler: str,
    memory_per_worker: str,
    client: Client | None,
    clip: ClipJob | None,
    stop: threading.Event,
) -> tuple[Client, list[DaskFuture[str]]]:
    """Connect or start the cluster (unless ``client`` is given), let the workers import
    lifecircle in the background, and submit the clip pass if any region needs one: the read
    of the extract, then, once it is done, its text cut in one piece per worker thread (the
    region tasks wait for all of them).

    The pieces get the text's path as a plain value, not as the read's future: a worker would
    otherwise fetch that path from the read's worker, which answers only after its own piece
    (its task thread holds the GIL). Waiting stops when ``stop`` is set (the batch ended).
    Returns the client and the futures the region tasks wait for: the pieces, or the read
    alone if it failed (its error is the batch's).
    """
    cl = client if client is not None else _client(scheduler, memory_per_worker)
    if client is None:
        cl.run(_warm_up, wait=False)
    if clip is None:
        return cl, []
    key = uuid.uuid4().hex[:8]
    text = cl.submit(clip.read_extract, key=f"clip-read-{key}", pure=False)
    done = threading.Event()
    text.add_done_callback(lambda _: done.set())
    while not done.wait(0.1):
        if stop.is_set():
            return cl, [text]
    if text.status != "finished":
        return cl, [text]
    # one slot per worker thread; each piece asks for its own slot, or Dask would run them all
    # on the worker that ran the read (a preference, not a rule: a piece whose worker is lost
    # runs elsewhere)
    slots = [w for w, n in sorted(cl.nthreads().items()) for _ in range(n)][:MAX_CLIP_PIECES]
    clip = replace(clip, pieces=max(1, len(slots)))
    opl = text.result()
    return cl, [
        cl.submit(
            clip.cut,
            opl,
            k,
            key=f"clip-cut-{k}-{key}",
            workers=[slots[k]] if slots else None,
            allow_other_workers=True,
            pure=False,
        )
        for k in range(clip.pieces)
    ]


def _close_client(cl: Client) -> None:
    cluster = getattr(cl, "cluster", None)
    cl.close()
    if cluster is not None:
        cluster.close()


def _reason(exc: BaseException | None) -> str:
    if exc is None:
        return "unknown error"
    name = type(exc).__name__
    text = str(exc).splitlines()[0] if str(exc) else ""
    return f"{name}: {text}" if text else name


def _results_table(
    reg: gpd.GeoDataFrame,
    std: ServiceStandard,
    rows: Mapping[str, Mapping[str, Any]],
    status: Mapping[str, str],
    reasons: Mapping[str, str],
) -> gpd.GeoDataFrame:
    import geopandas as gpd

    cols = _contract_columns(std)
    records = []
    for r, name in zip(reg["region_id"], reg["name"], strict=True):
        rec: dict[str, Any] = {c: np.nan for c in cols}
        rec.update(rows.get(r, {}))
        rec.update(region_id=r, name=name, status=status.get(r, "failed"))
        records.append(rec)
    frame = pd.DataFrame.from_records(records, columns=cols)
    return gpd.GeoDataFrame(frame, geometry=list(reg.geometry), crs="EPSG:4326")


def _write_results(
    out_dir: Path,
    table: gpd.GeoDataFrame,
    reasons: Mapping[str, str],
    outside: pd.DataFrame,
    fac: PointTable,
    res: PointTable,
    std: ServiceStandard,
    n_run: int,
    timings: dict[str, float],
    clip_buffer_m: float,
) -> None:
    plain = pd.DataFrame(table.drop(columns="geometry"))
    write_csv(plain, out_dir / "regions.csv", overwrite=True)
    tmp = out_dir / f".regions.{uuid.uuid4().hex[:8]}.xlsx"
    plain.to_excel(tmp, index=False, sheet_name="regions")
    os.replace(tmp, out_dir / "regions.xlsx")
    tmp = out_dir / f".regions.{uuid.uuid4().hex[:8]}.gpkg"
    table.to_file(tmp, layer="regions", driver="GPKG")
    os.replace(tmp, out_dir / "regions.gpkg")
    failed = pd.DataFrame(
        {"region_id": list(reasons), "reason": [reasons[r] for r in reasons]},
        columns=["region_id", "reason"],
    )
    failed = failed[failed["region_id"].isin(table.loc[table["status"] == "failed", "region_id"])]
    write_csv(failed, out_dir / "failed.csv", overwrite=True)
    write_csv(
        outside[["id", "lon", "lat", "population"]],
        out_dir / "residents_outside_regions.csv",
        overwrite=True,
    )
    rejects = pd.concat([fac.rejects, res.rejects], ignore_index=True)
    write_csv(rejects, out_dir / "rejects.csv", overwrite=True)
    ok = table[table["status"] == "ok"]
    pop = float(ok["population"].sum())
    tiers = {}
    for t in std.tiers:
        covered = float(ok[f"{t.key}_population_covered"].sum())
        tiers[t.key] = {
            "label_zh": t.label_zh,
            "threshold_m": t.threshold_m,
            "population_covered": covered,
            "share": covered / pop if pop else 0.0,
        }
    all_cov = float((ok["all_share"] * ok["population"]).sum())
    summary = {
        "regions": len(table),
        "regions_ok": len(ok),
        "regions_failed": int((table["status"] == "failed").sum()),
        "regions_run": n_run,
        "regions_skipped": len(table) - n_run,
        "clip_buffer_m": clip_buffer_m,
        "population": pop,
        "tiers": tiers,
        "all_tiers": {"population_covered": all_cov, "share": all_cov / pop if pop else 0.0},
        "inputs": {
            "residents": {
                "input": res.n_input,
                "rejected": len(res.rejects),
                "in_regions": int(len(res.frame) - len(outside)),
                "outside_regions": len(outside),
            },
            "facilities": {"input": fac.n_input, "rejected": len(fac.rejects)},
        },
        "timings_s": {k: round(v, 3) for k, v in timings.items()},
    }
    write_json(summary, out_dir / "summary.json", overwrite=True)
    write_text(regions_page(table, std), out_dir / "regions.html", overwrite=True)
    logger.info("batch: wrote %s", out_dir)


def regions_page(table: gpd.GeoDataFrame, std: ServiceStandard) -> str:
    """An offline choropleth of the regions by ``all_share``, each linking to its own map."""
    css, js = leaflet_inline()
    shares = table["all_share"].to_numpy(float)
    colours = share_colour(np.nan_to_num(shares, nan=0.0))
    feats = []
    for i, row in enumerate(table.itertuples(index=False)):
        share = shares[i]
        feats.append(
            {
                "type": "Feature",
                "geometry": shapely.geometry.mapping(row.geometry),
                "properties": {
                    "id": row.region_id,
                    "name": row.name,
                    "status": row.status,
                    "share": None if not np.isfinite(share) else round(float(share), 4),
                    "colour": "#999999" if row.status != "ok" else str(colours[i]),
                    "href": f"regions/{row.region_id}/map.html",
                },
            }
        )
    data = json.dumps({"type": "FeatureCollection", "features": feats}, ensure_ascii=False)
    title = "各区域15分钟生活圈全部层级达标率"
    return f"""<!DOCTYPE html>
<html lang="zh"><head><meta charset="utf-8"><title>{title}</title>
<style>{css}
html,body,#map{{height:100%;margin:0}}
.legend{{background:#fff;padding:6px 8px;font:13px sans-serif}}</style>
<script>{js}</script></head>
<body><div id="map"></div>
<script>
var data = {data};
var map = L.map('map');
var layer = L.geoJSON(data, {{
  style: function (f) {{ return {{color: '#333', weight: 1, fillColor: f.properties.colour,
                                  fillOpacity: 0.7}}; }},
  onEachFeature: function (f, l) {{
    var p = f.properties;
    var s = p.share === null ? '失败' : (100 * p.share).toFixed(1) + '%';
    l.bindPopup('<b>' + p.name + '</b> (' + p.id + ')<br>全部层级达标率: ' + s +
                (p.status === 'ok' ? '<br><a href="' + p.href + '">打开区域地图</a>' : ''));
  }}
}}).addTo(map);
map.fitBounds(layer.getBounds());
var legend = L.control({{position: 'bottomright'}});
legend.onAdd = function () {{
  var d = L.DomUtil.create('div', 'legend');
  d.innerHTML = '<b>{title}</b><br>点击区域打开其地图；灰色：计算失败';
  return d;
}};
legend.addTo(map);
</script></body></html>
"""


def batch_scenario_args(section: Mapping[str, Any], base: Path) -> dict[str, Any]:
    """Keyword arguments of :func:`run_batch` from a scenario's ``[batch]`` section.

    Paths are relative to the scenario file. Allowed keys: ``regions``, ``region_id``,
    ``region_name``, ``regions_crs``, ``only``, ``clip_buffer_m``, ``scheduler``,
    ``memory_per_worker``, ``retries``.
    """
    allowed = {
        "regions",
        "region_id",
        "region_name",
        "regions_crs",
        "only",
        "clip_buffer_m",
        "scheduler",
        "memory_per_worker",
        "retries",
    }
    unknown = sorted(set(section) - allowed)
    if unknown:
        raise InputError(
            f"scenario [batch]: unknown key(s) {', '.join(unknown)}; allowed: "
            f"{', '.join(sorted(allowed))}"
        )
    out = dict(section)
    if "regions" in out:
        p = Path(str(out["regions"]))
        out["regions"] = p if p.is_absolute() else (base / p).resolve()
    return out


__all__ = ["RegionTask", "read_regions", "region_row", "run_batch", "run_region"]

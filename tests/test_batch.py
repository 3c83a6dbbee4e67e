"""``lifecircle batch``: many regions on Dask, each equal to a clipped single-region run."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
from shapely.geometry import box

import lifecircle as lc
from lifecircle.batch import (
    FORKSERVER_PRELOAD,
    LOCAL_CLUSTER_TIMERS,
    RegionTask,
    parse_scheduler,
    read_regions,
    run_batch,
    run_region,
    worker_context,
)
from lifecircle.cli import main
from lifecircle.datasets import write_grid_pbf
from lifecircle.errors import InputError, NetworkError
from lifecircle.maps import external_references
from lifecircle.units import assign_units

MID = (118.3214, 34.5675)  # the corner shared by the four townships of county A
BUFFER_M = 1500.0
OK_REGIONS = ["T1", "T2", "T3", "T4", "B"]


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    """SYNTHETIC: county A (40 x 40 nodes, 100 m blocks) cut into four townships, county B
    (30 x 30) 140 km away, and region X with no streets at all (the broken region)."""
    d = tmp_path_factory.mktemp("batch")
    write_grid_pbf(
        d / "big.osm.pbf", [(118.30, 34.55, 40, 40, 100.0), (117.0, 35.5, 30, 30, 100.0)]
    )
    mx, my = MID
    geoms = [
        box(118.30, 34.55, mx, my),
        box(mx, 34.55, 118.3428, my),
        box(118.30, my, mx, 34.5851),
        box(mx, my, 118.3428, 34.5851),
        box(117.0, 35.5, 117.033, 35.527),
        box(119.5, 36.0, 119.52, 36.02),
    ]
    gpd.GeoDataFrame(
        {"code": [*OK_REGIONS, "X"], "name": ["一镇", "二镇", "三镇", "四镇", "乙县", "空"]},
        geometry=geoms,
        crs=4326,
    ).to_file(d / "regions.geojson")
    rng = np.random.default_rng(7)
    n = 1200
    lon = np.r_[rng.uniform(118.30, 118.3428, n), rng.uniform(117.0, 117.033, 300), mx, mx, 118.0]
    lat = np.r_[rng.uniform(34.55, 34.5851, n), rng.uniform(35.5, 35.527, 300), 34.56, my, 34.0]
    pop = rng.integers(5, 50, len(lon))
    ids = [f"R{i}" for i in range(len(lon))]
    ids[-3:] = ["BORDER", "CORNER", "NOWHERE"]
    res = pd.DataFrame({"id": ids, "lon": lon, "lat": lat, "population": pop, "elderly": 2})
    res.to_csv(d / "res.csv", index=False)
    tiers = ["circle15"] * 5 + ["circle10"] * 15 + ["circle5"] * 40
    m = len(tiers)
    fac = pd.DataFrame(
        {
            "id": [f"F{i}" for i in range(2 * m)],
            "tier": tiers * 2,
            "lon": np.r_[rng.uniform(118.29, 118.35, m), rng.uniform(117.0, 117.033, m)],
            "lat": np.r_[rng.uniform(34.545, 34.59, m), rng.uniform(35.5, 35.527, m)],
        }
    )
    fac.to_csv(d / "fac.csv", index=False)
    return d


def _args(d: Path, out: Path) -> dict:
    return dict(
        network=d / "big.osm.pbf",
        facilities=d / "fac.csv",
        residents=d / "res.csv",
        out=out,
        standard="gb50180",
        clip_buffer_m=BUFFER_M,
        maps=False,
        retries=1,
    )


@pytest.fixture(scope="module")
def local_run(data, tmp_path_factory) -> tuple[Path, gpd.GeoDataFrame]:
    out = tmp_path_factory.mktemp("out") / "batch"
    table = run_batch(data / "regions.geojson", scheduler="local:2", **_args(data, out))
    return out, table


def test_regions_equal_separate_clipped_coverage_runs(data, local_run):
    out, table = local_run
    assert list(table["region_id"]) == [*OK_REGIONS, "X"]
    assert table.crs.to_epsg() == 4326
    regions = read_regions(data / "regions.geojson")
    res = pd.read_csv(data / "res.csv")
    which = assign_units(res["lon"], res["lat"], list(regions.geometry))
    for k, r in enumerate(OK_REGIONS):
        inside = res[which == k]
        inside.to_csv(out.parent / f"{r}_res.csv", index=False)
        cov = lc.run_coverage(
            lc.load_inputs(
                network=data / "big.osm.pbf",
                clip=regions.geometry[k],
                clip_buffer_m=BUFFER_M,
                facilities=data / "fac.csv",
                residents=out.parent / f"{r}_res.csv",
                standard="gb50180",
                cache_dir=None,
            )
        )
        ref = cov.residents_gdf().set_index("id")
        got = pd.read_csv(out / "regions" / r / "residents.csv", dtype={"id": str}).set_index("id")
        assert sorted(got.index) == sorted(ref.index)
        got = got.loc[ref.index]
        row = table.set_index("region_id").loc[r]
        for t in cov.inputs.standard.tiers:
            d_ref = ref[f"{t.key}_distance_m"].to_numpy(float)
            d_got = got[f"{t.key}_distance_m"].to_numpy(float)
            near = d_ref <= BUFFER_M  # every facility this close lies inside the buffered region
            np.testing.assert_allclose(d_got[near], d_ref[near], atol=0.01, rtol=0)
            assert (d_got[~near] >= d_ref[~near] - 0.01).all()
            share = cov.summary()["tiers"][t.key]["share"]
            assert row[f"{t.key}_share"] == pytest.approx(share, abs=1e-12)
        assert row["population"] == inside["population"].sum()
        assert row["status"] == "ok" and row["seconds"] > 0


def test_border_resident_counted_once(data, local_run):
    out, _ = local_run
    found = {
        r: set(pd.read_csv(out / "regions" / r / "residents.csv", dtype={"id": str})["id"])
        for r in OK_REGIONS
    }
    assert [r for r in OK_REGIONS if "BORDER" in found[r]] == ["T1"]  # on T1|T2: listed first
    assert [r for r in OK_REGIONS if "CORNER" in found[r]] == ["T1"]  # all four meet here
    res = pd.read_csv(data / "res.csv")
    s = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    assert (
        s["population"]
        == res["population"].sum() - res.loc[res["id"] == "NOWHERE", "population"].sum()
    )
    assert s["inputs"]["residents"]["outside_regions"] == 1
    assert sum(len(v) for v in found.values()) == len(res) - 1
    outside = pd.read_csv(out / "residents_outside_regions.csv")
    assert list(outside["id"]) == ["NOWHERE"]


def test_outputs_contract_failed_region_and_map(data, local_run):
    out, _ = local_run
    csv = pd.read_csv(out / "regions.csv", dtype={"region_id": str})
    assert list(csv.columns[:3]) == ["region_id", "name", "population"]
    for col in (
        "circle10_population_covered",
        "circle10_share",
        "circle10_elderly_share",
        "all_share",
        "circle10_facilities",
        "rejected",
        "status",
        "seconds",
    ):
        assert col in csv.columns
    assert list(csv["status"]) == ["ok"] * 5 + ["failed"]
    failed = pd.read_csv(out / "failed.csv")
    assert list(failed["region_id"]) == ["X"]
    assert "no highway" in failed["reason"].iloc[0]
    assert not (out / "regions" / "X").exists()  # nothing half-written
    assert not list((out / "regions").glob(".*"))
    gpkg = gpd.read_file(out / "regions.gpkg")
    assert len(gpkg) == 6 and gpkg.crs.to_epsg() == 4326
    xlsx = pd.read_excel(out / "regions.xlsx", dtype={"region_id": str})
    assert list(xlsx["region_id"]) == list(csv["region_id"])
    html = (out / "regions.html").read_text(encoding="utf-8")
    assert "regions/T1/map.html" in html and external_references(html) == []
    assert "L.geoJSON" in html and html.count('"href"') == 6
    s = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    assert (s["regions_ok"], s["regions_failed"]) == (5, 1)
    covered = csv.loc[csv["status"] == "ok", "circle10_population_covered"].sum()
    assert s["tiers"]["circle10"]["population_covered"] == pytest.approx(covered)


def test_resume_computes_only_missing_regions(data, local_run, tmp_path):
    out0, table0 = local_run
    out = tmp_path / "batch"
    shutil.copytree(out0, out)
    # an interrupted run: T3 never finished, T4 was half-written in its temporary folder
    shutil.rmtree(out / "regions" / "T3")
    os.replace(out / "regions" / "T4", out / "regions" / ".T4.tmp-deadbeef")
    events: list[tuple[str, str]] = []
    args = _args(data, out)
    table = run_batch(
        data / "regions.geojson",
        only=OK_REGIONS,
        resume=True,
        scheduler="local:1",
        on_region_done=lambda r, s: events.append((r, s)),
        **args,
    )
    assert sorted(r for r, s in events if s == "ok") == ["T3", "T4"]
    assert sorted(r for r, s in events if s == "skipped") == ["B", "T1", "T2"]
    assert not list((out / "regions").glob(".*"))
    cols = ["region_id", "population", "all_share", "circle10_share"]
    pd.testing.assert_frame_equal(
        pd.DataFrame(table[cols]), pd.DataFrame(table0[cols].iloc[:5]), check_exact=False
    )
    # a changed input recomputes its region only (new facility in county B)
    fac = pd.read_csv(data / "fac.csv")
    extra = pd.DataFrame({"id": ["NEW"], "tier": ["circle10"], "lon": [117.01], "lat": [35.51]})
    pd.concat([fac, extra]).to_csv(tmp_path / "fac2.csv", index=False)
    events.clear()
    args["facilities"] = tmp_path / "fac2.csv"
    run_batch(
        data / "regions.geojson",
        only=OK_REGIONS,
        resume=True,
        scheduler="local:1",
        on_region_done=lambda r, s: events.append((r, s)),
        **args,
    )
    assert [r for r, s in events if s == "ok"] == ["B"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.slow
def test_real_scheduler_and_workers_on_loopback_survive_a_killed_worker(data, tmp_path):
    dask = Path(sys.executable).parent / "dask"
    port = _free_port()
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[1] / "src")}
    logs = tmp_path / "logs"
    logs.mkdir()
    procs: list[subprocess.Popen] = []
    handles: list = []

    def start(*cmd: str, name: str) -> subprocess.Popen:
        log = open(logs / f"{name}.log", "wb")  # closed in the finally block
        handles.append(log)
        p = subprocess.Popen([str(dask), *cmd], env=env, stdout=log, stderr=subprocess.STDOUT)
        procs.append(p)
        return p

    address = f"tcp://127.0.0.1:{port}"
    try:
        start(
            "scheduler",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--no-dashboard",
            name="scheduler",
        )
        workers = [
            start(
                "worker",
                address,
                "--nthreads",
                "1",
                "--no-nanny",
                "--no-dashboard",
                "--host",
                "127.0.0.1",
                name=f"worker{i}",
            )
            for i in range(2)
        ]
        from distributed import Client

        deadline = time.monotonic() + 60
        while True:
            try:
                with Client(address, timeout="5s") as c:
                    if len(c.scheduler_info()["workers"]) == 2:
                        break
            except OSError:
                pass
            assert time.monotonic() < deadline, "dask workers did not start"
            time.sleep(0.5)
        killed = threading.Event()

        def kill_after_first(region: str, status: str) -> None:
            if not killed.is_set():
                workers[0].send_signal(signal.SIGKILL)
                killed.set()

        out = tmp_path / "batch"
        args = {**_args(data, out), "maps": True}
        table = run_batch(
            data / "regions.geojson",
            only=OK_REGIONS,
            scheduler=address,
            on_region_done=kill_after_first,
            **args,
        )
        assert killed.is_set() and workers[0].wait(10) is not None
        assert list(table["status"]) == ["ok"] * 5
        pids = []
        for r in OK_REGIONS:
            done = json.loads((out / "regions" / r / "done.json").read_text(encoding="utf-8"))
            pids.append(done["worker"]["pid"])
            assert (out / "regions" / r / "map.html").exists()
        # at most the first region finished on the killed worker; the survivor did the rest,
        # including whatever the killed worker held when it died
        assert pids.count(workers[0].pid) <= 1
        assert pids.count(workers[1].pid) >= len(OK_REGIONS) - 1
    finally:
        for p in reversed(procs):
            if p.poll() is None:
                p.terminate()
        for p in procs:
            try:
                p.wait(15)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        for h in handles:
            h.close()


def test_cli_batch_from_a_scenario(data, tmp_path, capsys):
    (tmp_path / "p.toml").write_text(
        f"""
[scenario]
name = "two counties"
[network]
path = "{(data / "big.osm.pbf").as_posix()}"
[facilities]
path = "{(data / "fac.csv").as_posix()}"
[residents]
path = "{(data / "res.csv").as_posix()}"
[standard]
preset = "gb50180"
[batch]
regions = "{(data / "regions.geojson").as_posix()}"
region_id = "code"
only = ["B", "X"]
clip_buffer_m = {BUFFER_M}
scheduler = "local:1"
retries = 0
""",
        encoding="utf-8",
    )
    rc = main(
        ["batch", "--scenario", str(tmp_path / "p.toml"), "--out", str(tmp_path / "o"), "--no-maps"]
    )
    captured = capsys.readouterr()
    assert rc == 3
    assert "1 of 2 region(s) done, 1 failed" in captured.out
    assert "failed.csv" in captured.err and "Traceback" not in captured.err
    csv = pd.read_csv(tmp_path / "o" / "regions.csv")
    assert list(csv["region_id"]) == ["B", "X"]
    # the same scenario from Python, resumed: B is reused, the failed X is tried again
    events: list[tuple[str, str]] = []
    table = lc.run_batch(
        scenario=tmp_path / "p.toml",
        out=tmp_path / "o",
        maps=False,
        resume=True,
        on_region_done=lambda r, s: events.append((r, s)),
    )
    assert events == [("B", "skipped"), ("X", "failed")]
    assert list(table["status"]) == ["ok", "failed"] and table.crs.to_epsg() == 4326


def test_bad_batch_inputs(data, tmp_path):
    with pytest.raises(InputError, match="local:N"):
        parse_scheduler("local:0")
    with pytest.raises(InputError, match="tcp://HOST:PORT"):
        parse_scheduler("yarn")
    with pytest.raises(InputError, match="unknown region id"):
        run_batch(data / "regions.geojson", only=["T9"], **_args(data, tmp_path / "o"))
    with pytest.raises(InputError, match="no column 'kode'"):
        read_regions(data / "regions.geojson", id_field="kode")
    g = gpd.read_file(data / "regions.geojson")
    g.loc[1, "code"] = "T1"
    with pytest.raises(InputError, match="row 2: id 'T1' repeated"):
        read_regions(g)
    assert main(["batch", "--out", str(tmp_path / "o")]) == 1
    args = {**_args(data, tmp_path / "o2"), "network": tmp_path / "missing.osm.pbf"}
    with pytest.raises(InputError, match=r"missing\.osm\.pbf does not exist"):
        run_batch(data / "regions.geojson", **args)
    assert not (tmp_path / "o2").exists()  # nothing written before the inputs are checked
    # a bad residents file is found while the workers clip: the clipped files go too
    bad = tmp_path / "bad_res.csv"
    bad.write_text("id,lon,lat\nR1,118.31,34.56\n", encoding="utf-8")
    args = {**_args(data, tmp_path / "o3"), "residents": bad, "scheduler": "local:1"}
    with pytest.raises(InputError, match="population"):
        run_batch(data / "regions.geojson", **args)
    assert not (tmp_path / "o3").exists()
    # an extract libosmium cannot read fails the clip pass (the first task, on a worker): the
    # error reaches the caller as it is, and nothing is left behind
    broken = tmp_path / "broken.osm.pbf"
    broken.write_bytes(b"this is not a PBF file")
    args = {**_args(data, tmp_path / "o4"), "network": broken, "scheduler": "local:1"}
    with pytest.raises(NetworkError, match=r"cannot read OSM file .*broken\.osm\.pbf"):
        run_batch(data / "regions.geojson", **args)
    assert not (tmp_path / "o4").exists()


@pytest.mark.parametrize("stage", ["clip-read-", "clip-cut-"])
def test_clip_pass_that_loses_its_worker_says_what_to_change(data, tmp_path, stage):
    """The clip pass runs on the workers, under Dask's memory limit: a worker that dies while it
    reads the extract or cuts its piece (here killed on purpose when that task starts) ends the
    batch with advice, not Dask's KilledWorker, and nothing is left behind."""
    import dask
    from distributed import Client, LocalCluster, WorkerPlugin

    class DieWhenClipping(WorkerPlugin):
        def transition(self, key, start, finish, **kwargs):
            if str(key).startswith(stage) and finish == "executing":
                os._exit(1)

    with dask.config.set({"distributed.scheduler.allowed-failures": 0}):
        cluster = LocalCluster(
            n_workers=1, threads_per_worker=1, dashboard_address=":0", silence_logs=50
        )
    with cluster, Client(cluster) as cl:
        cl.register_plugin(DieWhenClipping())
        out = tmp_path / "o"
        with pytest.raises(NetworkError, match=r"lost its worker.*sparse_file_array"):
            run_batch(data / "regions.geojson", client=cl, **_args(data, out))
    assert not out.exists()


def test_region_points_files_round_trip(tmp_path):
    """A region's points as .npz arrays read back as an input file: same values, rows from 1."""
    from lifecircle._tables import read_raw_table, write_point_arrays
    from lifecircle.io import read_points

    frame = pd.DataFrame(
        {
            "id": ["R1", "二号"],
            "name": ["", "社区"],
            "lon": [118.3, 118.4],
            "lat": [34.5, 34.6],
            "population": [5.0, np.nan],
            "capacity": [np.inf, 3.0],
        }
    )
    cols = ["id", "name", "lon", "lat", "population", "capacity", "absent"]
    write_point_arrays(frame, cols, tmp_path / "p.npz")
    assert [p.name for p in tmp_path.iterdir()] == ["p.npz"]
    raw = read_raw_table(tmp_path / "p.npz")
    pd.testing.assert_frame_equal(raw.frame, frame, check_dtype=False)
    assert raw.rows.tolist() == [1, 2]
    table = read_points(tmp_path / "p.npz", "residents")
    assert table.frame["id"].tolist() == ["R1"]
    assert table.rejects[["row", "reason"]].values.tolist() == [[2, "missing_population"]]

    # a large CSV's text column comes as chunks of Arrow arrays; rows taken in a given order
    # and cut into regions as slices of the gathered arrays
    import pyarrow as pa

    from lifecircle._tables import point_arrays, slice_point_arrays

    chunked = pa.chunked_array([["a", None, "三"], ["dd", ""]], type=pa.large_string())
    big = pd.DataFrame(
        {
            "id": pd.Series(chunked.to_pandas(types_mapper=lambda t: pd.StringDtype("pyarrow"))),
            "lon": [1.0, 2.0, 3.0, 4.0, 5.0],
        }
    )
    arrays = point_arrays(big, ["id", "lon"], np.array([4, 3, 2, 1, 0]))
    part = slice_point_arrays(arrays, 1, 4)
    write_point_arrays(part, None, tmp_path / "part.npz")
    back = read_raw_table(tmp_path / "part.npz").frame
    assert back["id"].tolist() == ["dd", "三", ""]
    assert back["lon"].tolist() == [4.0, 3.0, 2.0]


def test_local_workers_keep_glibc_malloc_defaults():
    """Dask's MALLOC_TRIM_THRESHOLD_ made every region task 40 % slower (page faults); Dask's
    OMP_NUM_THREADS=1 is kept, and lifecircle's thread budget follows it."""
    from lifecircle.batch import _client

    before = os.environ.get("OMP_NUM_THREADS")
    cl = _client("local:1", "1GiB")
    # the nannies set the workers' environment in this process: put back
    assert os.environ.get("OMP_NUM_THREADS") == before
    try:
        env = cl.run(lambda: os.environ.get("MALLOC_TRIM_THRESHOLD_"))
        assert list(env.values()) == [None]
        assert list(cl.run(lambda: os.environ.get("OMP_NUM_THREADS")).values()) == ["1"]
        # one core per worker thread, as Dask intends: lifecircle's own steps stay on it
        from lifecircle._threads import thread_budget

        assert list(cl.run(thread_budget).values()) == [1]
        # forked from the forkserver with lifecircle and its kernels imported, before any task
        preloaded = cl.run(lambda: [m in sys.modules for m in FORKSERVER_PRELOAD])
        assert list(preloaded.values()) == [[True] * len(FORKSERVER_PRELOAD)]
        assert worker_context().get_start_method() == "forkserver"
        # the workers' event loops wake up less often than Dask's defaults (tick, monitor)
        import dask

        timers = cl.run(lambda: {k: dask.config.get(k) for k in LOCAL_CLUSTER_TIMERS})
        assert list(timers.values()) == [LOCAL_CLUSTER_TIMERS]
        assert dask.config.get("distributed.admin.tick.interval") == "20ms"  # not this process
    finally:
        cl.close()
        cl.cluster.close()


def test_run_region_is_atomic_in_process(local_run, tmp_path):
    """The task itself (run here, in this process): outputs appear whole or not at all."""
    out0, _ = local_run
    inputs = out0 / "_inputs"

    def task(r: str, out: Path) -> RegionTask:
        return RegionTask(
            region_id=r,
            name=r,
            network=str(next((inputs / r).glob("network.*.osm.pbf"))),
            facilities=str(inputs / r / "facilities.npz"),
            residents=str(inputs / r / "residents.npz"),
            out_dir=str(out),
            fingerprint="f1",
            options={"standard": "gb50180", "maps": False},
        )

    out = tmp_path / "regions" / "B"
    row = run_region(task("B", out))
    done = json.loads((out / "done.json").read_text(encoding="utf-8"))
    assert done["fingerprint"] == "f1" and done["row"] == row
    assert done["worker"]["peak_rss_mb"] > 0 and done["worker"]["cpu_seconds"] > 0
    ref = pd.read_csv(out0 / "regions" / "B" / "residents.csv")
    pd.testing.assert_frame_equal(pd.read_csv(out / "residents.csv"), ref)
    # a second run replaces the folder as a whole; a failing one leaves nothing behind
    (out / "stale.txt").write_text("old", encoding="utf-8")
    run_region(task("B", out))
    assert not (out / "stale.txt").exists()
    with pytest.raises(NetworkError, match="no highway"):
        run_region(task("X", tmp_path / "regions" / "X"))
    assert sorted(p.name for p in (tmp_path / "regions").iterdir()) == ["B"]


def test_clip_piece_recomputed_after_its_worker_is_lost(data, tmp_path):
    """Dask recomputes a piece whose result only a lost worker held; by then the batch has
    deleted the text, and the piece's file, complete, is what the piece returns."""
    import shapely

    from lifecircle.batch import ClipJob
    from lifecircle.extract import buffer_geometry_m, write_clipped_region

    area = buffer_geometry_m(box(118.30, 34.55, MID[0], MID[1]), BUFFER_M)
    job = ClipJob(
        source=str(data / "big.osm.pbf"),
        areas_wkb={"T1": shapely.to_wkb(area)},
        opl=str(tmp_path / "t.opl"),
        out_pattern=str(tmp_path / "t-{}.npz"),
        modes=("walk",),
        node_index="flex_mem",
        pieces=2,
    )
    opl = job.read_extract()
    files = [job.cut(opl, k) for k in range(2)]
    one = tmp_path / "T1.osm.pbf"
    nodes = write_clipped_region(files, "T1", one)
    assert nodes > 0
    Path(opl).unlink()  # the batch deletes the text once every piece is saved
    assert job.cut(opl, 1) == files[1]
    again = tmp_path / "again.osm.pbf"
    write_clipped_region(files, "T1", again)
    assert again.read_bytes() == one.read_bytes()

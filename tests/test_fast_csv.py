"""The fast CSV writer writes byte for byte what pandas writes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from lifecircle._csv import write_csv_fast


def _frame(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    d = rng.uniform(0, 5000, n).round(2)
    d[rng.random(n) < 0.1] = np.nan
    minutes = (d / 66.7).round(3)
    odd = rng.normal(0, 1e6, n)  # unrounded: up to 17 digits
    odd[:6] = [1e-5, -0.0, 1e16, 123456789012.5, 5e-324, 2.5e-4][:n]
    ids = np.array([f"R{i}" for i in range(n)], dtype=object)
    ids[:4] = ["a,b", 'say "hi"', "多行\n文本", "ä"][:n]
    near = np.where(rng.random(n) < 0.3, "", rng.choice(["F1", "F2", "设施3"], n)).astype(object)
    near[n // 2] = None
    return pd.DataFrame(
        {
            "id": ids,
            "population": rng.integers(1, 20, n).astype(float),
            "elderly": np.where(rng.random(n) < 0.2, np.nan, rng.integers(0, 5, n).astype(float)),
            "lon": rng.uniform(118, 119, n).round(7),
            "lat": rng.uniform(34, 35, n).round(7),
            "neg": -rng.uniform(0, 10, n).round(1),
            "zero": np.zeros(n),
            "odd": odd,
            "dist_m": d,
            "minutes": minutes,
            "near": near,
            "covered": d <= 1000,
            "count": rng.integers(-5, 10**12, n),
            "cat": pd.Categorical(rng.choice(["x", "y"], n)),
        }
    )


@pytest.mark.parametrize("n", [1, 7, 2500])
def test_same_bytes_as_pandas(tmp_path: Path, n: int):
    f = _frame(n, seed=n)
    ours, theirs = tmp_path / "ours.csv", tmp_path / "theirs.csv"
    assert write_csv_fast(f, ours)
    f.to_csv(theirs, index=False, lineterminator="\n")
    assert ours.read_bytes() == theirs.read_bytes()


def test_many_blocks_and_empty(tmp_path: Path, monkeypatch):
    import lifecircle._csv as fast

    monkeypatch.setattr(fast, "ROWS_PER_BLOCK", 300)
    f = _frame(1000, seed=3)
    assert write_csv_fast(f, tmp_path / "a.csv")
    f.to_csv(tmp_path / "b.csv", index=False, lineterminator="\n")
    assert (tmp_path / "a.csv").read_bytes() == (tmp_path / "b.csv").read_bytes()
    empty = f.iloc[:0]
    assert write_csv_fast(empty, tmp_path / "c.csv")
    empty.to_csv(tmp_path / "d.csv", index=False, lineterminator="\n")
    assert (tmp_path / "c.csv").read_bytes() == (tmp_path / "d.csv").read_bytes()


def test_unsupported_columns_fall_back(tmp_path: Path):
    f = pd.DataFrame({"a": [1, 2], "t": pd.to_datetime(["2024-01-01", "2024-01-02"])})
    assert not write_csv_fast(f, tmp_path / "x.csv")
    assert not write_csv_fast(pd.DataFrame({"a": [1.0]}), tmp_path / "y.csv")


def test_infinities(tmp_path: Path):
    f = pd.DataFrame({"d": [1.5, np.inf, -np.inf, np.nan, 2.0], "k": ["a", "b", "c", "d", "e"]})
    assert write_csv_fast(f, tmp_path / "a.csv")
    f.to_csv(tmp_path / "b.csv", index=False, lineterminator="\n")
    assert (tmp_path / "a.csv").read_bytes() == (tmp_path / "b.csv").read_bytes()
    assert write_csv_fast(f, tmp_path / "c.csv", inf_as_empty=True)
    f.replace([np.inf, -np.inf], np.nan).to_csv(
        tmp_path / "d.csv", index=False, lineterminator="\n"
    )
    assert (tmp_path / "c.csv").read_bytes() == (tmp_path / "d.csv").read_bytes()

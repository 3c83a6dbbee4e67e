"""The planners' Excel workbook (lifecircle.workbook): sheets, Chinese headers, formats, values."""

from __future__ import annotations

import json
import re

import numpy as np
import openpyxl
import pandas as pd
import pytest

from lifecircle.config import preset
from lifecircle.errors import InputError, OutputExistsError
from lifecircle.pipeline import run_coverage, run_report, write_coverage_outputs
from lifecircle.report import write_report
from lifecircle.workbook import PERCENT_FORMAT, column_label, write_workbook
from test_report import make_inputs, node_xy

CJK = re.compile(r"[\u4e00-\u9fff]")


@pytest.fixture
def written(tmp_path):
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
    out = tmp_path / "out"
    write_coverage_outputs(cov, out)
    write_report(cov, out, report=rep)
    book = write_workbook(cov, out / "lifecircle.xlsx", report=rep)
    return cov, rep, out, book


def _frame(ws) -> pd.DataFrame:
    rows = list(ws.iter_rows(values_only=True))
    return pd.DataFrame(rows[1:], columns=rows[0])


def test_sheets_headers_and_formats(written):
    cov, _rep, _out, book = written
    wb = openpyxl.load_workbook(book)
    assert wb.sheetnames == ["总体", "街道", "社区", "缺口", "设施", "剔除记录", "说明"]
    keys = set(cov.result.standard.keys) | {"station", "point", "community"}
    for ws in wb.worksheets:
        assert ws.freeze_panes == "A2"
        for cell in ws[1]:
            header = str(cell.value)
            assert CJK.search(header), f"{ws.title}: header {header!r} is not Chinese"
            assert not any(k in header for k in keys)
    comm = wb["社区"]
    heads = [c.value for c in comm[1]]
    assert "便民点达标率" in heads and "服务站老年人达标率" in heads and "全部层级达标率" in heads
    share_col = heads.index("便民点达标率") + 1
    pop_col = heads.index("人口") + 1
    for row in comm.iter_rows(min_row=2):
        share = row[share_col - 1]
        if isinstance(share.value, float):
            assert share.number_format == PERCENT_FORMAT
            colour = share.fill.start_color.rgb[-6:]
            expected = (
                "F8D7DA" if share.value < 0.6 else "FFF3CD" if share.value < 0.9 else "D4EDDA"
            )
            assert colour == expected
        assert row[pop_col - 1].number_format == "#,##0"
    # column widths fit the longest cell (a CJK character counts double)
    width = comm.column_dimensions[openpyxl.utils.get_column_letter(heads.index("名称") + 1)].width
    assert width >= 2 * max(len(str(c.value)) for c in comm["C"][1:])
    # the 说明 sheet names standard, thresholds, date and version
    about = dict(wb["说明"].iter_rows(min_row=2, values_only=True))
    assert about["标准：便民点"] == "步行 3 分钟，150 米"
    assert about["数据来源：设施"] == "fac.csv" and about["数据来源：居民"] == "res.csv"
    assert about["lifecircle 版本"] and re.fullmatch(r"\d{4}-\d\d-\d\d", about["生成日期"])


def test_values_equal_csv_and_json(written):
    cov, _rep, out, book = written
    wb = openpyxl.load_workbook(book)
    std = cov.result.standard
    units = {"community": ("社区", "Community")}
    for sheet, csv_name in (("社区", "units_community.csv"), ("缺口", "gaps.csv")):
        got = _frame(wb[sheet])
        want = pd.read_csv(out / csv_name, keep_default_na=False)
        for col in want.columns:
            if col in ("layer", "tier", "tiers_missing", "weakest_tier", "outside", "name"):
                continue
            head = column_label(col, std, unit_labels=units)
            a = pd.to_numeric(want[col], errors="coerce")
            b = pd.to_numeric(got[head], errors="coerce")
            if a.notna().any():
                np.testing.assert_allclose(b, a, atol=1e-4, err_msg=f"{sheet}/{col}")
            else:
                assert got[head].fillna("").astype(str).tolist() == want[col].astype(str).tolist()
    overall = _frame(wb["总体"])
    summary = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    for row in overall.to_dict("records"):
        key = std.resolve_tier(row["层级"])
        assert key is not None
        assert row["达标率"] == pytest.approx(summary["tiers"][key]["share"])
        assert row["覆盖人口"] == pytest.approx(summary["tiers"][key]["population_covered"])
    assert len(_frame(wb["设施"])) == len(pd.read_csv(out / "facilities.csv"))


def test_english_and_errors(written, tmp_path):
    cov, rep, _out, book = written
    en = write_workbook(cov, tmp_path / "en.xlsx", report=rep, lang="en")
    wb = openpyxl.load_workbook(en)
    assert wb.sheetnames[0] == "Overall" and wb.sheetnames[-1] == "About"
    assert "Point share" in [c.value for c in wb["Community"][1]]
    with pytest.raises(OutputExistsError):
        write_workbook(cov, book)
    with pytest.raises(InputError, match=r"should end in \.xlsx"):
        write_workbook(cov, tmp_path / "x.xls")
    assert column_label("mystery", preset("tancheng")) == "mystery"  # logged, not fatal

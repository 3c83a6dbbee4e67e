"""Reading raw tables as county offices have them: encodings, title rows, several sheets.

One job: turn a CSV, XLSX, GeoJSON, GeoPackage or Shapefile into a data frame of raw values
(plus user-visible row numbers and the geometry, if any), whatever its encoding and layout.
Nothing here knows what the columns mean; :mod:`lifecircle.io` does.

* **Encodings.** A CSV is read as UTF-8 with BOM when it starts with one, else as UTF-8 when its
  bytes are valid UTF-8, else as GB18030 (the superset of GBK and GB2312 that Excel on Chinese
  Windows writes). A Shapefile's ``.dbf`` uses its ``.cpg`` when there is one; without one, text
  that is not valid UTF-8 is read as GB18030 with a warning (older ArcGIS and SuperMap files).
  The choice is logged; ``encoding=`` overrides it (``--encoding`` on the command line).
* **Title rows.** Spreadsheets often have a title (``郯城县各社区常住人口统计表``) and a blank
  line above the header. The header is the first of the first 20 rows whose non-empty cells are
  all text and number at least 80 % of the widest of those rows (and at least 2).
* **Sheets.** ``sheet`` is a sheet name or a 1-based number (``2`` = the second sheet).
"""

from __future__ import annotations

import csv
import io
import logging
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from lifecircle.errors import InputError

logger = logging.getLogger(__name__)

#: Encodings one may name with ``--encoding`` (any Python codec name also works).
COMMON_ENCODINGS: Final = ("utf-8", "utf-8-sig", "gb18030", "gbk", "big5")

_HEADER_SCAN_ROWS: Final = 20
_CSV_SUFFIXES: Final = (".csv", ".txt", ".csv.gz", ".tsv")
_XLSX_SUFFIXES: Final = (".xlsx", ".xlsm", ".xls")
_VECTOR_SUFFIXES: Final = (".geojson", ".json", ".gpkg", ".shp", ".fgb")
#: lifecircle's own point arrays (a batch's per-region inputs: :func:`write_point_arrays`).
_ARRAY_SUFFIXES: Final = (".npz",)


@dataclass(frozen=True)
class RawTable:
    """A table as read, before any column has a meaning.

    Attributes
    ----------
    frame : pandas.DataFrame
        CSV cells as text (``"007"`` stays ``"007"``); XLSX cells as typed values; vector
        attributes as read.
    rows : numpy.ndarray
        The row number a user sees for each row: the spreadsheet line for CSV/XLSX (counting
        title and comment lines above the header), the 1-based feature number for vector files.
    geometry : geopandas.GeoSeries or None
        The geometry of a vector file.
    encoding : str
        The text encoding used (``""`` for XLSX and GeoPackage).
    """

    frame: pd.DataFrame
    rows: NDArray[np.int64]
    geometry: Any
    encoding: str


def file_suffix(path: Path) -> str:
    """The lower-case suffix, ``.csv.gz`` counted as one."""
    name = path.name.lower()
    return ".csv.gz" if name.endswith(".csv.gz") else path.suffix.lower()


_UTF8_BOM: Final = b"\xef\xbb\xbf"


def _is_utf8(data: bytes) -> bool:
    """Whether ``data`` is valid UTF-8, by Arrow's vectorised validator: no text object of
    the whole file is made (a 120 MB table: 0.02 s instead of 0.1 s and 120 MB more memory).

    >>> _is_utf8("编号".encode()), _is_utf8("编号".encode("gbk"))
    (True, False)
    """
    import pyarrow as pa

    offsets = np.array([0, len(data)], dtype=np.int64)
    one = pa.LargeStringArray.from_buffers(1, pa.py_buffer(offsets), pa.py_buffer(data))
    try:
        one.validate(full=True)
    except pa.ArrowInvalid:
        return False
    return True


def detect_encoding(data: bytes) -> str:
    """The encoding of text bytes: ``utf-8-sig``, ``utf-8`` or ``gb18030``.

    >>> detect_encoding("编号,名称".encode("gbk"))
    'gb18030'
    >>> detect_encoding("\\ufeff编号".encode("utf-8"))
    'utf-8-sig'
    >>> detect_encoding(b"id,name")
    'utf-8'
    """
    if data.startswith(_UTF8_BOM):
        return "utf-8-sig"
    if _is_utf8(data):
        return "utf-8"
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as exc:
        # a cut in the middle of a multi-byte character at the end of a sample is still UTF-8
        if exc.start < len(data) - 3:
            return "gb18030"
    return "utf-8"


def _check_codec(encoding: str, where: str) -> str:
    import codecs

    try:
        return codecs.lookup(encoding).name
    except LookupError:
        raise InputError(
            f"{where}: unknown encoding {encoding!r}; use one of {', '.join(COMMON_ENCODINGS)} "
            "(--encoding)"
        ) from None


def _csv_utf8(path: Path, encoding: str | None) -> tuple[bytes, str]:
    """The file's text as UTF-8 bytes without a byte-order mark, and the encoding it had.

    A UTF-8 file is used as it is (validated, not decoded: Arrow parses bytes); other encodings
    are decoded and encoded as UTF-8.
    """
    if file_suffix(path) == ".csv.gz":
        import gzip

        data = gzip.decompress(path.read_bytes())
    else:
        data = path.read_bytes()
    if encoding is not None:
        enc = _check_codec(encoding, str(path))
        if enc == "utf-8" and data.startswith(_UTF8_BOM):
            enc = "utf-8-sig"
        how = "given"
    else:
        enc = detect_encoding(data)
        how = "detected"
    (logger.warning if enc == "gb18030" and how == "detected" else logger.info)(
        "%s: read as %s (%s; override with --encoding)", path, enc, how
    )
    if enc in ("utf-8", "utf-8-sig"):
        body = data[len(_UTF8_BOM) :] if data.startswith(_UTF8_BOM) else data
        if _is_utf8(body):
            return body, enc
    try:
        text = data.decode(enc)
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise InputError(
            f"{path}: line {line} is not valid {enc} text ({how}); save the file as UTF-8, or "
            f"name its encoding with --encoding (e.g. --encoding gb18030)"
        ) from None
    return text.encode("utf-8"), enc


def _is_text(v: Any) -> bool:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return False
    if isinstance(v, str):
        s = v.strip()
        if not s:
            return False
        try:
            float(s)
        except ValueError:
            return True
        return False
    return False


def _non_empty(v: Any) -> bool:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return False
    return not (isinstance(v, str) and not v.strip())


def header_row(rows: list[list[Any]]) -> int:
    """The 0-based index of the header among the first rows of a sheet.

    The first row whose non-empty cells are all text (not numbers) and that fills at least
    80 % of the widest row (and at least two cells); 0 when none qualifies.

    >>> header_row([["郯城县社区人口统计表"], [], ["编号", "社区", "常住人口"], ["1", "A", "5"]])
    2
    >>> header_row([["id", "name"], ["1", "x"]])
    0
    """
    counts = [sum(_non_empty(v) for v in r) for r in rows]
    widest = max(counts, default=0)
    need = max(2, math.ceil(0.8 * widest))
    for i, r in enumerate(rows):
        cells = [v for v in r if _non_empty(v)]
        if len(cells) >= need and all(_is_text(v) for v in cells):
            return i
    return 0


def _read_csv_fast(utf8: bytes, skip: int, sep: str) -> pd.DataFrame | None:
    """The table parsed by Arrow's multi-threaded reader, or None where pandas' C parser must
    decide: cells padded after a separator (``skipinitialspace``), ragged rows (the C parser
    pads short rows and reports the others in its own words)."""
    if (sep + " ").encode() in utf8 or b"\n " in utf8 or utf8.startswith(b" "):
        return None
    try:
        return pd.read_csv(
            io.BytesIO(utf8),
            dtype=str,
            keep_default_na=False,
            skiprows=skip,
            sep=sep,
            engine="pyarrow",
        )
    except ValueError:  # pandas turns Arrow's parse errors into ParserError, a ValueError
        return None


def _first_lines(utf8: bytes, after_comments: int) -> list[str]:
    """The leading ``#`` comment lines and the ``after_comments`` lines after them (a table of
    millions of rows is not split or decoded just to find its header)."""
    lines: list[str] = []
    rest = after_comments
    pos = 0
    while pos < len(utf8) and rest > 0:
        end = utf8.find(b"\n", pos)
        end = len(utf8) if end < 0 else end
        line = utf8[pos:end].decode("utf-8").rstrip("\r")
        lines.append(line)
        pos = end + 1
        if not line.startswith("#"):
            rest -= 1
    return lines


def _read_csv(path: Path, encoding: str | None) -> RawTable:
    utf8, enc = _csv_utf8(path, encoding)
    lines = _first_lines(utf8, _HEADER_SCAN_ROWS)
    n_comment = 0
    for line in lines:
        if not line.startswith("#"):
            break
        n_comment += 1
    sep = "\t" if file_suffix(path) == ".tsv" else ","
    head = list(csv.reader(lines[n_comment : n_comment + _HEADER_SCAN_ROWS], delimiter=sep))
    skip = n_comment + header_row(head)
    if skip > n_comment:
        logger.info("%s: header on line %d (title rows above it skipped)", path, skip + 1)
    df = _read_csv_fast(utf8, skip, sep)
    if df is None:
        df = pd.read_csv(
            io.BytesIO(utf8),
            encoding="utf-8",
            dtype=str,
            keep_default_na=False,
            skiprows=skip,
            sep=sep,
            skipinitialspace=True,
        )
    rows = np.arange(len(df), dtype=np.int64) + 2 + skip
    return RawTable(df, rows, None, enc)


def _sheet_name(path: Path, sheet: str | int | None) -> str | int:
    if sheet is None:
        return 0
    with pd.ExcelFile(path) as book:
        names = [str(n) for n in book.sheet_names]
    s = str(sheet).strip()
    if s in names:
        return s
    if s.isdigit() and 1 <= int(s) <= len(names):
        return names[int(s) - 1]
    raise InputError(
        f"{path}: no sheet {s!r}; the sheets are {', '.join(names)} "
        "(--sheet takes a sheet name or a number from 1)"
    )


def _read_xlsx(path: Path, sheet: str | int | None) -> RawTable:
    name = _sheet_name(path, sheet)
    grid = pd.read_excel(path, dtype=object, sheet_name=name, header=None)
    head = grid.head(_HEADER_SCAN_ROWS).to_numpy().tolist()
    h = header_row(head)
    body = grid.iloc[h + 1 :]
    header = [
        str(v).strip() if _non_empty(v) else f"column_{j + 1}" for j, v in enumerate(grid.iloc[h])
    ]
    df = pd.DataFrame(body.to_numpy(), columns=header)
    # drop empty trailing rows (Excel keeps formatted blank rows)
    keep = df.apply(lambda col: col.map(_non_empty)).any(axis=1).to_numpy()
    last = int(np.flatnonzero(keep)[-1]) + 1 if keep.any() else 0
    df = df.iloc[:last].reset_index(drop=True)
    rows = np.arange(len(df), dtype=np.int64) + int(body.index[0] if len(body) else h + 1) + 1
    if h:
        logger.info("%s: header on row %d (title rows above it skipped)", path, h + 1)
    return RawTable(df, rows, None, "")


#: Suffixes of a text column's two arrays in a point-arrays file: UTF-8 bytes and int64 offsets.
_TEXT_DATA: Final = ".utf8"
_TEXT_OFFSETS: Final = ".offsets"


def point_arrays(
    frame: pd.DataFrame, columns: Sequence[str], order: NDArray[np.int64] | None = None
) -> dict[str, NDArray[Any]]:
    """The columns of ``frame`` (rows in ``order`` if given) as plain arrays, no pickles.

    Numbers become float64; text (missing as "") becomes two arrays, ``{c}.utf8`` (the UTF-8
    bytes end to end, as Arrow keeps them) and ``{c}.offsets`` (int64, one more than the rows),
    so millions of ids pass without a Python string each. :func:`slice_point_arrays` cuts rows
    out; :func:`write_point_arrays` saves them.

    >>> a = point_arrays(pd.DataFrame({"id": ["R1", "二号"], "lon": [118.3, 118.4]}), ["id", "lon"])
    >>> sorted(a), a["id.offsets"].tolist(), bytes(a["id.utf8"]).decode()
    (['id.offsets', 'id.utf8', 'lon'], [0, 2, 8], 'R1二号')
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    out: dict[str, NDArray[Any]] = {}
    for c in columns:
        if c not in frame.columns:
            continue
        col = frame[c]
        if pd.api.types.is_numeric_dtype(col.dtype):
            values = col.to_numpy(dtype=float)
            out[c] = values if order is None else values[order]
            continue
        if getattr(col.dtype, "storage", None) == "pyarrow":
            text = pa.array(col.array)
        else:
            text = pa.array(col.astype(object).where(col.notna(), "").astype(str).tolist())
        if order is not None:
            text = pc.take(text, pa.array(order))
        text = pc.fill_null(text, "").cast(pa.large_string())
        if isinstance(text, pa.ChunkedArray):  # a large CSV's column comes in chunks
            text = text.combine_chunks()
        _, offsets, data = text.buffers()
        offs = np.frombuffer(offsets, dtype=np.int64)[text.offset : text.offset + len(text) + 1]
        out[c + _TEXT_DATA] = (
            np.frombuffer(data, dtype=np.uint8)[offs[0] : offs[-1]]
            if data
            else (np.zeros(0, dtype=np.uint8))
        )
        out[c + _TEXT_OFFSETS] = offs - offs[0]
    return out


def slice_point_arrays(arrays: dict[str, NDArray[Any]], start: int, stop: int) -> dict[str, Any]:
    """Rows ``start:stop`` of :func:`point_arrays` (views, no copies).

    >>> a = point_arrays(pd.DataFrame({"id": ["a", "bb", "ccc"]}), ["id"])
    >>> s = slice_point_arrays(a, 1, 3)
    >>> s["id.offsets"].tolist(), bytes(s["id.utf8"]).decode()
    ([0, 2, 5], 'bbccc')
    """
    out: dict[str, Any] = {}
    for k, v in arrays.items():
        if k.endswith(_TEXT_DATA):
            base = k[: -len(_TEXT_DATA)]
            offs = arrays[base + _TEXT_OFFSETS][start : stop + 1]
            out[k] = v[offs[0] : offs[-1]]
            out[base + _TEXT_OFFSETS] = offs - offs[0]
        elif not k.endswith(_TEXT_OFFSETS):
            out[k] = v[start:stop]
    return out


def write_point_arrays(
    frame: pd.DataFrame | dict[str, NDArray[Any]],
    columns: Sequence[str] | None,
    path: Path,
) -> None:
    """Points as plain arrays in an ``.npz`` (no pickles), atomically: a frame's ``columns`` as
    :func:`point_arrays` gives them, or such arrays themselves (``columns`` None). Written and
    read at memory speed (a batch hands each region's validated points to its task this way),
    and readable as an input file.
    """
    if isinstance(frame, pd.DataFrame):
        arrays = point_arrays(frame, columns or [])
    else:
        arrays = frame
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}.npz")
    try:
        np.savez(tmp, **arrays)  # type: ignore[arg-type]
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _read_point_arrays(path: Path) -> RawTable:
    import pyarrow as pa

    text_dtype = pd.StringDtype("pyarrow", na_value=np.nan)  # what a CSV's text columns get
    cols: dict[str, Any] = {}
    with np.load(path, allow_pickle=False) as z:
        for k in z.files:
            if k.endswith(_TEXT_OFFSETS):
                continue
            if k.endswith(_TEXT_DATA):
                base = k[: -len(_TEXT_DATA)]
                offs = z[base + _TEXT_OFFSETS]
                text = pa.LargeStringArray.from_buffers(
                    len(offs) - 1, pa.py_buffer(offs), pa.py_buffer(z[k])
                )
                text.validate(full=True)  # UTF-8 and offsets checked, as for any input file
                cols[base] = pd.Series(text.to_pandas(types_mapper={text.type: text_dtype}.get))
            else:
                cols[k] = z[k]
    df = pd.DataFrame(cols)
    return RawTable(df, np.arange(1, len(df) + 1, dtype=np.int64), None, "")


def dbf_encoding(path: Path, encoding: str | None = None) -> str | None:
    """The encoding to read a Shapefile's attributes with, or ``None`` to let GDAL decide.

    A ``.cpg`` file is trusted. Without one, the ``.dbf`` records are read as UTF-8 when they are
    valid UTF-8, else as GB18030 with a warning.
    """
    if encoding is not None:
        return _check_codec(encoding, str(path))
    if path.suffix.lower() != ".shp" or path.with_suffix(".cpg").exists():
        return None
    dbf = next(
        (q for q in (path.with_suffix(".dbf"), path.with_suffix(".DBF")) if q.exists()), None
    )
    if dbf is None:
        return None
    data = dbf.read_bytes()
    header_len = int.from_bytes(data[8:10], "little") if len(data) >= 10 else 0
    try:
        data[header_len:].decode("utf-8")
    except UnicodeDecodeError:
        logger.warning(
            "%s: no .cpg file and the attributes are not UTF-8; read as GB18030 "
            "(add a .cpg file or pass --encoding to choose)",
            path,
        )
        return "gb18030"
    return "utf-8"


def read_vector(path: Path, *, layer: str | None = None, encoding: str | None = None) -> Any:
    """A vector file as a GeoDataFrame, Shapefile attributes decoded as :func:`dbf_encoding`."""
    import geopandas as gpd

    kwargs: dict[str, Any] = {}
    if layer:
        kwargs["layer"] = layer
    enc = dbf_encoding(path, encoding)
    if enc is not None:
        kwargs["encoding"] = enc
    return gpd.read_file(path, **kwargs)


def read_raw_table(
    path: str | Path,
    *,
    layer: str | None = None,
    sheet: str | int | None = None,
    encoding: str | None = None,
) -> RawTable:
    """Read a CSV, XLSX, GeoJSON, GeoPackage or Shapefile as a :class:`RawTable`.

    Parameters
    ----------
    path : str or Path
    layer : str, optional
        Layer of a GeoPackage.
    sheet : str or int, optional
        Sheet of a workbook: a name or a number from 1 (default the first).
    encoding : str, optional
        Text encoding of a CSV or Shapefile (default: detected, see the module docstring).

    Raises
    ------
    InputError
        If the file is missing, unreadable, of an unknown type, or not valid text in the
        encoding.
    """
    p = Path(path)
    if not p.exists():
        raise InputError(f"input file {p} does not exist")
    suffix = file_suffix(p)
    try:
        if suffix in _CSV_SUFFIXES:
            return _read_csv(p, encoding)
        if suffix in _ARRAY_SUFFIXES:
            return _read_point_arrays(p)
        if suffix in _XLSX_SUFFIXES:
            return _read_xlsx(p, sheet)
        if suffix in _VECTOR_SUFFIXES:
            gdf = read_vector(p, layer=layer, encoding=encoding)
            geom = gdf.geometry
            df = pd.DataFrame(gdf.drop(columns=gdf.geometry.name))
            rows = np.arange(len(df), dtype=np.int64) + 1
            return RawTable(df, rows, geom, encoding or "")
    except InputError:
        raise
    except Exception as exc:  # pandas/pyogrio/openpyxl raise many kinds
        raise InputError(
            f"cannot read {p}: {exc}. Is it a valid {suffix or 'table'} file?"
        ) from exc
    raise InputError(f"{p}: unknown file type {suffix!r}; use .csv, .xlsx, .geojson, .gpkg or .shp")

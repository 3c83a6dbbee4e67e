"""The schema of lifecircle's TOML files (``scenario.toml``, service standards), checked strictly.

Every key a TOML file may hold is declared here, with its type, allowed range or values and a
one-line description. :func:`validate` checks a parsed file against a schema and reports *every*
problem at once, one line each, naming the file, the section and the key: unknown keys (with a
"did you mean" suggestion), wrong types, values out of range. ``0`` is a value like any other: it is
kept when allowed and reported when not, never replaced by a default. :func:`schema_markdown`
renders the tables in ``docs/configuration.md`` (a test checks the document against the code).
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Final

from lifecircle.errors import ConfigError

#: TOML value types by the name the schema uses for them.
_TYPES: Final[dict[str, tuple[type, ...]]] = {
    "string": (str,),
    "number": (int, float),
    "integer": (int,),
    "boolean": (bool,),
    "band": (str, list),
    "list": (list,),
    "table": (dict,),
    "sheet": (str, int),
}


@dataclass(frozen=True)
class Key:
    """One allowed key.

    Attributes
    ----------
    name : str
    type : {"string", "number", "integer", "boolean", "band", "list", "table", "sheet"}
        (``band``: a ``"lo-hi"`` string or a two-number array; ``list``: an array; ``table``: an
        inline table; ``sheet``: a name or a number)
    doc : str
        What it means (with its unit).
    required : bool
    minimum, maximum : float, optional
        Inclusive bounds for numbers.
    exclusive_minimum : bool
        ``minimum`` itself is not allowed (e.g. a distance must be > 0).
    choices : tuple of str
        Allowed values for strings (empty: any).
    """

    name: str
    type: str
    doc: str
    required: bool = False
    minimum: float | None = None
    maximum: float | None = None
    exclusive_minimum: bool = False
    choices: tuple[str, ...] = ()

    def allowed(self) -> str:
        """The allowed values in words, for the docs and the error messages."""
        if self.choices:
            return ", ".join(self.choices)
        op = ">" if self.exclusive_minimum else "≥"
        lo = "" if self.minimum is None else f"{op} {self.minimum:g}"
        hi = "" if self.maximum is None else f"≤ {self.maximum:g}"
        return ", ".join(p for p in (lo, hi) if p) or "any"


@dataclass(frozen=True)
class Section:
    """One ``[section]`` (``array=True``: ``[[section]]``, a list of tables).

    ``free_keys`` (a type name) allows any key of that type, e.g. ``[boundaries]``.
    """

    name: str
    doc: str
    keys: tuple[Key, ...] = ()
    array: bool = False
    required: bool = False
    free_keys: str = ""


@dataclass(frozen=True)
class Schema:
    """A TOML file's schema: top-level keys and sections."""

    title: str
    sections: tuple[Section, ...]
    top: tuple[Key, ...] = ()


_CRS_DOC = "coordinate system: wgs84, cgcs2000, gcj02 (Amap/Tencent), bd09 (Baidu) or EPSG:n"
_MODES: Final = ("walk", "bike", "drive")

SCENARIO: Final = Schema(
    "scenario.toml",
    (
        Section(
            "scenario",
            "what the scenario is",
            (
                Key("name", "string", "name shown in reports"),
                Key("name_en", "string", "English name"),
                Key("synthetic", "boolean", "true for generated demonstration data"),
                Key("description", "string", "free text shown in reports"),
                Key("seed", "integer", "random seed of a generated (demo) scenario"),
                Key("scale", "string", "size of a generated (demo) scenario"),
                Key("population", "number", "people in a generated (demo) scenario", minimum=0),
            ),
        ),
        Section(
            "network",
            "the road network",
            (Key("path", "string", ".osm, .osm.bz2, .osm.pbf or .graphml file", required=True),),
            required=True,
        ),
        Section(
            "facilities",
            "the facilities (service sites)",
            (
                Key("path", "string", ".csv, .xlsx, .geojson or .gpkg file", required=True),
                Key("crs", "string", _CRS_DOC),
                Key("columns", "table", 'column names, e.g. { population = "常住人口" }'),
                Key("sheet", "sheet", "workbook sheet, a name or a number from 1"),
                Key("encoding", "string", "text encoding (default: detected; e.g. gb18030)"),
                Key("tier_rules", "string", "POI tier rules file (tiers from type/name)"),
            ),
            required=True,
        ),
        Section(
            "residents",
            "the residents (points or polygons with population)",
            (
                Key("path", "string", ".csv, .xlsx, .geojson or .gpkg file", required=True),
                Key("crs", "string", _CRS_DOC),
                Key("columns", "table", 'column names, e.g. { population = "常住人口" }'),
                Key("sheet", "sheet", "workbook sheet, a name or a number from 1"),
                Key("encoding", "string", "text encoding (default: detected; e.g. gb18030)"),
                Key("population_table", "string", "population table joined to polygon residents"),
                Key("population_join", "string", 'join of the table, "TABLEFIELD=POLYGONFIELD"'),
                Key("population_field", "string", "population column of the table"),
                Key("buildings", "string", "building footprints with floors/area"),
            ),
        ),
        Section(
            "standard",
            "the service standard",
            (
                Key("preset", "string", "built-in standard", choices=("tancheng", "gb50180")),
                Key("path", "string", "a standard TOML file (schema below)"),
                Key("mode", "string", "travel mode for every tier", choices=_MODES),
            ),
        ),
        Section(
            "units",
            "admin-unit polygons (repeat the table for several layers)",
            (
                Key("path", "string", ".geojson, .gpkg or .shp file", required=True),
                Key("key", "string", "unit kind, e.g. community (default: the file name)"),
                Key("id_field", "string", "column holding the unit id"),
                Key("name_field", "string", "column holding the unit name"),
                Key("crs", "string", _CRS_DOC),
                Key("label_zh", "string", "Chinese label, e.g. 社区"),
                Key("label_en", "string", "English label"),
                Key("columns", "table", 'id and name columns, e.g. { id = "编码", name = "名称" }'),
            ),
            array=True,
        ),
        Section(
            "boundaries",
            "outline polygons for maps: any name = a .geojson path",
            free_keys="string",
        ),
        Section(
            "candidates",
            "candidate sites for site scoring",
            (
                Key("path", "string", ".csv, .xlsx, .geojson or .gpkg file", required=True),
                Key("crs", "string", _CRS_DOC),
                Key("columns", "table", 'column names, e.g. { population = "常住人口" }'),
                Key("sheet", "sheet", "workbook sheet, a name or a number from 1"),
                Key("encoding", "string", "text encoding (default: detected; e.g. gb18030)"),
            ),
        ),
        Section(
            "batch",
            "many regions at once (`lifecircle batch`)",
            (
                Key("regions", "string", "region polygons file (one analysis per polygon)"),
                Key("region_id", "string", "region id column"),
                Key("region_name", "string", "region name column"),
                Key("regions_crs", "string", _CRS_DOC),
                Key("only", "list", "run just these region ids"),
                Key(
                    "clip_buffer_m",
                    "number",
                    "buffer around each region, metres (default 2000)",
                    minimum=0,
                    maximum=100_000,
                ),
                Key("scheduler", "string", "Dask scheduler: local, local:N or tcp://host:port"),
                Key("memory_per_worker", "string", "memory limit of each local worker, e.g. 4GB"),
                Key("retries", "integer", "extra attempts of a failing region", minimum=0),
            ),
        ),
        Section(
            "grids",
            "the grid system (网格) for `lifecircle grids`",
            (
                Key("path", "string", "grid polygons (default: the [[units]] layer 'grid')"),
                Key("id_field", "string", "grid id column"),
                Key("crs", "string", _CRS_DOC),
                Key(
                    "household_size",
                    "number",
                    "people per household (default 3.0)",
                    minimum=0,
                    exclusive_minimum=True,
                ),
                Key("households_per_grid", "band", 'households band, "300-500" or [300, 500]'),
                Key(
                    "base_tier", "string", "tier whose facilities are grid bases (default station)"
                ),
                Key("bases", "string", "points file of grid bases instead of a tier"),
                Key(
                    "walk_m",
                    "number",
                    "walking standard for the share within reach, metres",
                    minimum=0,
                    exclusive_minimum=True,
                ),
                Key("propose", "boolean", "propose a re-gridding"),
            ),
        ),
        Section(
            "analysis",
            "analysis settings",
            (
                Key(
                    "max_snap_m",
                    "number",
                    "longest straight access leg to a street, metres (default 300)",
                    minimum=0,
                    maximum=100_000,
                ),
                Key("mode", "string", "travel mode for every tier", choices=_MODES),
            ),
        ),
    ),
)

STANDARD: Final = Schema(
    "standard TOML",
    (
        Section(
            "tiers",
            "one table per tier, highest tier first",
            (
                Key("key", "string", "identifier used in column names, e.g. point", required=True),
                Key("label_zh", "string", "Chinese label, e.g. 便民点"),
                Key("label_en", "string", "English label"),
                Key("mode", "string", "how residents travel (default walk)", choices=_MODES),
                Key("minutes", "number", "standard in minutes", minimum=0, exclusive_minimum=True),
                Key(
                    "threshold_m",
                    "number",
                    "standard in network metres (decides coverage when given)",
                    minimum=0,
                    exclusive_minimum=True,
                ),
                Key(
                    "speed_m_per_min",
                    "number",
                    "travel speed, metres per minute (default walk 66.7, bike 250, drive 500)",
                    minimum=0,
                    exclusive_minimum=True,
                ),
            ),
            array=True,
            required=True,
        ),
    ),
    top=(
        Key("name", "string", "name shown in reports (default: the file name)"),
        Key("description", "string", "where the thresholds come from"),
        Key(
            "upper_tiers_count",
            "boolean",
            "a higher-tier facility also serves lower tiers (GB 50180: false)",
        ),
    ),
)


def _suggest(name: str, allowed: Sequence[str]) -> str:
    close = difflib.get_close_matches(name, list(allowed), n=1, cutoff=0.6) or [
        a for a in sorted(allowed) if a.startswith(name) or name.startswith(a)
    ]
    hint = f"did you mean '{close[0]}'? " if close else ""
    return f"{hint}allowed: {', '.join(sorted(allowed))}"


def _type_name(value: object) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "table"
    return type(value).__name__


def _check_value(key: Key, value: object, where: str) -> str | None:
    """The problem with one value, or None."""
    types = _TYPES[key.type]
    if (isinstance(value, bool) and key.type != "boolean") or not isinstance(value, types):
        return f"{where}: must be a {key.type} ({key.allowed()}), got {_type_name(value)} {value!r}"
    if key.choices and value not in key.choices:
        return f"{where}: {value!r} is not allowed; {_suggest(str(value), key.choices)}"
    if isinstance(value, int | float) and not isinstance(value, bool):
        v = float(value)
        bad = not math.isfinite(v)
        if key.minimum is not None:
            bad |= v <= key.minimum if key.exclusive_minimum else v < key.minimum
        if key.maximum is not None:
            bad |= v > key.maximum
        if bad:
            return f"{where}: {value!r} is out of range; allowed: {key.allowed()}"
    return None


def _check_table(keys: Sequence[Key], table: Mapping[str, object], where: str) -> list[str]:
    problems: list[str] = []
    by_name = {k.name: k for k in keys}
    for name, value in table.items():
        if name not in by_name:
            problems.append(f"{where}, key '{name}': unknown key; {_suggest(name, list(by_name))}")
        else:
            p = _check_value(by_name[name], value, f"{where}, key '{name}'")
            if p:
                problems.append(p)
    for k in keys:
        if k.required and k.name not in table:
            problems.append(f"{where}: missing required key '{k.name}' ({k.doc})")
    return problems


def validate(data: Mapping[str, object], schema: Schema, file: str) -> None:
    """Check a parsed TOML file against ``schema``; raise one error listing every problem.

    Parameters
    ----------
    data : mapping
        The parsed file (``tomllib.loads``).
    schema : Schema
        :data:`SCENARIO` or :data:`STANDARD`.
    file : str
        The file name, for the messages.

    Raises
    ------
    ConfigError
        With one line per problem: ``FILE [section], key 'k': what is wrong; how to fix it``.

    Examples
    --------
    >>> validate({"analysis": {"max_snap": 50}, "network": {"path": "r.osm"},
    ...           "facilities": {"path": "f.csv"}}, SCENARIO, "s.toml")
    Traceback (most recent call last):
    ...
    lifecircle.errors.ConfigError: s.toml: 1 problem
      - s.toml [analysis], key 'max_snap': unknown key; did you mean 'max_snap_m'? allowed: ...
    """
    problems: list[str] = []
    sections = {s.name: s for s in schema.sections}
    top = {k.name: k for k in schema.top}
    for name, value in data.items():
        if name in top:
            p = _check_value(top[name], value, f"{file}, key '{name}'")
            if p:
                problems.append(p)
            continue
        if name not in sections:
            what = "section" if isinstance(value, dict | list) else "key"
            problems.append(f"{file}: unknown {what} '{name}'; {_suggest(name, [*sections, *top])}")
            continue
        sec = sections[name]
        tables: list[tuple[str, object]]
        if sec.array:
            if not isinstance(value, list):
                problems.append(f"{file}: '{name}' must be written as [[{name}]] tables")
                continue
            tables = [(f"{file} [[{name}]] #{i + 1}", t) for i, t in enumerate(value)]
        else:
            tables = [(f"{file} [{name}]", value)]
        for where, table in tables:
            if not isinstance(table, dict):
                problems.append(f"{where}: must be a table, got {_type_name(table)}")
            elif sec.free_keys:
                free = Key("*", sec.free_keys, "")
                problems += [
                    p
                    for k, v in table.items()
                    if (p := _check_value(free, v, f"{where}, key '{k}'"))
                ]
            else:
                problems += _check_table(sec.keys, table, where)
    for sec in schema.sections:
        if sec.required and sec.name not in data:
            brackets = f"[[{sec.name}]]" if sec.array else f"[{sec.name}]"
            problems.append(f"{file}: missing required section {brackets} ({sec.doc})")
    if problems:
        n = len(problems)
        raise ConfigError(f"{file}: {n} problem{'s' if n > 1 else ''}", problems)


def schema_markdown(schema: Schema) -> str:
    """The schema as Markdown tables (the text of ``docs/configuration.md``)."""
    lines = [f"### {schema.title}", ""]
    groups: list[tuple[str, str, Sequence[Key], str]] = []
    if schema.top:
        groups.append(("top-level keys", "", schema.top, ""))
    for s in schema.sections:
        head = f"`[[{s.name}]]`" if s.array else f"`[{s.name}]`"
        req = " (required)" if s.required else ""
        groups.append((head + req, s.doc, s.keys, s.free_keys))
    for head, doc, keys, free in groups:
        lines += [f"#### {head}", ""]
        if doc:
            lines += [doc, ""]
        lines += ["| key | type | required | allowed | meaning |", "|---|---|---|---|---|"]
        if free:
            lines.append(f"| *any name* | {free} | no | any | {doc} |")
        for k in keys:
            lines.append(
                f"| `{k.name}` | {k.type} | {'yes' if k.required else 'no'} | {k.allowed()} "
                f"| {k.doc} |"
            )
        lines.append("")
    return "\n".join(lines)

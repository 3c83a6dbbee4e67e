"""Tier rules: which tier a POI from an Amap/Baidu export is, from its type, typecode and name.

A rules file is TOML with one ``[[rule]]`` table per rule; the **first** rule whose conditions all
hold gives the tier, and its name is recorded per facility (column ``tier_rule``). Conditions
(each a string or a list of strings; a list matches when any element does):

``typecode``
    the POI's ``typecode`` starts with one of these (Amap typecodes are 6 digits; a POI with
    several, ``"141203|141204"``, matches when any does);
``type_contains`` / ``type_excludes``
    the ``type`` text (``"科教文化服务;学校;小学"``) contains one / none of these;
``name_contains`` / ``name_endswith`` / ``name_excludes``
    the name contains / ends with one / contains none of these;
``name_regex``
    the name matches this regular expression (Python ``re.search``).

A rule needs ``tier`` (a key or label of the service standard) and at least one condition;
``name`` labels it (default ``rule N``). Example (``data/tier_rules/amap_tancheng.toml``)::

    [[rule]]
    name = "社区党群服务中心"
    tier = "community_centre"
    name_endswith = "党群服务中心"
    name_excludes = ["县", "街道"]
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import numpy as np
import pandas as pd

from lifecircle.config import ServiceStandard
from lifecircle.errors import InputError

_CONDITIONS: Final = (
    "typecode",
    "type_contains",
    "type_excludes",
    "name_contains",
    "name_endswith",
    "name_excludes",
    "name_regex",
)


@dataclass(frozen=True)
class TierRule:
    """One rule: its label, the tier key it assigns, and its conditions (lists of strings)."""

    name: str
    tier: str
    conditions: tuple[tuple[str, tuple[str, ...]], ...]

    def matches(self, names: pd.Series, types: pd.Series, typecodes: pd.Series) -> np.ndarray:
        """Boolean mask of the rows this rule matches (all conditions hold)."""
        ok = np.ones(len(names), dtype=bool)
        for cond, values in self.conditions:
            if cond == "typecode":
                parts = typecodes.str.split("|")
                hit = parts.map(
                    lambda codes, v=values: any(c.strip().startswith(v) for c in codes)
                ).to_numpy(bool)
            elif cond == "name_regex":
                rx = re.compile("|".join(f"(?:{v})" for v in values))
                hit = names.map(lambda s, rx=rx: rx.search(s) is not None).to_numpy(bool)
            else:
                target = types if cond.startswith("type_") else names
                if cond.endswith("_endswith"):
                    hit = target.str.endswith(values).to_numpy(bool)
                else:
                    hit = np.zeros(len(target), dtype=bool)
                    for v in values:
                        hit |= target.str.contains(v, regex=False).to_numpy(bool)
                    if cond.endswith("_excludes"):
                        hit = ~hit
            ok &= hit
        return ok


@dataclass(frozen=True)
class TierRules:
    """An ordered list of :class:`TierRule` read from ``path``."""

    rules: tuple[TierRule, ...]
    path: str

    def assign(
        self, names: pd.Series, types: pd.Series, typecodes: pd.Series
    ) -> tuple[np.ndarray, np.ndarray]:
        """(tier key or ``""``, rule name or ``""``) per row; the first matching rule wins."""
        n = len(names)
        names = names.fillna("").astype(str).str.strip().reset_index(drop=True)
        types = types.fillna("").astype(str).str.strip().reset_index(drop=True)
        typecodes = typecodes.fillna("").astype(str).str.strip().reset_index(drop=True)
        tier = np.full(n, "", dtype=object)
        rule = np.full(n, "", dtype=object)
        for r in self.rules:
            hit = (tier == "") & r.matches(names, types, typecodes)
            tier[hit] = r.tier
            rule[hit] = r.name
        return tier, rule


def _strings(v: Any, where: str) -> tuple[str, ...]:
    vals = [v] if isinstance(v, str) else v
    if not isinstance(vals, list) or not vals or not all(isinstance(x, str) and x for x in vals):
        raise InputError(f"{where}: expected a non-empty string or list of strings, got {v!r}")
    return tuple(vals)


def load_tier_rules(path: str | Path, standard: ServiceStandard) -> TierRules:
    """Read and check a tier rules file against the service standard.

    Raises
    ------
    InputError
        If the file is missing or not TOML, a rule has an unknown key, no condition, a tier the
        standard does not know, or a regular expression that does not compile.
    """
    p = Path(path)
    if not p.exists():
        raise InputError(f"tier rules file {p} does not exist (--tier-rules)")
    try:
        data = tomllib.loads(p.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise InputError(f"tier rules file {p} is not valid UTF-8 TOML: {exc}") from exc
    raw = data.get("rule")
    extra = set(data) - {"rule", "description"}
    if not isinstance(raw, list) or not raw or extra:
        raise InputError(
            f"tier rules file {p}: expected [[rule]] tables (and an optional description); "
            f"got {', '.join(sorted(data)) or 'nothing'}"
        )
    rules: list[TierRule] = []
    known = ", ".join(t.key for t in standard.tiers)
    for i, r in enumerate(raw, start=1):
        where = f"tier rules file {p}, rule {i}"
        unknown = set(r) - {"name", "tier", *_CONDITIONS}
        if unknown:
            raise InputError(
                f"{where}: unknown key(s) {', '.join(sorted(unknown))}; allowed: name, tier, "
                f"{', '.join(_CONDITIONS)}"
            )
        key = standard.resolve_tier(str(r.get("tier", "")))
        if key is None:
            raise InputError(f"{where}: tier {r.get('tier')!r} is not one of {known}")
        conds = tuple((c, _strings(r[c], f"{where}, {c}")) for c in _CONDITIONS if c in r)
        if not conds:
            raise InputError(f"{where}: no condition; give one of {', '.join(_CONDITIONS)}")
        for c, vals in conds:
            if c == "name_regex":
                for v in vals:
                    try:
                        re.compile(v)
                    except re.error as exc:
                        raise InputError(f"{where}: bad name_regex {v!r}: {exc}") from None
        rules.append(TierRule(str(r.get("name") or f"rule {i}"), key, conds))
    return TierRules(tuple(rules), str(p))

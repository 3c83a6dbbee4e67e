"""Service standards: which tiers of facilities exist and how far each may be.

A :class:`ServiceStandard` is a frozen, validated list of :class:`Tier` objects, highest tier
first. It comes from a named preset (:func:`preset`) or a TOML file (:func:`from_toml`)::

    name = "my-county"
    upper_tiers_count = false      # does a community centre also count as a station? (GB 50180: no)

    [[tiers]]
    key = "point"
    label_zh = "便民点"
    label_en = "Convenience point"
    mode = "walk"                  # walk | bike | drive
    minutes = 5
    threshold_m = 300              # optional; if both are given, threshold_m decides coverage
    speed_m_per_min = 66.7         # optional; defaults per mode (walk 66.7, bike 250, drive 500)

Distances decide coverage; minutes are distance divided by the tier's speed.
"""

from __future__ import annotations

import logging
import math
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Final, Literal

from lifecircle._schema import STANDARD, validate
from lifecircle.errors import InputError

logger = logging.getLogger(__name__)

Mode = Literal["walk", "bike", "drive"]
MODES: Final = ("walk", "bike", "drive")

#: Default travel speeds in metres per minute. Walking 66.7 m/min (4 km/h) makes 15 minutes
#: = 1,000 m, the figure GB 50180-2018 uses; bike 250 m/min (15 km/h, an e-bike in town);
#: drive 500 m/min (30 km/h, urban traffic).
DEFAULT_SPEED_M_PER_MIN: Final[dict[str, float]] = {"walk": 66.7, "bike": 250.0, "drive": 500.0}

_TIER_KEYS: Final = {
    "key",
    "label_zh",
    "label_en",
    "mode",
    "minutes",
    "threshold_m",
    "speed_m_per_min",
}
_STANDARD_KEYS: Final = {"name", "description", "upper_tiers_count", "tiers"}


@dataclass(frozen=True)
class Tier:
    """One tier of service (e.g. convenience points) and its standard.

    Attributes
    ----------
    key : str
        Identifier used in column names, e.g. ``"point"`` gives ``point_distance_m``.
    label_zh, label_en : str
        Labels for maps and reports.
    mode : {"walk", "bike", "drive"}
        How residents travel to this tier.
    threshold_m : float
        Network distance in metres within which a resident counts as covered.
    minutes : float
        The standard in minutes (``threshold_m / speed_m_per_min`` when not given).
    speed_m_per_min : float
        Travel speed used to turn distances into minutes.
    """

    key: str
    label_zh: str
    label_en: str
    mode: Mode
    threshold_m: float
    minutes: float
    speed_m_per_min: float

    def __post_init__(self) -> None:
        if not self.key or not self.key.replace("_", "").isalnum() or not self.key.isascii():
            raise InputError(
                f"tier key {self.key!r} must be ASCII letters, digits and underscores "
                "(it becomes part of column names such as point_distance_m)"
            )
        if self.mode not in MODES:
            raise InputError(
                f"tier {self.key!r}: mode {self.mode!r} is not one of {', '.join(MODES)}"
            )
        for name in ("threshold_m", "minutes", "speed_m_per_min"):
            value = getattr(self, name)
            if not (isinstance(value, int | float) and math.isfinite(value) and value > 0):
                raise InputError(
                    f"tier {self.key!r}: {name} must be a positive number, got {value!r}"
                )

    @property
    def label(self) -> str:
        """``"便民点 Convenience point"``: both labels, for logs."""
        return f"{self.label_zh} {self.label_en}"


@dataclass(frozen=True)
class ServiceStandard:
    """A validated set of tiers, highest tier first.

    Attributes
    ----------
    name : str
        Preset or file name, shown in reports.
    tiers : tuple of Tier
        Highest tier (e.g. county centre) first, lowest (e.g. convenience point) last.
    upper_tiers_count : bool
        If True, a facility of a higher tier also serves every lower tier (a community centre
        counts as a station). GB 50180-2018 counts each level separately, so the default is False.
    description : str
        Where the thresholds come from.
    """

    name: str
    tiers: tuple[Tier, ...]
    upper_tiers_count: bool = False
    description: str = ""
    _by_key: dict[str, Tier] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not self.tiers:
            raise InputError(f"standard {self.name!r} has no tiers")
        keys = [t.key for t in self.tiers]
        dupes = sorted({k for k in keys if keys.count(k) > 1})
        if dupes:
            raise InputError(f"standard {self.name!r} repeats tier keys: {', '.join(dupes)}")
        object.__setattr__(self, "_by_key", {t.key: t for t in self.tiers})

    @property
    def keys(self) -> tuple[str, ...]:
        """Tier keys, highest tier first."""
        return tuple(t.key for t in self.tiers)

    def tier(self, key: str) -> Tier:
        """Return the tier called ``key``; raise :class:`InputError` listing the known keys."""
        try:
            return self._by_key[key]
        except KeyError:
            raise InputError(
                f"unknown tier {key!r} in standard {self.name!r}; "
                f"known tiers: {', '.join(self.keys)}"
            ) from None

    def resolve_tier(self, value: str) -> str | None:
        """Map a tier key or label (Chinese or English, case-insensitive) to its key, else None."""
        v = str(value).strip()
        if v in self._by_key:
            return v
        low = v.lower()
        for t in self.tiers:
            if low in (t.key.lower(), t.label_zh.lower(), t.label_en.lower()):
                return t.key
        return None

    def serving_tiers(self, key: str) -> tuple[str, ...]:
        """Tiers whose facilities count as coverage for tier ``key``.

        Just ``(key,)`` unless :attr:`upper_tiers_count`, in which case ``key`` and every tier
        above it.
        """
        self.tier(key)
        if not self.upper_tiers_count:
            return (key,)
        idx = self.keys.index(key)
        return self.keys[: idx + 1]

    def with_mode(self, mode: str) -> ServiceStandard:
        """A copy in which every tier uses ``mode`` (and that mode's default speed)."""
        if mode not in MODES:
            raise InputError(f"mode {mode!r} is not one of {', '.join(MODES)}")
        speed = DEFAULT_SPEED_M_PER_MIN[mode]
        tiers = tuple(
            replace(t, mode=mode, speed_m_per_min=speed, minutes=t.threshold_m / speed)  # type: ignore[arg-type]
            for t in self.tiers
        )
        return replace(self, tiers=tiers)

    def with_options(self, *, upper_tiers_count: bool | None = None) -> ServiceStandard:
        """A copy with changed options."""
        if upper_tiers_count is None:
            return self
        return replace(self, upper_tiers_count=upper_tiers_count)

    def to_dict(self) -> dict[str, Any]:
        """Plain-data form (for JSON summaries and the HTTP service)."""
        return {
            "name": self.name,
            "description": self.description,
            "upper_tiers_count": self.upper_tiers_count,
            "tiers": [asdict(t) for t in self.tiers],
        }


def make_tier(spec: Mapping[str, Any], *, where: str = "standard") -> Tier:
    """Build a :class:`Tier` from a mapping, filling minutes/threshold/speed from each other.

    Raises
    ------
    InputError
        On unknown keys, a missing key, or when neither ``minutes`` nor ``threshold_m`` is given.
    """
    unknown = set(spec) - _TIER_KEYS
    if unknown:
        raise InputError(
            f"{where}: unknown tier setting(s) {', '.join(sorted(unknown))}; allowed: "
            f"{', '.join(sorted(_TIER_KEYS))}"
        )
    key = spec.get("key")
    if not key:
        raise InputError(f"{where}: every tier needs a 'key'")
    mode = spec.get("mode", "walk")
    if mode not in MODES:
        raise InputError(f"{where}: tier {key!r} mode {mode!r} is not one of {', '.join(MODES)}")
    speed = float(spec.get("speed_m_per_min", DEFAULT_SPEED_M_PER_MIN[mode]))
    minutes = spec.get("minutes")
    threshold_m = spec.get("threshold_m")
    if minutes is None and threshold_m is None:
        raise InputError(f"{where}: tier {key!r} needs 'minutes' or 'threshold_m'")
    if threshold_m is None:
        threshold_m = float(minutes) * speed  # type: ignore[arg-type]
        logger.debug("tier %s: %s min at %s m/min -> %.0f m", key, minutes, speed, threshold_m)
    if minutes is None:
        minutes = float(threshold_m) / speed
    return Tier(
        key=str(key),
        label_zh=str(spec.get("label_zh", key)),
        label_en=str(spec.get("label_en", key)),
        mode=mode,
        threshold_m=float(threshold_m),
        minutes=float(minutes),
        speed_m_per_min=speed,
    )


def from_mapping(data: Mapping[str, Any], *, where: str = "standard") -> ServiceStandard:
    """Build a :class:`ServiceStandard` from plain data (as read from TOML or JSON)."""
    unknown = set(data) - _STANDARD_KEYS
    if unknown:
        raise InputError(
            f"{where}: unknown setting(s) {', '.join(sorted(unknown))}; allowed: "
            f"{', '.join(sorted(_STANDARD_KEYS))}"
        )
    tiers_raw = data.get("tiers")
    if not isinstance(tiers_raw, Sequence) or not tiers_raw:
        raise InputError(f"{where}: needs at least one [[tiers]] table")
    tiers = tuple(make_tier(t, where=where) for t in tiers_raw)
    return ServiceStandard(
        name=str(data.get("name", where)),
        tiers=tiers,
        upper_tiers_count=bool(data.get("upper_tiers_count", False)),
        description=str(data.get("description", "")),
    )


def from_toml(path: str | Path) -> ServiceStandard:
    """Read a standard from a TOML file (format in the module docstring)."""
    p = Path(path)
    try:
        data = tomllib.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(f"standard file {p} does not exist") from None
    except tomllib.TOMLDecodeError as exc:
        raise InputError(f"standard file {p} is not valid TOML: {exc}") from exc
    validate(data, STANDARD, str(p))
    data.setdefault("name", p.stem)
    return from_mapping(data, where=str(p))


_PRESETS: Final[dict[str, dict[str, Any]]] = {
    "gb50180": {
        "name": "gb50180",
        "description": (
            "GB 50180-2018 城市居住区规划设计标准: 5/10/15-minute living circles, walking "
            "300 m / 500 m / 1,000 m."
        ),
        "tiers": [
            {
                "key": "circle15",
                "label_zh": "15分钟生活圈",
                "label_en": "15-minute circle",
                "mode": "walk",
                "minutes": 15,
                "threshold_m": 1000,
            },
            {
                "key": "circle10",
                "label_zh": "10分钟生活圈",
                "label_en": "10-minute circle",
                "mode": "walk",
                "minutes": 10,
                "threshold_m": 500,
            },
            {
                "key": "circle5",
                "label_zh": "5分钟生活圈",
                "label_en": "5-minute circle",
                "mode": "walk",
                "minutes": 5,
                "threshold_m": 300,
            },
        ],
    },
    # 《社区生活圈规划技术指南》TD/T 1062-2021 (Ministry of Natural Resources, published
    # 2021): the urban community living circle has a 15-minute level (walking, about
    # 800-1,000 m; 1,000 m taken, as in GB 50180) and a 5-10-minute level, split here into its
    # 10-minute (500 m) and 5-minute (300 m) ends so that each can be checked.
    "tdt1062": {
        "name": "tdt1062",
        "description": (
            "TD/T 1062-2021 社区生活圈规划技术指南: urban community living circle levels, "
            "15-minute level walking 1,000 m (the guide's 800-1,000 m, upper end), 5-10-minute "
            "level split into 10 minutes / 500 m and 5 minutes / 300 m."
        ),
        "tiers": [
            {
                "key": "level15",
                "label_zh": "15分钟层级",
                "label_en": "15-minute level",
                "mode": "walk",
                "minutes": 15,
                "threshold_m": 1000,
            },
            {
                "key": "level10",
                "label_zh": "10分钟层级",
                "label_en": "10-minute level",
                "mode": "walk",
                "minutes": 10,
                "threshold_m": 500,
            },
            {
                "key": "level5",
                "label_zh": "5分钟层级",
                "label_en": "5-minute level",
                "mode": "walk",
                "minutes": 5,
                "threshold_m": 300,
            },
        ],
    },
    "tancheng": {
        "name": "tancheng",
        "description": (
            "Tancheng County's five tiers of party-and-public service sites. Community-level tiers "
            "follow GB 50180-2018 walking distances: convenience points 5 min / 300 m, service "
            "stations 10 min / 500 m, community centres 15 min / 1,000 m. The county and "
            "sub-district centres serve a whole town, which nobody is expected to reach on foot "
            "in 15 minutes; residents there ride e-bikes, so their standard is 15 minutes at "
            "250 m/min (15 km/h) = 3,750 m."
        ),
        "tiers": [
            {
                "key": "county_centre",
                "label_zh": "县级党群服务中心",
                "label_en": "County centre",
                "mode": "bike",
                "minutes": 15,
                "speed_m_per_min": 250.0,
            },
            {
                "key": "subdistrict_centre",
                "label_zh": "街道党群服务中心",
                "label_en": "Sub-district centre",
                "mode": "bike",
                "minutes": 15,
                "speed_m_per_min": 250.0,
            },
            {
                "key": "community_centre",
                "label_zh": "社区党群服务中心",
                "label_en": "Community centre",
                "mode": "walk",
                "minutes": 15,
                "threshold_m": 1000,
            },
            {
                "key": "station",
                "label_zh": "服务站",
                "label_en": "Service station",
                "mode": "walk",
                "minutes": 10,
                "threshold_m": 500,
            },
            {
                "key": "point",
                "label_zh": "便民点",
                "label_en": "Convenience point",
                "mode": "walk",
                "minutes": 5,
                "threshold_m": 300,
            },
        ],
    },
}

#: Names of the built-in presets.
PRESETS: Final = tuple(_PRESETS)

#: How reports name the built-in presets: ``{preset: (zh, en)}``.
PRESET_TITLES: Final[dict[str, tuple[str, str]]] = {
    "gb50180": (
        "《城市居住区规划设计标准》GB 50180-2018",
        "GB 50180-2018 residential planning standard",
    ),
    "tdt1062": (
        "《社区生活圈规划技术指南》TD/T 1062-2021",
        "TD/T 1062-2021 community living circle planning guide",
    ),
    "tancheng": (
        "郯城县党群服务阵地五级标准（社区级按 GB 50180-2018 步行距离）",
        "Tancheng five-tier party-and-public service standard (community tiers per GB 50180-2018)",
    ),
}


def standard_title(standard: ServiceStandard, lang: str = "zh") -> str:
    """The standard's name for a report: a preset's full title, else the standard's own name.

    Examples
    --------
    >>> standard_title(preset("gb50180"))
    '《城市居住区规划设计标准》GB 50180-2018'
    """
    titles = PRESET_TITLES.get(standard.name)
    if titles is None:
        return standard.name
    return titles[0] if lang == "zh" else titles[1]


def preset(name: str) -> ServiceStandard:
    """Return a built-in standard.

    Presets
    -------
    ``tancheng``
        Tancheng County's five tiers of party-and-public service sites (the default).
    ``gb50180``
        《城市居住区规划设计标准》GB 50180-2018: 15/10/5-minute living circles, walking
        1,000/500/300 m.
    ``tdt1062``
        《社区生活圈规划技术指南》TD/T 1062-2021 (自然资源部, 2021): the urban
        community living circle's 15-minute level (walking 800-1,000 m; 1,000 m used) and its
        5-10-minute level, checked at both ends (10 min / 500 m, 5 min / 300 m). Keys
        ``level15``, ``level10``, ``level5``.

    Examples
    --------
    >>> [(t.key, t.threshold_m) for t in preset("tdt1062").tiers]
    [('level15', 1000.0), ('level10', 500.0), ('level5', 300.0)]
    """
    try:
        return from_mapping(_PRESETS[name], where=f"preset {name!r}")
    except KeyError:
        raise InputError(
            f"unknown standard preset {name!r}; presets: {', '.join(PRESETS)}, or give a TOML file"
        ) from None


def load_standard(name_or_path: str | Path) -> ServiceStandard:
    """A service standard from a preset name or a TOML file.

    Parameters
    ----------
    name_or_path : str or Path
        A preset (``tancheng``, ``gb50180``) or the path of a TOML file with ``[[tiers]]``.

    Raises
    ------
    InputError
        If it is neither.

    Examples
    --------
    >>> from lifecircle.config import load_standard
    >>> std = load_standard("tancheng")
    >>> [(t.key, t.label_zh, round(t.threshold_m)) for t in std.tiers][-2:]
    [('station', '服务站', 500), ('point', '便民点', 300)]
    """
    s = str(name_or_path)
    if s in _PRESETS:
        return preset(s)
    if s.endswith(".toml") or Path(s).exists():
        return from_toml(s)
    raise InputError(f"standard {s!r} is neither a preset ({', '.join(PRESETS)}) nor a TOML file")


def parse_limit(text: str) -> float | str:
    """A ``--limit-m`` command-line value: metres, or ``auto`` (each tier's own standard)."""
    if text.strip().lower() == "auto":
        return "auto"
    import argparse

    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"takes metres or 'auto', got {text!r}") from None
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"must be a positive number of metres, got {text!r}")
    return value

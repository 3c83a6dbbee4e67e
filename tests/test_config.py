"""Service standards: presets, TOML files, validation."""

from __future__ import annotations

import pytest

from lifecircle.config import DEFAULT_SPEED_M_PER_MIN, from_toml, load_standard, preset
from lifecircle.errors import InputError


def test_tancheng_preset():
    s = preset("tancheng")
    assert s.keys == ("county_centre", "subdistrict_centre", "community_centre", "station", "point")
    assert s.tier("point").threshold_m == 300 and s.tier("point").minutes == 5
    assert s.tier("station").threshold_m == 500
    assert s.tier("community_centre").threshold_m == 1000
    assert s.tier("county_centre").threshold_m == pytest.approx(3750.0)  # 15 min at 250 m/min
    assert s.tier("county_centre").mode == "bike"
    assert s.resolve_tier("便民点") == "point" and s.resolve_tier("Service station") == "station"
    assert s.resolve_tier("卫生站") is None
    assert not s.upper_tiers_count and s.serving_tiers("station") == ("station",)
    up = s.with_options(upper_tiers_count=True)
    assert up.serving_tiers("station") == (
        "county_centre",
        "subdistrict_centre",
        "community_centre",
        "station",
    )


def test_gb50180_preset_is_gb_distances():
    s = preset("gb50180")
    assert [t.threshold_m for t in s.tiers] == [1000, 500, 300]


def test_tdt1062_preset_levels_and_walking_distances():
    """TD/T 1062-2021: the 15-minute level and the 5-10-minute level's two ends, all walking."""
    s = load_standard("tdt1062")
    assert s.name == "tdt1062" and "TD/T 1062-2021" in s.description
    assert [(t.key, t.minutes, t.threshold_m, t.mode) for t in s.tiers] == [
        ("level15", 15, 1000, "walk"),
        ("level10", 10, 500, "walk"),
        ("level5", 5, 300, "walk"),
    ]
    assert s.resolve_tier("5分钟层级") == "level5"


def test_minutes_to_metres_walk_default():
    # 15 min at the default 66.7 m/min is the GB 50180 1,000 m (to within rounding)
    assert 15 * DEFAULT_SPEED_M_PER_MIN["walk"] == pytest.approx(1000.5)


def test_with_mode_rescales_minutes():
    s = preset("tancheng").with_mode("drive")
    assert all(t.mode == "drive" for t in s.tiers)
    assert s.tier("point").minutes == pytest.approx(300 / 500)


def test_from_toml(tmp_path):
    p = tmp_path / "my.toml"
    p.write_text(
        'name = "my"\n[[tiers]]\nkey = "clinic"\nlabel_zh = "卫生室"\nminutes = 10\n'
        '[[tiers]]\nkey = "bus"\nthreshold_m = 500\nmode = "walk"\n',
        encoding="utf-8",
    )
    s = from_toml(p)
    assert s.keys == ("clinic", "bus")
    assert s.tier("clinic").threshold_m == pytest.approx(667.0)
    assert s.tier("bus").minutes == pytest.approx(500 / 66.7)
    assert load_standard(str(p)).keys == s.keys


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ('[[tiers]]\nkey = "a"\n', "needs 'minutes' or 'threshold_m'"),
        (
            '[[tiers]]\nkey = "a"\nminutes = 5\nspeed = 3\n',
            "key 'speed': unknown key; did you mean 'speed_m_per_min'",
        ),
        ('[[tiers]]\nkey = "a"\nminutes = -5\n', "key 'minutes': -5 is out of range; allowed: > 0"),
        ('[[tiers]]\nkey = "a b"\nminutes = 5\n', "ASCII"),
        ('[[tiers]]\nkey = "a"\nminutes = 5\nmode = "fly"\n', "mode"),
        ('[[tiers]]\nkey = "a"\nminutes = 5\n[[tiers]]\nkey = "a"\nminutes = 6\n', "repeats"),
        ("colour = 1\n", "unknown key 'colour'"),
        ("tiers = [\n", "not valid TOML"),
    ],
)
def test_bad_toml(tmp_path, text, match):
    p = tmp_path / "bad.toml"
    p.write_text(text, encoding="utf-8")
    with pytest.raises(InputError, match=match):
        from_toml(p)


def test_unknown_preset_and_tier():
    with pytest.raises(InputError, match="presets: gb50180, tdt1062, tancheng"):
        preset("nope")
    with pytest.raises(InputError, match="known tiers"):
        preset("tancheng").tier("hospital")
    with pytest.raises(InputError, match="neither a preset"):
        load_standard("nope")

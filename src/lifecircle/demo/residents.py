"""SYNTHETIC residents: population, elderly and children per residential point."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import shapely
from numpy.typing import NDArray

from lifecircle.demo.scene import (
    _VILLAGE_DEMOGRAPHY,
    _ZONES,
    CHILDREN_SHARE,
    COUNTY_POPULATION,
    ELDERLY_SHARE,
    TOWN_POPULATION,
    _largest_remainder,
    _Scene,
)


@dataclass
class _Residents:
    xy: NDArray[np.float64]
    pop: NDArray[np.int64]
    elderly: NDArray[np.int64]
    children: NDArray[np.int64]
    kind: list[str]
    name: list[str]
    zone: list[str]
    group: list[str]


def _finalise_residents(scene: _Scene) -> _Residents:
    rng = scene.rng(4)
    xy = np.column_stack([scene.rx, scene.ry])
    w = np.asarray(scene.rw, float)
    group = np.array(scene.rgroup)
    inside = shapely.contains_xy(scene.county, xy[:, 0], xy[:, 1])
    if scene.scale == "town":
        targets = {"town": TOWN_POPULATION}
    else:
        targets = {"town": TOWN_POPULATION, "township": 180_000}
        targets["rural"] = COUNTY_POPULATION - sum(targets.values())
    pop = np.zeros(len(w), np.int64)
    keep = inside.copy()
    for g, total in targets.items():
        m = (group == g) & inside
        pop[m] = _largest_remainder(w[m], total, minimum=1)
    keep &= np.isin(group, list(targets))
    zones = np.array(scene.rzone)
    ef = np.array([_VILLAGE_DEMOGRAPHY[0] if z == "village" else _ZONES[z].elderly for z in zones])
    cf = np.array([_VILLAGE_DEMOGRAPHY[1] if z == "village" else _ZONES[z].children for z in zones])
    ef = ef * rng.uniform(0.85, 1.15, len(w))
    cf = cf * rng.uniform(0.85, 1.15, len(w))
    ef *= 1.0 / (float((ef * pop)[keep].sum()) / float(pop[keep].sum()))
    cf *= 1.0 / (float((cf * pop)[keep].sum()) / float(pop[keep].sum()))
    elderly = np.floor(pop * ELDERLY_SHARE * ef + rng.random(len(w))).astype(np.int64)
    children = np.floor(pop * CHILDREN_SHARE * cf + rng.random(len(w))).astype(np.int64)
    children = np.minimum(children, pop - np.minimum(elderly, pop))
    elderly = np.minimum(elderly, pop)
    idx = np.flatnonzero(keep)
    return _Residents(
        xy[idx],
        pop[idx],
        elderly[idx],
        children[idx],
        [scene.rkind[i] for i in idx],
        [scene.rname[i] for i in idx],
        [scene.rzone[i] for i in idx],
        [scene.rgroup[i] for i in idx],
    )

"""Generate the SYNTHETIC Tancheng demonstration scenario (合成示范数据).

Usage::

    python scripts/make_demo_data.py                       # town scale into data/demo/tancheng
    python scripts/make_demo_data.py --scale county --out /tmp/tancheng_county

The county outline is the repository's ``data/boundaries/tancheng_county_wgs84.geojson`` (the
same file the package ships), so the committed ``scenario.toml`` names it by a relative path.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from lifecircle.demo import generate

REPO = Path(__file__).resolve().parent.parent
DEMO_DIR = REPO / "data" / "demo" / "tancheng"
OUTLINE = REPO / "data" / "boundaries" / "tancheng_county_wgs84.geojson"


def main(argv: list[str] | None = None) -> int:
    """Parse the arguments, generate the scenario and log where it went."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEMO_DIR, help="output directory")
    parser.add_argument("--seed", type=int, default=2020, help="random seed (default 2020)")
    parser.add_argument("--scale", choices=("town", "county"), default="town",
                        help="town (committed demo) or county (not committed)")  # fmt: skip
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    paths = generate(args.out, seed=args.seed, scale=args.scale, boundary_path=OUTLINE)
    logging.getLogger("make_demo_data").info("scenario: %s", paths["scenario"])
    return 0


if __name__ == "__main__":
    sys.exit(main())

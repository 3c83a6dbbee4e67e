"""Generate the SYNTHETIC Tancheng demonstration scenario (合成示范数据).

Usage::

    python scripts/make_demo_data.py                       # town scale into data/demo/tancheng
    python scripts/make_demo_data.py --scale county --out /tmp/tancheng_county
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from lifecircle.demo import DEFAULT_DEMO_DIR, generate


def main(argv: list[str] | None = None) -> int:
    """Parse the arguments, generate the scenario and log where it went."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_DEMO_DIR, help="output directory")
    parser.add_argument("--seed", type=int, default=2020, help="random seed (default 2020)")
    parser.add_argument("--scale", choices=("town", "county"), default="town",
                        help="town (committed demo) or county (not committed)")  # fmt: skip
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    paths = generate(args.out, seed=args.seed, scale=args.scale)
    logging.getLogger("make_demo_data").info("scenario: %s", paths["scenario"])
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""How many threads lifecircle's own parallel steps may use in this process.

Snapping, the CSV writer, service-area unions and the KD-tree queries run on threads (their work
releases the GIL). By default they use the machine's cores. Inside a Dask worker that is
oversubscription: Dask gives every worker thread one core and sets ``OMP_NUM_THREADS=1`` in its
workers so that numeric libraries inside a task stay on that core. lifecircle follows the same
convention (Arrow's CSV reader does too), in this order:

1. ``LIFECIRCLE_THREADS`` (a positive integer), when set;
2. ``OMP_NUM_THREADS`` (its first number), when set;
3. the number of cores, at most 8.
"""

from __future__ import annotations

import os
import re
from typing import Final

from lifecircle.errors import LifecircleError

#: More threads than this do not pay off for lifecircle's steps (measured up to 8 cores).
MAX_DEFAULT_THREADS: Final = 8


def thread_budget() -> int:
    """Threads lifecircle's parallel steps may use (see the module docstring).

    >>> import os
    >>> os.environ["LIFECIRCLE_THREADS"] = "3"
    >>> thread_budget()
    3
    >>> del os.environ["LIFECIRCLE_THREADS"]
    """
    own = os.environ.get("LIFECIRCLE_THREADS", "").strip()
    if own:
        if not own.isdigit() or int(own) < 1:
            raise LifecircleError(
                f"LIFECIRCLE_THREADS must be a positive whole number of threads, got {own!r}; "
                "set it to e.g. 1 or 4, or unset it to use every core"
            )
        return int(own)
    # OMP_NUM_THREADS may list one number per nesting level ("4,2"): the first one is ours
    omp = re.match(r"\s*(\d+)", os.environ.get("OMP_NUM_THREADS", ""))
    if omp and int(omp.group(1)) >= 1:
        return int(omp.group(1))
    return max(1, min(os.cpu_count() or 1, MAX_DEFAULT_THREADS))

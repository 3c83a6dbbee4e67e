"""Imported by Dask's forkserver before it forks a batch's local workers, and nowhere else.

It loads the compiled OPL parser once (:func:`lifecircle._opl.load_parser`), so the workers
forked from the forkserver do not each load it again when they cut their pieces of the clip
pass's text: about 0.2 s of CPU per worker, at the start of a batch, when every core is busy
(:data:`lifecircle.batch.FORKSERVER_PRELOAD`).
"""

from __future__ import annotations

from lifecircle import _opl

_opl.load_parser()

"""Heavy computations in a child process that is really stopped when it runs out of time.

A thread cannot be stopped: a timed-out computation in a thread keeps running (and holding memory)
after its request got a 503, and if its concurrency slot is released the next requests pile more
work on top. :func:`run_isolated` forks the service process (the child shares the loaded scenario
copy-on-write, so nothing is re-loaded or pickled on the way in), runs the function there and sends
back its result through a pipe. When the time is up the child is terminated (then killed), and the
call returns only once it is gone, so the work never outlives the slot that admitted it. The
computation also runs outside the service's GIL, so quick requests stay quick meanwhile.

Linux and macOS only (``fork``); elsewhere the function runs in the calling thread.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import multiprocessing.connection
import os
import signal
import sys
import traceback
import warnings
from collections.abc import Callable
from typing import Any, TypeVar, cast

T = TypeVar("T")

#: Whether computations can be isolated in a forked process on this platform.
CAN_FORK = sys.platform != "win32" and "fork" in multiprocessing.get_all_start_methods()


class IsolatedError(RuntimeError):
    """The isolated computation raised an exception that could not be sent back as itself."""


#: How much lower the heavy work's CPU priority is than the service's (``nice`` increment), so
#: that quick queries are answered first when the cores are busy.
CHILD_NICENESS = 10


def _child(conn: multiprocessing.connection.Connection, fn: Callable[[], Any]) -> None:
    # the server's signal handlers (uvicorn's graceful shutdown) mean nothing here: SIGTERM from
    # the parent at the timeout must end this process at once
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, signal.SIG_DFL)
    with contextlib.suppress(OSError):
        os.nice(CHILD_NICENESS)
    try:
        result: tuple[str, Any] = ("ok", fn())
    except BaseException as exc:  # sent back to the parent, which re-raises it
        result = ("error", exc)
    try:
        conn.send(result)
    except Exception as exc:  # the result (or exception) cannot be pickled: send a text
        what = (
            "".join(traceback.format_exception(result[1]))
            if result[0] == "error"
            else f"cannot send the answer back: {exc}"
        )
        conn.send(("error", IsolatedError(what)))
    finally:
        conn.close()


def run_isolated(fn: Callable[[], T], *, timeout_s: float) -> T:
    """Run ``fn()`` in a forked child process; blocks until it returns or is stopped.

    Parameters
    ----------
    fn : callable
        Takes no arguments (bind them with :func:`functools.partial`); its result must pickle.
    timeout_s : float
        Seconds the child may run; then it is terminated.

    Returns
    -------
    The result of ``fn()``.

    Raises
    ------
    TimeoutError
        When the time is up (the child has been stopped when this is raised).
    Exception
        Whatever ``fn`` raised, re-raised here.
    """
    if not CAN_FORK:  # pragma: no cover - Windows
        return fn()
    ctx = multiprocessing.get_context("fork")
    recv, send = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=_child, args=(send, fn), daemon=True)
    with warnings.catch_warnings():
        # Python 3.12+ warns that fork() in a multi-threaded process may deadlock; the child only
        # runs numpy/shapely work and sends a result, and is killed if it ever hangs
        warnings.simplefilter("ignore", DeprecationWarning)
        proc.start()
    send.close()
    try:
        if not recv.poll(timeout_s):
            raise TimeoutError(f"the computation took longer than {timeout_s:g} s")
        try:
            status, value = recv.recv()
        except EOFError:
            raise IsolatedError(
                f"the computation's process ended without an answer (exit code {proc.exitcode})"
            ) from None
        except Exception as exc:  # an answer that does not unpickle
            raise IsolatedError(f"the computation's answer cannot be read: {exc}") from None
    finally:
        recv.close()
        if proc.is_alive():
            proc.terminate()
            proc.join(2.0)
            if proc.is_alive():
                proc.kill()
        proc.join()
        proc.close()
    if status == "error":
        raise value
    return cast(T, value)

"""Atomic output sets: a command's whole set of files appears at once, or not at all.

:func:`output_set` takes a lock beside ``--out`` (a second run into the same folder fails at
once), yields an empty temporary folder beside it, and when the block succeeds writes
``manifest.json`` (command, the inputs' fingerprints, every file with its size and SHA-256, the
version) and swaps the folder in with renames. On any error or signal the temporary folder is
removed and the old set is untouched; ``overwrite`` replaces the old set as a whole, never file by
file. :func:`verify_manifest` checks a folder against its manifest.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import errno
import hashlib
import logging
import os
import shutil
import signal
import sys
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import IO, Any, Final

from lifecircle._files import write_json
from lifecircle._version import __version__
from lifecircle.errors import OutputExistsError, OutputLockedError

logger = logging.getLogger(__name__)

#: The manifest's file name inside every output set.
MANIFEST = "manifest.json"


def file_fingerprint(path: Path) -> dict[str, Any]:
    """``{"path", "bytes", "sha256"}`` of a file (a folder: of every file in it)."""
    h = hashlib.sha256()
    size = 0
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    for f in files:
        with f.open("rb") as fh:
            while block := fh.read(1 << 20):
                h.update(block)
                size += len(block)
    return {"path": str(path), "bytes": size, "sha256": h.hexdigest()}


def _try_lock(fh: IO[str]) -> None:
    """Lock an open file exclusively without waiting (raise OSError if another process holds
    it); the operating system releases the lock when the process ends, however it ends."""
    if sys.platform == "win32":
        import msvcrt

        fh.seek(0)
        msvcrt.locking(fh.fileno(), msvcrt.LK_NBLCK, 1)
    else:
        import fcntl

        fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)


def _lock_path(out: Path) -> Path:
    return out.parent / f".{out.name}.lock"


@contextlib.contextmanager
def _locked(out: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``out`` (released by the OS if the process dies)."""
    lock = _lock_path(out)
    fh: IO[str] = lock.open("a+", encoding="utf-8")
    try:
        try:
            _try_lock(fh)
        except OSError:
            fh.seek(0)
            holder = fh.read().strip() or "?"
            raise OutputLockedError(
                f"another lifecircle run (pid {holder}) is writing into {out}; wait for it to "
                "finish or choose another --out"
            ) from None
        if sys.platform != "win32":  # a locked byte cannot be rewritten on Windows
            fh.seek(0)
            fh.truncate()
            fh.write(str(os.getpid()))
            fh.flush()
        yield
    finally:
        fh.close()


def _clean_stale(out: Path) -> None:
    """Remove temporary folders left by runs that were killed (we hold the lock)."""
    for p in out.parent.glob(f".{out.name}.tmp-*"):
        shutil.rmtree(p, ignore_errors=True)
    for p in out.parent.glob(f".{out.name}.old-*"):
        if not out.exists():  # killed between the two renames: the old set is the last good one
            os.replace(p, out)
        else:
            shutil.rmtree(p, ignore_errors=True)


#: Kinds of files lifecircle writes: a folder holding only such files (or a manifest) is taken
#: to be an earlier output set, which ``overwrite`` may replace as a whole.
OUTPUT_SUFFIXES: Final = frozenset(
    {".csv", ".json", ".geojson", ".html", ".md", ".gpkg", ".png"}
    | {".shp", ".shx", ".dbf", ".prj", ".cpg"}
)


def _foreign_entries(out: Path, extra_suffixes: frozenset[str]) -> list[str]:
    """Entries of ``out`` that lifecircle would not have written (subfolders, other files)."""
    if (out / MANIFEST).is_file():
        return []  # an output set: lifecircle wrote all of it
    suffixes = OUTPUT_SUFFIXES | extra_suffixes
    return sorted(
        p.name
        for p in out.iterdir()
        if not (p.is_file() and p.suffix.lower() in suffixes) and not p.name.startswith(".score_")
    )


def check_output_folder(
    out: Path, *, overwrite: bool, extra_suffixes: frozenset[str] = frozenset()
) -> None:
    """Raise if ``out`` cannot take a new set: a file; a folder with files (without
    ``overwrite``); the working folder or one above it, the home folder, or a folder holding files
    lifecircle did not write (never replaced as a whole)."""
    if out.exists() and not out.is_dir():
        raise OutputExistsError(f"--out {out} is a file; give a folder name")
    if not out.is_dir() or not any(out.iterdir()):
        return
    if not overwrite:
        raise OutputExistsError(
            f"output folder {out} already exists with files in it; pass --overwrite to replace the "
            "whole set, or choose another --out"
        )
    here = Path.cwd().resolve()
    resolved = out.resolve()
    if resolved == here or resolved in here.parents or resolved == Path.home().resolve():
        raise OutputExistsError(
            f"--out {out} is the working folder, one above it or the home folder; --overwrite "
            "replaces the whole output folder, so give a folder of its own (e.g. --out out/run1)"
        )
    foreign = _foreign_entries(out, extra_suffixes)
    if foreign:
        shown = ", ".join(foreign[:5]) + (" …" if len(foreign) > 5 else "")
        raise OutputExistsError(
            f"--out {out} holds files lifecircle did not write ({shown}); --overwrite replaces the "
            "whole folder, so choose another --out or move those files"
        )


def _manifest(
    folder: Path, command: Sequence[str], inputs: Iterable[Path], status: str
) -> dict[str, Any]:
    files = [
        {
            "name": p.relative_to(folder).as_posix(),
            "bytes": p.stat().st_size,
            "sha256": file_fingerprint(p)["sha256"],
        }
        for p in sorted(folder.rglob("*"))
        if p.is_file() and p.name != MANIFEST
    ]
    return {
        "lifecircle_version": __version__,
        "command": list(command),
        "status": status,
        "created_utc": _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "inputs": [file_fingerprint(p) for p in dict.fromkeys(inputs) if p.exists()],
        "files": files,
    }


def verify_manifest(folder: str | Path) -> list[str]:
    """Problems of a folder against its ``manifest.json`` (empty list: the set is complete).

    Examples
    --------
    >>> import tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp()) / "out"
    >>> with output_set(d, command=["demo"]) as tmp:
    ...     _ = (tmp / "a.csv").write_text("x\\n1\\n")
    >>> verify_manifest(d)
    []
    """
    import json

    d = Path(folder)
    try:
        m = json.loads((d / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        return [f"{d / MANIFEST}: {exc}"]
    problems = []
    listed = {f["name"] for f in m["files"]}
    present = {p.relative_to(d).as_posix() for p in d.rglob("*") if p.is_file()} - {MANIFEST}
    problems += [f"{n}: not in the manifest" for n in sorted(present - listed)]
    for f in m["files"]:
        p = d / f["name"]
        if not p.is_file():
            problems.append(f"{f['name']}: missing")
        elif p.stat().st_size != f["bytes"] or file_fingerprint(p)["sha256"] != f["sha256"]:
            problems.append(f"{f['name']}: size or hash differs from the manifest")
    return problems


@contextlib.contextmanager
def _signals_blocked() -> Iterator[None]:
    """Hold back SIGTERM/SIGINT/SIGHUP between the two renames of a swap (POSIX)."""
    if not hasattr(signal, "pthread_sigmask"):  # Windows: the renames are not interruptible
        yield
        return
    sigs = {signal.SIGTERM, signal.SIGINT, signal.SIGHUP}
    old = signal.pthread_sigmask(signal.SIG_BLOCK, sigs)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


@contextlib.contextmanager
def output_set(
    out: str | Path,
    *,
    overwrite: bool = False,
    command: Sequence[str] = (),
    inputs: Iterable[Path] = (),
    commit_on: tuple[type[BaseException], ...] = (),
    extra_suffixes: frozenset[str] = frozenset(),
) -> Iterator[Path]:
    """Write a whole set of files into ``out`` atomically (see the module docstring).

    Parameters
    ----------
    out : path
        The output folder.
    overwrite : bool
        Replace an existing set as a whole; otherwise a folder holding files is an error (raised
        at once, before any work).
    command : sequence of str
        The command line, for the manifest.
    inputs : iterable of Path
        Input files to fingerprint in the manifest.
    commit_on : tuple of exception types
        Exceptions after which the set written so far is still swapped in (with ``status``
        ``"failed: <ExceptionName>"`` in the manifest) before the exception propagates; e.g. a
        run stopped for too many rejects still delivers its ``rejects.csv``.
    extra_suffixes : frozenset of str
        More file suffixes (besides :data:`OUTPUT_SUFFIXES`) that an earlier set may hold, e.g.
        ``{".osm", ".toml"}`` for the demo data folder.

    Yields
    ------
    Path
        An empty temporary folder beside ``out``; write the files there.

    Raises
    ------
    OutputExistsError
        ``out`` is a file, or holds files and ``overwrite`` is false.
    OutputLockedError
        Another run holds the lock of ``out``.
    """
    target = Path(out).absolute()
    check_output_folder(target, overwrite=overwrite, extra_suffixes=extra_suffixes)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise OutputExistsError(f"--out {out}: {target.parent} is a file, not a folder") from None
    with _locked(target):
        _clean_stale(target)
        # again, under the lock
        check_output_folder(target, overwrite=overwrite, extra_suffixes=extra_suffixes)
        tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=target.parent))
        status = "complete"
        pending: BaseException | None = None
        try:
            try:
                yield tmp
            except commit_on as exc:
                status = f"failed: {type(exc).__name__}"
                pending = exc
            write_json(
                _manifest(tmp, command, [Path(p).absolute() for p in inputs], status),
                tmp / MANIFEST,
            )
            old = target.with_name(f".{target.name}.old-{os.getpid()}")
            with _signals_blocked():
                if target.exists():
                    os.replace(target, old)
                try:
                    os.replace(tmp, target)
                except OSError:
                    if old.exists():  # put the old set back
                        os.replace(old, target)
                    raise
            shutil.rmtree(old, ignore_errors=True)
            logger.info("wrote the output set %s (%s)", target, status)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        if pending is not None:
            raise pending


def is_disk_error(exc: BaseException) -> bool:
    """True for errors of the disk rather than of lifecircle (full, read-only, no permission)."""
    return isinstance(exc, OSError) and exc.errno in (
        errno.ENOSPC,
        errno.EROFS,
        errno.EACCES,
        errno.EPERM,
        errno.EDQUOT,
    )

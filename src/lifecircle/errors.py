"""The public exception tree.

Every exception lifecircle raises on purpose derives from :class:`LifecircleError`, and also from
the matching builtin, so ``except ValueError`` keeps working for callers who do not know our
classes. The CLI and the HTTP service catch :class:`LifecircleError` and show its message.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


class LifecircleError(Exception):
    """Base class of every error lifecircle raises on purpose."""


@dataclass(frozen=True)
class RowProblem:
    """One problem with one input row.

    Attributes
    ----------
    file : str
        The input file (or layer) the row came from.
    row : int
        Row number as a user sees it: the spreadsheet line for CSV/XLSX (the header is line 1,
        the first data row is line 2), the 1-based feature number for GeoJSON/GeoPackage.
    id : str
        The row's ``id`` value, or ``""`` when it has none.
    reason : str
        A short machine-readable reason code, e.g. ``"missing_coordinates"``.
    detail : str
        What was received and how to fix it, for a human.
    """

    file: str
    row: int
    id: str
    reason: str
    detail: str = ""

    def __str__(self) -> str:
        where = f"{self.file}, row {self.row}" + (f" (id {self.id})" if self.id else "")
        return f"{where}: {self.reason}" + (f" — {self.detail}" if self.detail else "")


class InputError(LifecircleError, ValueError):
    """An input file or argument cannot be used.

    Parameters
    ----------
    message : str
        One-line summary: which input, what is wrong, how to fix it.
    problems : sequence of RowProblem, optional
        Every row-level problem found, so that the user can fix them all at once.
    """

    def __init__(self, message: str, problems: Sequence[RowProblem] = ()) -> None:
        self.problems: list[RowProblem] = list(problems)
        if self.problems:
            shown = "\n".join(f"  - {p}" for p in self.problems[:20])
            more = len(self.problems) - 20
            if more > 0:
                shown += f"\n  … and {more} more"
            message = f"{message}\n{shown}"
        super().__init__(message)


class CRSError(LifecircleError, ValueError):
    """A coordinate reference system is unknown, missing, or does not match."""


class NetworkError(LifecircleError, ValueError):
    """A road network cannot be loaded or is unusable (empty, no edges, unreadable file)."""


class OutputExistsError(LifecircleError, FileExistsError):
    """An output file exists and ``overwrite`` was not given."""


class LayerUnavailableError(InputError):
    """A requested export layer exists but cannot be produced in this run (e.g. ``units``
    without unit polygons, ``candidates`` without scored sites)."""


class ConfigError(InputError):
    """A TOML file (``scenario.toml``, a standard) does not follow its schema.

    Parameters
    ----------
    message : str
        One-line summary naming the file.
    lines : sequence of str
        One line per problem, each naming file, section and key.
    """

    def __init__(self, message: str, lines: Sequence[str] = ()) -> None:
        self.lines: list[str] = list(lines)
        text = "\n".join([message, *(f"  - {line}" for line in self.lines)])
        LifecircleError.__init__(self, text)
        self.problems = []


class RejectThresholdError(LifecircleError, ValueError):
    """Too many input rows were rejected for the result to be trusted (exit code 3).

    Attributes
    ----------
    counts : dict
        Rejected rows per ``(kind, reason)``, for the stderr summary.
    """

    exit_code = 3

    def __init__(
        self,
        message: str,
        counts: dict[tuple[str, str], int] | None = None,
        rejects: object = None,
    ) -> None:
        self.counts = dict(counts or {})
        #: the rejects table (a pandas DataFrame), written to rejects.csv before exiting
        self.rejects = rejects
        super().__init__(message)


class OutputLockedError(LifecircleError, BlockingIOError):
    """Another lifecircle run is writing into the same output folder."""


class MissingProgramError(LifecircleError, FileNotFoundError):
    """An external program lifecircle needs for an output (e.g. Chromium for ``report.pdf``) is
    not installed; the message names it and how to install it or skip that output."""

"""ADLA's sample data (``/Samples/Data``) shipped with azhpc, and :func:`install_samples`."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from azhpc.usql.session_jobs import script_lake

if TYPE_CHECKING:
    from azhpc.lake import Lake, RootedFileSystem
    from azhpc.session import Session

__all__ = ["SAMPLES", "install_samples"]

#: The sample files shipped with azhpc (ADLA's ``/Samples/Data``).
SAMPLES = Path(__file__).resolve().parents[1] / "samples" / "usql"


def install_samples(
    lake: Lake | RootedFileSystem | str | os.PathLike[str] | None = None,
    *,
    pool: Session | None = None,
    target: str = "/Samples/Data",
) -> list[str]:
    """Copy azhpc's U-SQL sample files into a lake under ``/Samples/Data`` (ADLA's layout).

    Parameters
    ----------
    lake : Lake, RootedFileSystem, str or Path, optional
        The lake: a :class:`~azhpc.lake.Lake`, its filesystem, or a local folder; default:
        the session's lake.
    pool : Session, optional
        The session whose lake to use when ``lake`` is not given (default: the default one).
    target : str
        The lake folder to copy into.

    Returns
    -------
    list of str
        The lake paths written (``/Samples/Data/SearchLog.tsv``, ``/Samples/Data/Tweets/...``).
    """

    fs = script_lake(lake, pool)
    written = []
    for source in sorted(SAMPLES.rglob("*")):
        if not source.is_file():
            continue
        path = f"{target.rstrip('/')}/{source.relative_to(SAMPLES).as_posix()}"
        fs.pipe_file(path, source.read_bytes())
        written.append(path)
    return written

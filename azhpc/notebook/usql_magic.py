"""The ``%%usql`` cell magic: run the cell as a U-SQL script on the current session.

Flags are declared with IPython's :mod:`~IPython.core.magic_arguments`, so ``%%usql?``
prints them; nothing on the line is evaluated. The body is one call into
:func:`azhpc.usql.submit`: the magic waits for the job in short slices, prints each step as it
finishes (read from the job's plain counters), cancels the job on Ctrl-C, and on failure
raises the job's :class:`~azhpc.usql.UsqlError`, which IPython renders through its
``_render_traceback_`` as ``SCRIPT:LINE:COL: CODE: message``, the source line and a caret.
"""

from __future__ import annotations

import concurrent.futures
import sys
from typing import Any

from IPython.core.error import UsageError
from IPython.core.magic import Magics, cell_magic, magics_class
from IPython.core.magic_arguments import argument, magic_arguments, parse_argstring

import azhpc.usql as usql
from azhpc.usql.params import parse_params

__all__ = ["UsqlMagics", "run_cell"]

#: Seconds between looks at a running job.
POLL = 0.1


def _describe(stage: Any, total: int) -> str:
    parts = [f"[{stage.step_id}/{total}] {stage.kind:<7} {stage.label}"]
    if stage.groups is not None:
        parts.append(f"{stage.groups} groups")
    if stage.tasks_total:
        parts.append(f"{stage.tasks_total} tasks")
    if stage.rows is not None:
        parts.append(f"{stage.rows} rows")
    parts.append("FAILED" if stage.state == "failed" else f"{stage.seconds:.2f} s")
    return "  ".join(parts)


def run_cell(
    cell: str,
    *,
    show: list[str] | None = None,
    params: dict[str, object] | None = None,
    parallelism: int = 1,
    name: str = "cell.usql",
    quiet: bool = False,
    stream: Any = None,
) -> tuple[Any, dict[str, Any]]:
    """Run a cell's script as a job, printing steps as they end; return (job, shown rowsets).

    Raises
    ------
    UsqlError
        The job failed (or was cancelled).
    """

    out = stream or sys.stdout
    keep = [s if s.startswith("@") else f"@{s}" for s in show or []]
    job = usql.submit(cell, params=params, parallelism=parallelism, name=name, keep=keep)
    printed: set[int] = set()

    def report() -> None:
        stages = job.stages
        for stage in stages:
            if stage.state in ("done", "failed") and stage.step_id not in printed:
                printed.add(stage.step_id)
                if not quiet:
                    print(_describe(stage, len(stages)), file=out, flush=True)

    try:
        while not job.done():
            concurrent.futures.wait([job], timeout=POLL)
            report()
    except KeyboardInterrupt:
        job.cancel()
        job.wait()
        raise
    report()
    job.raise_for_errors()
    if not quiet:
        written = ", ".join(f"{path} ({rows} rows)" for path, rows in job.outputs.items())
        seconds = job.progress.elapsed
        print(
            f"{job.state.value}/{job.outcome.value} in {seconds:.2f} s"
            + (f"; wrote {written}" if written else ""),
            file=out,
            flush=True,
        )
    shown = {}
    try:
        for rowset in keep:
            shown[rowset] = job.rowset(rowset)
    finally:
        if job.execution is not None:
            job.execution.close()
    return job, shown


@magics_class
class UsqlMagics(Magics):
    """``%%usql``: U-SQL cells (``%load_ext azhpc`` registers it)."""

    @magic_arguments()
    @argument(
        "--show",
        action="append",
        default=[],
        metavar="@ROWSET",
        help="display this rowset as a DataFrame after the run (repeatable)",
    )
    @argument(
        "--param",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help=(
            'a job parameter (repeatable): a U-SQL literal (42, 1.5, true, "text", '
            'DateTime.Parse("2024-01-02")) or else the text itself; DECLARE EXTERNAL '
            "variables get the text converted to their declared type"
        ),
    )
    @argument(
        "--parallelism",
        type=int,
        default=1,
        metavar="N",
        help="REDUCE groups run as N tasks on the session (ADLA's AUs; 1: in this process)",
    )
    @argument(
        "--out",
        default="_usql",
        metavar="VAR",
        help="store the shown rowsets in VAR as {'@name': DataFrame} (default _usql); "
        "the job itself goes to VAR_job",
    )
    @argument("--name", default="cell.usql", help="the script name in error positions")
    @argument("--quiet", action="store_true", help="print nothing but the shown rowsets")
    @cell_magic
    def usql(self, line: str, cell: str) -> None:
        """Run the cell as a U-SQL script on the current session.

        Example::

            %%usql --show @result --param region=en-gb
            @result = SELECT ... ;
        """

        args = parse_argstring(self.usql, line)
        if args.parallelism < 1:
            raise UsageError("--parallelism takes a whole number >= 1")
        if not args.out.isidentifier():
            raise UsageError(f"--out takes a variable name, got {args.out!r}")
        try:
            params = parse_params(args.param, cell)
        except ValueError as error:
            raise UsageError(str(error)) from None
        job, shown = run_cell(
            cell,
            show=args.show,
            params=params,
            parallelism=args.parallelism,
            name=args.name,
            quiet=args.quiet,
        )
        self.shell.user_ns[args.out] = shown
        self.shell.user_ns[f"{args.out}_job"] = job
        if shown:
            from IPython.display import display

            for rowset, frame in shown.items():
                if len(shown) > 1 or not args.quiet:
                    print(f"{rowset}: {len(frame)} rows")
                display(frame)

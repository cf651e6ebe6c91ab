"""The ``%%azrun`` and ``%azrun`` magics: parse the flags, call :mod:`azhpc.notebook.azrun`.

Flags are declared with IPython's :mod:`~IPython.core.magic_arguments`, so ``%%azrun?``
prints them. Flag text is never evaluated, with one documented exception: the ``EXPR`` of
``--map NAME in EXPR``, evaluated in the notebook's namespace. ``--scatter DF`` and
``--pool VAR`` are variable names, looked up by name.
"""

from __future__ import annotations

import re
from typing import Any

from IPython.core.error import UsageError
from IPython.core.magic import Magics, cell_magic, line_magic, magics_class
from IPython.core.magic_arguments import argument, magic_arguments, parse_argstring

from azhpc.errors import ConfigError
from azhpc.notebook import azrun
from azhpc.session import Session

__all__ = ["AzrunMagics", "split_map_expression"]

_IDENTIFIER = r"[A-Za-z_][A-Za-z0-9_]*"
_MAP = re.compile(rf"(?:^|(?<=\s))--map\s+({_IDENTIFIER})\s+in\s+")
_SCATTER = re.compile(rf"^({_IDENTIFIER})(?::([1-9][0-9]*))?$")
_NAMES = re.compile(rf"^{_IDENTIFIER}(?:,{_IDENTIFIER})*$")
#: What stands for the expression of ``--map`` while the rest of the line is parsed.
_EXPR = "EXPR"


def running_cell_number(shell: Any) -> int | None:
    """The number of the cell being run (``In[N]``), as the notebook shows it.

    IPython numbers a cell before running it and has already moved ``execution_count`` on
    to the next number by then (IPython 9), so that is one too many; the cell's own input is
    already in the history, at index N. ``None`` when the shell keeps no history.
    """
    history = getattr(shell, "history_manager", None)
    inputs = getattr(history, "input_hist_raw", None)
    if inputs:
        return len(inputs) - 1
    return None


def split_map_expression(line: str) -> tuple[str, str | None]:
    """Take the ``EXPR`` of ``--map NAME in EXPR`` out of a magic's line.

    The expression runs to the end of the line or to the next flag (``--word`` after a
    space, outside brackets and strings), so it may contain spaces, commas and quotes.

    Returns
    -------
    tuple
        The line with the expression replaced by ``EXPR``, and the expression (``None``
        when there is no ``--map``).

    Examples
    --------
    >>> split_map_expression("--map x in range(0, 10) --out ys")
    ('--map x in EXPR --out ys', 'range(0, 10)')
    """
    match = _MAP.search(line)
    if match is None:
        return line, None
    start = end = match.end()
    depth, quote = 0, ""
    while end < len(line):
        char = line[end]
        if quote:
            if char == "\\":
                end += 1
            elif char == quote:
                quote = ""
        elif char in "'\"":
            quote = char
        elif char in "([{":
            depth += 1
        elif char in ")]}":
            depth -= 1
        elif (
            depth <= 0
            and line.startswith("--", end)
            and line[end - 1].isspace()
            and line[end + 2 : end + 3].isalpha()
        ):
            break
        end += 1
    expression = line[start:end].strip()
    if not expression:
        raise UsageError("--map NAME in EXPR: the expression is missing")
    return f"{line[:start]}{_EXPR} {line[end:]}".rstrip(), expression


def _names(flag: str, text: str | None) -> list[str]:
    if not text:
        return []
    text = text.replace(" ", "")
    if not _NAMES.match(text):
        raise UsageError(f"{flag} takes variable names separated by commas, got {text!r}")
    return text.split(",")


def _columns(text: str | None) -> list[str]:
    if not text:
        return []
    columns = []
    for part in text.split(","):
        part = part.strip()
        if len(part) >= 2 and part[0] == part[-1] and part[0] in "'\"":
            part = part[1:-1]
        columns.append(part)
    return columns


@magics_class
class AzrunMagics(Magics):
    """``%%azrun`` (run a cell on the pool) and ``%azrun`` (evaluate an expression there).

    One instance per shell; it keeps no state of its own beyond the shell.
    """

    def _ignored(self) -> list[str]:
        """IPython's own entries of the namespace (its ``open``, ``In``, ``get_ipython``...)."""
        user_ns, hidden = self.shell.user_ns, self.shell.user_ns_hidden
        return [name for name, value in hidden.items() if user_ns.get(name) is value]

    def _pool(self, name: str | None) -> Any:
        if name is None:
            return None

        if not re.fullmatch(_IDENTIFIER, name):
            raise UsageError(f"--pool takes the name of a Session variable, got {name!r}")
        if name not in self.shell.user_ns:
            raise UsageError(f"--pool {name}: there is no variable {name!r} in the notebook")
        pool = self.shell.user_ns[name]
        if not isinstance(pool, Session):
            raise UsageError(
                f"--pool {name}: {name} is a {type(pool).__name__}, not an azhpc Session "
                "(from azhpc.connect())"
            )
        return pool

    def _filename(self, source: str) -> str:
        return azrun.cell_filename(source, running_cell_number(self.shell))

    @magic_arguments("%azrun")  # usage reads "%%azrun"
    @argument(
        "--map",
        nargs=3,
        metavar=("NAME", "in", "EXPR"),
        help=(
            "Run the cell once per item of EXPR (evaluated in the notebook) with NAME bound "
            "to the item. The cell's last expression values are collected into a list, "
            "stored as --out VAR (default _) and returned."
        ),
    )
    @argument(
        "--scatter",
        metavar="DF[:N]",
        help=(
            "Run the cell once per partition of the DataFrame, Series or numpy array DF "
            "(a variable name), bound under the same name; N partitions (default: two per "
            "worker slot). The --out names are concatenated across partitions (pandas.concat, "
            "numpy.concatenate, else a list); without --out the last expression values are."
        ),
    )
    @argument(
        "--by",
        metavar="COL[,COL...]",
        help="With --scatter: partition by these columns, so that each group lands whole "
        "in one partition.",
    )
    @argument(
        "--out",
        metavar="VAR[,VAR...]",
        help=(
            "Plain cell: the variables to bring back (default: every name the cell assigns). "
            "--scatter: the variables to concatenate and bring back. --map: the variable for "
            "the list of values. --no-wait: the variable for the Job."
        ),
    )
    @argument(
        "--retries",
        type=int,
        default=0,
        metavar="N",
        help="Run a failing task up to N more times (default 0).",
    )
    @argument(
        "--no-wait",
        action="store_true",
        help=(
            "Do not wait: store the running Job in --out VAR (default _) and return it. "
            "job.result() is an AzrunResult: .value (the cell's value, or the list for --map, "
            "or the concatenated values for --scatter) and .variables (what would have come "
            "back into the notebook; the notebook is not updated)."
        ),
    )
    @argument(
        "--pool",
        metavar="VAR",
        help="Run on the Session in variable VAR (default: the current session).",
    )
    @argument(
        "--mpi",
        type=int,
        metavar="N",
        help=(
            "Run the cell as an mpi4py program with N ranks, one per node of the MPI pool "
            "given with --pool (an azhpc.Pool with mpi=True); rank 0's variables (or the "
            "--out names) and its last expression's value come back."
        ),
    )
    @cell_magic("azrun")
    def azrun_cell(self, line: str, cell: str) -> Any:
        """Run this cell on the azhpc pool, as if it ran here.

        The variables the cell reads are sent along (found from the cell's code; each must
        pickle), the names it assigns come back, what it prints is printed here, and the
        value of its last expression is the cell's value. A failing cell raises
        ``azhpc.TaskError`` showing the remote traceback.

        Examples::

            %%azrun
            total = big.groupby("k").x.sum()

            %%azrun --map n in range(10) --out squares
            n * n

            %%azrun --scatter df:8 --by user --out result
            result = df.groupby("user").x.transform("mean")
        """
        __tracebackhide__ = True  # IPython: show the error, not the magic
        if not cell.strip():
            raise UsageError("%%azrun needs a cell to run")
        parsed, expression = split_map_expression(line)
        args = parse_argstring(self.azrun_cell, parsed)
        if args.map is not None and args.scatter is not None:
            raise UsageError("--map and --scatter cannot be used together; choose one")
        if args.by and args.scatter is None:
            raise UsageError("--by applies to --scatter; add --scatter DF")
        options: dict[str, Any] = {
            "retries": args.retries,
            "pool": self._pool(args.pool),
            "filename": self._filename("\n" + cell),
            "ignore": self._ignored(),
        }
        if args.mpi is not None:
            options["mpi"] = args.mpi
        out = _names("--out", args.out)
        if args.no_wait:
            if len(out) > 1:
                raise UsageError("with --no-wait, --out names one variable: the Job's")
            job_variable, out = (out[0] if out else "_"), []
        else:
            job_variable = "_"
        if args.map is not None:
            name, keyword, _ = args.map
            if keyword != "in" or expression is None:
                raise UsageError("--map takes NAME in EXPR, as in: --map x in range(10)")
            if len(out) > 1:
                raise UsageError("with --map, --out names one variable: the list's")
            options.update(map_name=name, items=self.shell.ev(expression))
            options["store"] = None if args.no_wait else (out[0] if out else "_")
        elif args.scatter is not None:
            match = _SCATTER.match(args.scatter.strip())
            if match is None:
                raise UsageError(
                    f"--scatter takes DF or DF:N (a variable name, N partitions), "
                    f"got {args.scatter!r}"
                )
            options.update(
                scatter=match.group(1),
                partitions=int(match.group(2)) if match.group(2) else None,
                by=_columns(args.by),
                out=out,
            )
        else:
            options["out"] = out
        # One blank line stands for the "%%azrun" line, so that line numbers in remote
        # tracebacks are the ones the notebook shows.
        try:
            return azrun.run_cell(
                "\n" + cell,
                self.shell.user_ns,
                wait=not args.no_wait,
                job_variable=job_variable,
                push=self.shell.push,
                **options,
            )
        except ConfigError as error:  # a flag does not fit the cell or the data: nothing ran
            raise UsageError(str(error)) from None
        except SyntaxError as error:  # the cell's own line and caret, not the parser's frames
            raise error.with_traceback(None) from None

    @line_magic("azrun")
    def azrun_line(self, line: str) -> Any:
        """Evaluate one Python expression on the azhpc pool and return its value.

        The variables it reads are sent along, as for ``%%azrun``. Example::

            total = %azrun sum(x * x for x in data)
        """
        __tracebackhide__ = True  # IPython: show the error, not the magic
        if not line.strip():
            raise UsageError("%azrun needs an expression, as in: %azrun sum(range(10))")
        try:
            return azrun.run_expression(
                line,
                self.shell.user_ns,
                filename=self._filename(line),
                ignore=self._ignored(),
            )
        except SyntaxError as error:
            raise error.with_traceback(None) from None

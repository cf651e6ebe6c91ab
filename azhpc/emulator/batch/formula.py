"""The Batch autoscale formula language: tokens with line and column, a parser, and the
checks Batch makes before it runs a formula.

The rules come from learn.microsoft.com, "Create a formula to automatically scale compute nodes
in a Batch pool" (``articles/batch/batch-automatic-scaling.md``), called *the formula page*
below, and from "Batch Status and Error Codes" (*the error page*):

- A formula is statements ``name = expression`` separated by ``;`` (the last may omit it), with
  line breaks and ``//`` comments to the end of the line; at most 8 KB and 100 statements.
  Service variables start with ``$``; for user variables the ``$`` is optional.
- Expressions: numbers, strings, variables, ``TimeInterval_*``, the operators of the page's
  table (``+ - * /``, comparisons, ``&& ||``, unary ``- !``), ``c ? a : b``, the page's
  functions, the methods of sampled variables (``$PendingTasks.GetSample(...)``) and the
  members of a timestamp (``.hour``, ``.weekday``, ...).
- A formula that does not parse is a 400 ``AutoScalingFormulaSyntaxError`` naming the line and
  column; one over 8 KB is ``AutoScalingFormulaTooLong`` (the error page). Unknown functions,
  assigning a read-only service variable and reading a variable no earlier statement set are
  refused the same way (the emulator's strict reading: the page defines no such formulas).

Evaluation is ``autoscale.py``.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Any

from azhpc.emulator.batch.model import ApiError

__all__ = ["DEALLOCATION_OPTIONS", "Expr", "Formula", "Statement", "parse", "syntax_error"]

#: The formula page: "The formula string cannot exceed 8 KB, can include up to 100 statements".
MAX_FORMULA_CHARS = 8192
MAX_STATEMENTS = 100
#: The formula page's ``$NodeDeallocationOption`` values (``requeue`` is the default).
DEALLOCATION_OPTIONS = ("requeue", "terminate", "taskcompletion", "retaineddata")

#: Sampled metrics the emulator records, and resource metrics it does not (no samples).
TASK_METRICS = ("$ActiveTasks", "$RunningTasks", "$PendingTasks", "$SucceededTasks", "$FailedTasks")
NODE_METRICS = ("$PreemptedNodeCount", "$SampleNodeCount")
RESOURCE_METRICS = (
    "$CPUPercent", "$WallClockSeconds", "$MemoryBytes", "$DiskBytes", "$DiskReadBytes",
    "$DiskWriteBytes", "$DiskReadOps", "$DiskWriteOps", "$NetworkInBytes", "$NetworkOutBytes",
)  # fmt: skip
METRICS = frozenset(TASK_METRICS + NODE_METRICS + RESOURCE_METRICS)
#: Read-only doubles, and the read-write targets (with the page's aliases).
READ_ONLY = frozenset({"$CurrentDedicatedNodes", "$CurrentLowPriorityNodes"}) | METRICS
TARGETS = {
    "$TargetDedicatedNodes": "$TargetDedicatedNodes",
    "$TargetDedicated": "$TargetDedicatedNodes",
    "$TargetLowPriorityNodes": "$TargetLowPriorityNodes",
    "$TargetLowPriority": "$TargetLowPriorityNodes",
}
INTERVALS = {
    "TimeInterval_Zero": 0.0, "TimeInterval_100ns": 1e-7, "TimeInterval_Microsecond": 1e-6,
    "TimeInterval_Millisecond": 1e-3, "TimeInterval_Second": 1.0, "TimeInterval_Minute": 60.0,
    "TimeInterval_Hour": 3600.0, "TimeInterval_Day": 86400.0, "TimeInterval_Week": 604800.0,
    "TimeInterval_Year": 31536000.0,
}  # fmt: skip
FUNCTIONS = frozenset({
    "avg", "len", "lg", "ln", "log", "max", "min", "norm", "percentile", "rand", "range", "std",
    "stop", "sum", "time", "val",
})  # fmt: skip
METHODS = frozenset(
    {"GetSample", "GetSamplePercent", "GetSamplePeriod", "Count", "HistoryBeginTime"}
)
TIMESTAMP_MEMBERS = ("year", "month", "day", "weekday", "hour", "minute", "second")


def syntax_error(line: int, col: int, message: str) -> ApiError:
    """The 400 ``AutoScalingFormulaSyntaxError`` (the error page), naming the position."""
    return ApiError(
        400,
        "AutoScalingFormulaSyntaxError",
        f"The specified auto-scaling formula has a syntax error: Line {line}, Col {col}: {message}",
    )


# -- the language -------------------------------------------------------------------------------

_TOKEN = re.compile(
    r"(?P<space>[ \t\r\n]+)|(?P<comment>//[^\n]*)"
    r"|(?P<number>(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)"
    r"|(?P<name>\$?[A-Za-z_][A-Za-z0-9_]*)|(?P<string>\"[^\"\n]*\")"
    r"|(?P<op>&&|\|\||<=|>=|==|!=|[-+*/()<>!?:;,.=])"
)


@dataclasses.dataclass(frozen=True)
class Token:
    kind: str
    text: str
    line: int
    col: int


def tokens(text: str) -> list[Token]:
    """Cut formula text into tokens with their line and column (comments and spaces dropped)."""
    out: list[Token] = []
    line, line_start, at = 1, 0, 0
    while at < len(text):
        match = _TOKEN.match(text, at)
        col = at - line_start + 1
        if match is None:
            raise syntax_error(line, col, f"unexpected character {text[at]!r}")
        kind = match.lastgroup or ""
        if kind not in ("space", "comment"):
            out.append(Token(kind, match.group(), line, col))
        for index in range(at, match.end()):
            if text[index] == "\n":
                line, line_start = line + 1, index + 1
        at = match.end()
    out.append(Token("end", "", line, at - line_start + 1))
    return out


@dataclasses.dataclass(frozen=True)
class Expr:
    """An expression: ``kind`` (number, string, name, unary, binary, ternary, call, method,
    member), its text (operator or name), its operands, and its position."""

    kind: str
    text: str
    args: tuple[Any, ...]
    line: int
    col: int


@dataclasses.dataclass(frozen=True)
class Statement:
    name: str
    expr: Expr
    line: int
    col: int


@dataclasses.dataclass(frozen=True)
class Formula:
    """A parsed formula: its statements, in order."""

    statements: tuple[Statement, ...]


class _Parser:
    def __init__(self, text: str) -> None:
        self.tokens = tokens(text)
        self.at = 0

    def peek(self, *texts: str) -> bool:
        token = self.tokens[self.at]
        return token.kind == "op" and token.text in texts

    def take(self) -> Token:
        token = self.tokens[self.at]
        self.at += 1
        return token

    def expect(self, text: str) -> Token:
        token = self.take()
        if token.kind != "op" or token.text != text:
            raise syntax_error(token.line, token.col, f"expected {text!r}, got {token.text!r}")
        return token

    def formula(self) -> Formula:
        statements: list[Statement] = []
        while self.tokens[self.at].kind != "end":
            if self.peek(";"):
                self.take()
                continue
            statements.append(self.statement())
            if self.tokens[self.at].kind != "end":
                self.expect(";")
        return Formula(tuple(statements))

    def statement(self) -> Statement:
        name = self.take()
        if name.kind != "name":
            raise syntax_error(name.line, name.col, f"expected a variable, got {name.text!r}")
        self.expect("=")
        return Statement(name.text, self.expression(), name.line, name.col)

    def expression(self) -> Expr:
        condition = self.binary(0)
        if not self.peek("?"):
            return condition
        token = self.take()
        yes = self.expression()
        self.expect(":")
        no = self.expression()
        return Expr("ternary", "?", (condition, yes, no), token.line, token.col)

    _LEVELS = (("||",), ("&&",), ("==", "!=", "<", "<=", ">", ">="), ("+", "-"), ("*", "/"))

    def binary(self, level: int) -> Expr:
        if level == len(self._LEVELS):
            return self.unary()
        left = self.binary(level + 1)
        while self.peek(*self._LEVELS[level]):
            token = self.take()
            right = self.binary(level + 1)
            left = Expr("binary", token.text, (left, right), token.line, token.col)
        return left

    def unary(self) -> Expr:
        if self.peek("-", "!"):
            token = self.take()
            return Expr("unary", token.text, (self.unary(),), token.line, token.col)
        node = self.primary()
        while self.peek("."):
            self.take()
            name = self.take()
            if name.kind != "name":
                raise syntax_error(
                    name.line, name.col, f"expected a name after '.', got {name.text!r}"
                )
            if self.peek("("):
                if name.text not in METHODS:
                    raise syntax_error(name.line, name.col, f"unknown method {name.text!r}")
                node = Expr("method", name.text, (node, *self.arguments()), name.line, name.col)
            elif name.text in TIMESTAMP_MEMBERS:
                node = Expr("member", name.text, (node,), name.line, name.col)
            else:
                raise syntax_error(name.line, name.col, f"unknown member {name.text!r}")
        return node

    def arguments(self) -> tuple[Expr, ...]:
        self.expect("(")
        args: list[Expr] = []
        if not self.peek(")"):
            args.append(self.expression())
            while self.peek(","):
                self.take()
                args.append(self.expression())
        self.expect(")")
        return tuple(args)

    def primary(self) -> Expr:
        token = self.take()
        if token.kind == "number":
            return Expr("number", token.text, (float(token.text),), token.line, token.col)
        if token.kind == "string":
            return Expr("string", token.text, (token.text[1:-1],), token.line, token.col)
        if token.kind == "name":
            if self.peek("("):
                if token.text not in FUNCTIONS:
                    raise syntax_error(token.line, token.col, f"unknown function {token.text!r}")
                return Expr("call", token.text, self.arguments(), token.line, token.col)
            return Expr("name", token.text, (), token.line, token.col)
        if token.kind == "op" and token.text == "(":
            inner = self.expression()
            self.expect(")")
            return inner
        what = token.text or "the end of the formula"
        raise syntax_error(token.line, token.col, f"unexpected {what!r}")


def parse(text: str) -> Formula:
    """Parse and check a formula.

    Raises
    ------
    ApiError
        400 ``AutoScalingFormulaTooLong`` or ``AutoScalingFormulaSyntaxError`` (with line and
        column): bad syntax, unknown functions, assigning a read-only variable, or reading a
        user variable before any statement sets it.
    """
    if len(text) > MAX_FORMULA_CHARS:
        raise ApiError(
            400,
            "AutoScalingFormulaTooLong",
            f"The specified auto-scaling formula exceeds lengths limit ({MAX_FORMULA_CHARS}).",
        )
    formula = _Parser(text).formula()
    if len(formula.statements) > MAX_STATEMENTS:
        extra = formula.statements[MAX_STATEMENTS]
        raise syntax_error(extra.line, extra.col, f"more than {MAX_STATEMENTS} statements")
    assigned: set[str] = set()
    for statement in formula.statements:
        if statement.name in READ_ONLY or statement.name in INTERVALS:
            raise syntax_error(statement.line, statement.col, f"{statement.name} is read-only")
        _check_names(statement.expr, assigned)
        assigned.add(statement.name)
    return formula


def _check_names(node: Expr, assigned: set[str]) -> None:
    if node.kind == "name":
        known = (
            node.text in assigned or node.text in READ_ONLY or node.text in TARGETS
            or node.text in INTERVALS or node.text == "$NodeDeallocationOption"
            or node.text in DEALLOCATION_OPTIONS
        )  # fmt: skip
        if not known:
            raise syntax_error(node.line, node.col, f"undefined variable {node.text!r}")
        return
    for arg in node.args:
        if isinstance(arg, Expr):
            _check_names(arg, assigned)

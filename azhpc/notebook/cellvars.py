"""Which variables a cell reads from the notebook, and which it assigns: from its syntax tree.

``%%azrun`` ships to the workers only the variables a cell needs: the names it reads before
it has surely assigned them (its *free* names), found by walking the cell's AST in execution
order. Reads inside nested functions, lambdas, comprehensions and class bodies count when they
refer to a notebook-level name (not a parameter or a name bound inside), as if they happened
where the function is defined. Assignments under ``if``/``for``/``while``/``try`` only count as
"surely assigned" when every branch makes them, so a conditionally assigned name that the cell
reads afterwards is still shipped.

The names the cell assigns at top level (or through ``global``) are what comes back to the
notebook afterwards.

Examples
--------
>>> names = analyze_cell("y = x + 1\\nz = [y * i for i in range(n)]\\nz")
>>> names.reads
('x', 'n')
>>> names.assigns
('y', 'z')
>>> names.ends_with_expression
True
"""

from __future__ import annotations

import ast
import builtins
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

__all__ = ["CellNames", "analyze_cell", "analyze_expression"]

_BUILTINS = frozenset(dir(builtins))


@dataclass(frozen=True)
class CellNames:
    """What a cell reads and assigns.

    Attributes
    ----------
    reads
        Free names, in order of first read: read before the cell surely assigned them,
        builtins excluded.
    builtins_read
        Builtin names the cell reads as free names (a notebook variable of the same name
        shadows the builtin, so it must then be shipped).
    assigns
        Names the cell binds in the notebook's namespace (top level or ``global``), in order
        of first assignment.
    ends_with_expression
        True when the cell's last statement is an expression (its value is the cell's value).
    """

    reads: tuple[str, ...]
    builtins_read: tuple[str, ...]
    assigns: tuple[str, ...]
    ends_with_expression: bool

    @property
    def free(self) -> tuple[str, ...]:
        """Every free name, builtins included, in order of first read."""
        return self.reads + tuple(n for n in self.builtins_read if n not in self.reads)


def analyze_cell(source: str, filename: str = "<cell>") -> CellNames:
    """Find the free names a cell reads and the names it assigns.

    Parameters
    ----------
    source
        The cell's Python source.
    filename
        Used in the ``SyntaxError`` when the source does not parse.

    Returns
    -------
    CellNames

    Raises
    ------
    SyntaxError
        The source is not valid Python.
    """
    tree = ast.parse(source, filename=filename, mode="exec")
    return _analyze(tree.body, ends=bool(tree.body) and isinstance(tree.body[-1], ast.Expr))


def analyze_expression(source: str, filename: str = "<expression>") -> CellNames:
    """Like :func:`analyze_cell`, for one expression (``%azrun EXPR``).

    Raises
    ------
    SyntaxError
        The source is not one valid Python expression.
    """
    tree = ast.parse(source.strip(), filename=filename, mode="eval")
    return _analyze([ast.Expr(tree.body)], ends=True)


def _analyze(body: list[ast.stmt], *, ends: bool) -> CellNames:
    scope = _TopScope()
    scope.block(body)
    free = list(dict.fromkeys(scope.free))
    return CellNames(
        reads=tuple(n for n in free if n not in _BUILTINS),
        builtins_read=tuple(n for n in free if n in _BUILTINS),
        assigns=tuple(dict.fromkeys(scope.assigned)),
        ends_with_expression=ends,
    )


# -- the walk --------------------------------------------------------------------------------


def _target_names(node: ast.AST) -> Iterator[str]:
    """Names bound by an assignment target (``a``, ``a, (b, *c)``); not ``a.x`` or ``a[i]``."""
    if isinstance(node, ast.Name):
        yield node.id
    elif isinstance(node, ast.Tuple | ast.List):
        for element in node.elts:
            yield from _target_names(element)
    elif isinstance(node, ast.Starred):
        yield from _target_names(node.value)


def _pattern_names(pattern: ast.pattern) -> Iterator[str]:
    """Names a ``match`` pattern captures."""
    for node in ast.walk(pattern):
        if isinstance(node, ast.MatchAs | ast.MatchStar) and node.name:
            yield node.name
        elif isinstance(node, ast.MatchMapping) and node.rest:
            yield node.rest


def _function_locals(node: ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda) -> set[str]:
    """Names local to a function: its parameters and what its body binds (not global ones)."""
    args = node.args
    names = {a.arg for a in (*args.posonlyargs, *args.args, *args.kwonlyargs)}
    names |= {a.arg for a in (args.vararg, args.kwarg) if a is not None}
    if isinstance(node, ast.Lambda):
        return names
    declared: set[str] = set()
    for stmt in node.body:
        names |= _bound_in(stmt, declared)
    return names - declared


def _bound_in(node: ast.AST, declared: set[str]) -> set[str]:
    """Names bound by the statements of one scope (nested scopes not entered).

    ``global`` declarations found on the way are added to ``declared``; ``nonlocal`` names
    count as bound (they belong to an enclosing function, never to the notebook).
    """
    names: set[str] = set()
    stack = [node]
    while stack:
        current = stack.pop()
        if isinstance(current, ast.Global):
            declared.update(current.names)
            continue
        if isinstance(current, ast.Nonlocal):  # bound in an enclosing function: stays hidden
            names.update(current.names)
            continue
        if isinstance(current, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names.add(current.name)
            # decorators, defaults and bases run in this scope; their walrus targets bind here
            stack.extend(current.decorator_list)
            if isinstance(current, ast.ClassDef):
                stack.extend(current.bases)
            else:
                stack.extend(current.args.defaults)
                stack.extend(d for d in current.args.kw_defaults if d is not None)
            continue
        if isinstance(current, ast.Lambda):
            stack.extend(current.args.defaults)
            continue
        if isinstance(current, ast.ListComp | ast.SetComp | ast.DictComp | ast.GeneratorExp):
            # only walrus targets escape a comprehension
            for sub in ast.walk(current):
                if isinstance(sub, ast.NamedExpr):
                    names.update(_target_names(sub.target))
            continue
        if isinstance(current, ast.Name) and isinstance(current.ctx, ast.Store | ast.Del):
            names.add(current.id)
        elif isinstance(current, ast.Import | ast.ImportFrom):
            for alias in current.names:
                if alias.name != "*":
                    names.add(alias.asname or alias.name.partition(".")[0])
        elif isinstance(current, ast.ExceptHandler) and current.name:
            names.add(current.name)
        elif isinstance(current, ast.pattern):
            names.update(_pattern_names(current))
            continue
        stack.extend(ast.iter_child_nodes(current))
    return names


class _Scope:
    """Walks one scope in execution order; reports notebook-level reads to ``top``."""

    def __init__(self, top: _TopScope | None, hidden: frozenset[str]) -> None:
        self.top = top if top is not None else self  # type: ignore[assignment]
        #: Names that are not notebook-level here (locals of this and enclosing functions).
        self.hidden = hidden

    # reading --------------------------------------------------------------------------------

    def read(self, name: str) -> None:
        if name not in self.hidden:
            self.top.read_global(name)

    def bind(self, names: Iterable[str]) -> None:
        """Names bound in this scope; only the top scope and ``global`` names matter."""

    def expr(self, node: ast.AST | None) -> None:
        """Visit an expression (or any node) in this scope."""
        if node is None:
            return
        if isinstance(node, ast.Name):
            if isinstance(node.ctx, ast.Load):
                self.read(node.id)
            else:
                self.bind([node.id])
        elif isinstance(node, ast.NamedExpr):
            self.expr(node.value)
            self.bind(_target_names(node.target))
        elif isinstance(node, ast.Lambda):
            self._defaults(node.args)
            self._function(node, [node.body])
        elif isinstance(node, ast.ListComp | ast.SetComp | ast.GeneratorExp | ast.DictComp):
            self._comprehension(node)
        else:
            for child in ast.iter_child_nodes(node):
                self.expr(child)

    def _defaults(self, args: ast.arguments) -> None:
        for default in (*args.defaults, *args.kw_defaults):
            self.expr(default)

    def _annotations(self, args: ast.arguments) -> None:
        for arg in (*args.posonlyargs, *args.args, *args.kwonlyargs, args.vararg, args.kwarg):
            if arg is not None:
                self.expr(arg.annotation)

    def _function(
        self, node: ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda, body: list[ast.AST]
    ) -> None:
        local = _function_locals(node)
        declared: set[str] = set()
        if not isinstance(node, ast.Lambda):
            for stmt in node.body:
                _bound_in(stmt, declared)
        inner = _Scope(self.top, frozenset((self.hidden | local) - declared))
        if declared:
            # ``global x`` in a function: assignments to x rebind the notebook's x
            self.top.note_global_assignments(node, declared)
        for stmt in body:
            inner.stmt_or_expr(stmt)

    def _comprehension(
        self, node: ast.ListComp | ast.SetComp | ast.GeneratorExp | ast.DictComp
    ) -> None:
        generators = node.generators
        # the first iterable is evaluated in the enclosing scope
        self.expr(generators[0].iter)
        bound = {name for g in generators for name in _target_names(g.target)}
        inner = _ComprehensionScope(self, frozenset(self.hidden | bound))
        for index, generator in enumerate(generators):
            if index:
                inner.expr(generator.iter)
            for condition in generator.ifs:
                inner.expr(condition)
        if isinstance(node, ast.DictComp):
            inner.expr(node.key)
            inner.expr(node.value)
        else:
            inner.expr(node.elt)

    def stmt_or_expr(self, node: ast.AST) -> None:
        if isinstance(node, ast.stmt):
            self.stmt(node)
        else:
            self.expr(node)

    # statements -----------------------------------------------------------------------------

    def block(self, body: list[ast.stmt]) -> None:
        for stmt in body:
            self.stmt(stmt)

    def branch(self, body: list[ast.stmt]) -> set[str]:
        """Visit a block that may not run; return what it binds (for the caller to merge)."""
        self.block(body)
        return set()

    def stmt(self, node: ast.stmt) -> None:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            for decorator in node.decorator_list:
                self.expr(decorator)
            self._defaults(node.args)
            self._annotations(node.args)
            self.expr(node.returns)
            self._function(node, list(node.body))
            self.bind([node.name])
        elif isinstance(node, ast.ClassDef):
            for child in (*node.decorator_list, *node.bases, *node.keywords):
                self.expr(child)
            # a class body runs in its own namespace; methods do not see it
            body = _ClassScope(self.top, self.hidden)
            body.block(node.body)
            self.bind([node.name])
        elif isinstance(node, ast.Assign):
            self.expr(node.value)
            for target in node.targets:
                self._target(target)
        elif isinstance(node, ast.AugAssign):
            # ``x += 1`` reads x first
            if isinstance(node.target, ast.Name):
                self.read(node.target.id)
            self.expr(node.value)
            self._target(node.target)
        elif isinstance(node, ast.AnnAssign):
            self.expr(node.value)
            self.expr(node.annotation)
            # ``x: int`` alone binds nothing; ``a.x: int`` still reads a
            if node.value is not None or not isinstance(node.target, ast.Name):
                self._target(node.target)
        elif isinstance(node, ast.Import | ast.ImportFrom):
            self.bind(
                alias.asname or alias.name.partition(".")[0]
                for alias in node.names
                if alias.name != "*"
            )
        elif isinstance(node, ast.If):
            self.expr(node.test)
            self.merge(self.branch(node.body) & self.branch(node.orelse))
        elif isinstance(node, ast.For | ast.AsyncFor):
            self.expr(node.iter)

            def loop_body(loop: ast.For | ast.AsyncFor = node) -> None:
                self._target(loop.target)
                self.block(loop.body)

            self.maybe(loop_body)
            self.maybe(lambda: self.block(node.orelse))
        elif isinstance(node, ast.While):
            self.expr(node.test)
            self.maybe(lambda: self.block(node.body))
            self.maybe(lambda: self.block(node.orelse))
        elif isinstance(node, ast.With | ast.AsyncWith):
            for item in node.items:
                self.expr(item.context_expr)
                if item.optional_vars is not None:
                    self._target(item.optional_vars)
            self.block(node.body)
        elif isinstance(node, ast.Try | ast.TryStar):
            self._try(node)
        elif isinstance(node, ast.Match):
            self.expr(node.subject)
            for case in node.cases:

                def arm(case: ast.match_case = case) -> None:
                    self.expr(case.pattern)  # values compared against are reads
                    self.bind(_pattern_names(case.pattern))
                    self.expr(case.guard)
                    self.block(case.body)

                self.maybe(arm)
        elif isinstance(node, ast.Delete):
            for target in node.targets:
                if not isinstance(target, ast.Name):
                    self.expr(target)
        elif isinstance(node, ast.Global | ast.Nonlocal):
            pass
        else:  # Expr, Return, Raise, Assert, Pass, Break, Continue, ...
            self.expr(node)

    def _try(self, node: ast.Try | ast.TryStar) -> None:
        before = self.snapshot()
        self.block(node.body)
        after_body = self.snapshot() - before
        self.restore(before)
        surely = after_body
        for handler in node.handlers:
            self.expr(handler.type)
            if handler.name:
                self.bind([handler.name])
            self.block(handler.body)
            surely &= self.snapshot() - before
            self.restore(before)
        if not node.handlers:
            surely = set()
        self.merge(surely)
        self.maybe(lambda: self.block(node.orelse))
        self.block(node.finalbody)

    def _target(self, node: ast.AST) -> None:
        """An assignment target: bind its names, read what subscripts/attributes use."""
        if isinstance(node, ast.Name):
            self.bind([node.id])
        elif isinstance(node, ast.Tuple | ast.List):
            for element in node.elts:
                self._target(element)
        elif isinstance(node, ast.Starred):
            self._target(node.value)
        else:  # a.x = ..., a[i] = ...: reads a (and i)
            self.expr(node)

    # flow: only the top scope tracks what is surely bound ------------------------------------

    def snapshot(self) -> set[str]:
        return set()

    def restore(self, names: set[str]) -> None:
        """Forget bindings made since ``names`` was taken."""

    def merge(self, names: set[str]) -> None:
        """Add names that every path bound."""

    def maybe(self, visit: object) -> None:
        """Visit code that may not run: what it binds is not surely bound afterwards."""
        before = self.snapshot()
        visit()  # type: ignore[operator]
        self.restore(before)


class _TopScope(_Scope):
    """The notebook level: tracks surely-bound names; collects free reads and assignments."""

    def __init__(self) -> None:
        super().__init__(None, frozenset())
        self.top = self
        self.bound: set[str] = set()
        self.free: list[str] = []
        self.assigned: list[str] = []

    def read_global(self, name: str) -> None:
        if name not in self.bound:
            self.free.append(name)

    def bind(self, names: Iterable[str]) -> None:
        for name in names:
            self.bound.add(name)
            self.assigned.append(name)

    def note_global_assignments(self, node: ast.AST, names: set[str]) -> None:
        inner: set[str] = set()
        body = node.body if isinstance(node.body, list) else []
        for stmt in body:
            inner |= _bound_in(stmt, set())
        self.assigned.extend(sorted(inner & names))

    def snapshot(self) -> set[str]:
        return set(self.bound)

    def restore(self, names: set[str]) -> None:
        self.bound = set(names)

    def merge(self, names: set[str]) -> None:
        self.bound |= names

    def branch(self, body: list[ast.stmt]) -> set[str]:
        before = self.snapshot()
        self.block(body)
        made = self.bound - before
        self.restore(before)
        return made


class _ClassScope(_Scope):
    """A class body: names it binds shadow notebook names for the rest of the body only."""

    def __init__(self, top: _TopScope, hidden: frozenset[str]) -> None:
        super().__init__(top, hidden)
        self.local: set[str] = set()

    def read(self, name: str) -> None:
        if name not in self.local:
            super().read(name)

    def bind(self, names: Iterable[str]) -> None:
        self.local.update(names)


class _ComprehensionScope(_Scope):
    """A comprehension: its targets are local; a walrus binds in the enclosing scope."""

    def __init__(self, outer: _Scope, hidden: frozenset[str]) -> None:
        super().__init__(outer.top, hidden)
        self.outer = outer

    def expr(self, node: ast.AST | None) -> None:
        if isinstance(node, ast.NamedExpr):
            self.expr(node.value)
            self.outer.bind(_target_names(node.target))
            return
        super().expr(node)

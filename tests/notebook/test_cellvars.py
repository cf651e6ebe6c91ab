"""Free-variable analysis of cells: what a cell reads before assigning, and what it assigns."""

from __future__ import annotations

import pytest

from azhpc.notebook.cellvars import analyze_cell, analyze_expression


def test_analyze_cell_reads_before_assignment() -> None:
    names = analyze_cell("y = x + 1\nx = 2\nz = x + y")
    assert names.reads == ("x",)
    assert names.assigns == ("y", "x", "z")


def test_analyze_cell_excludes_builtins_but_reports_them() -> None:
    names = analyze_cell("print(len(data))")
    assert names.reads == ("data",)
    assert set(names.builtins_read) == {"print", "len"}


def test_analyze_cell_augmented_assignment_reads_first() -> None:
    names = analyze_cell("total += step\nfresh = 1\nfresh += 1")
    assert names.reads == ("total", "step")
    assert names.assigns == ("total", "fresh")


def test_analyze_cell_nested_function_reads_globals_not_locals() -> None:
    source = (
        "def f(a, b=default):\n"
        "    c = a + offset\n"
        "    return lambda d: c + d + scale\n"
        "result = f(1)(2)\n"
    )
    names = analyze_cell(source)
    assert names.reads == ("default", "offset", "scale")
    assert names.assigns == ("f", "result")


def test_analyze_cell_comprehension_targets_are_local() -> None:
    names = analyze_cell("out = [i * k for i in items if i > low]\n{j: m for j in other}")
    assert names.reads == ("items", "low", "k", "other", "m")  # execution order
    assert "i" not in names.assigns and "j" not in names.assigns


def test_analyze_cell_walrus_in_comprehension_binds_at_top() -> None:
    names = analyze_cell("[last := v for v in values]\nlast")
    assert names.reads == ("values",)
    assert "last" in names.assigns


def test_analyze_cell_conditional_assignment_is_still_read() -> None:
    names = analyze_cell("if flag:\n    a = 1\nelse:\n    a = 2\nif flag:\n    b = 1\na + b")
    assert names.reads == ("flag", "b")


def test_analyze_cell_loop_variable_may_not_be_bound() -> None:
    names = analyze_cell("for i in range(n):\n    acc = acc + i\nacc")
    assert names.reads == ("n", "acc")


def test_analyze_cell_global_statement_assigns_notebook_name() -> None:
    names = analyze_cell("def bump():\n    global counter\n    counter = counter + 1\nbump()")
    assert names.reads == ("counter",)
    assert set(names.assigns) == {"bump", "counter"}


def test_analyze_cell_class_body_names_do_not_reach_methods() -> None:
    names = analyze_cell("class K:\n    v = w\n    def m(self):\n        return v\n")
    assert names.reads == ("w", "v")
    assert names.assigns == ("K",)


def test_analyze_cell_imports_and_except_bind() -> None:
    names = analyze_cell(
        "import numpy as np, os.path\n"
        "try:\n    r = np.log(x)\nexcept ValueError as e:\n    r = e\nr"
    )
    assert names.reads == ("x",)
    assert names.assigns[:3] == ("np", "os", "r")


def test_analyze_cell_attribute_and_subscript_targets_read_the_object() -> None:
    names = analyze_cell("df['z'] = 1\nobj.attr = 2")
    assert names.reads == ("df", "obj")
    assert names.assigns == ()


def test_analyze_cell_last_expression() -> None:
    assert analyze_cell("x = 1\nx").ends_with_expression
    assert not analyze_cell("x = 1").ends_with_expression


def test_analyze_cell_syntax_error_names_the_cell() -> None:
    with pytest.raises(SyntaxError) as info:
        analyze_cell("x = (", filename="<azrun cell>")
    assert info.value.filename == "<azrun cell>"


def test_analyze_expression_generator_reads() -> None:
    names = analyze_expression("sum(v * w for v in data)")
    assert names.reads == ("data", "w")
    assert names.assigns == ()

"""azhpc's pickler: functions sent by value keep their source file names (cloudpickle >= 3.1.3
would name them ``<dynamic-code>``), so remote tracebacks show the file and the line."""

from __future__ import annotations

import linecache
import pickle
import subprocess
import sys
import textwrap
import traceback

import pytest

from azhpc.core.pickling import dumps


def make_nested():
    def outer(x):
        def inner(y):
            raise ValueError(f"inner got {y}")

        return inner(x)

    return outer


def test_dumps_keeps_the_file_name_of_code_and_of_code_nested_in_it():
    outer = pickle.loads(dumps(make_nested()))
    assert outer.__code__.co_filename == __file__
    nested = [c for c in outer.__code__.co_consts if hasattr(c, "co_filename")]
    assert [c.co_filename for c in nested] == [__file__]


def test_a_traceback_in_another_process_shows_the_source_line(tmp_path):
    payload = tmp_path / "fn.pickle"
    payload.write_bytes(dumps(make_nested()))
    run = textwrap.dedent(
        f"""
        import pickle, traceback
        fn = pickle.loads(open({str(payload)!r}, "rb").read())
        try:
            fn(3)
        except ValueError:
            traceback.print_exc()
        """
    )
    shown = subprocess.run(
        [sys.executable, "-c", run], capture_output=True, text=True, timeout=60
    ).stderr
    assert f'File "{__file__}"' in shown
    assert 'raise ValueError(f"inner got {y}")' in shown


def test_code_of_a_cell_keeps_the_cells_name_for_linecache():
    source = "def cell_fn():\n    return 1 / 0\n"
    name = "<azhpc-test-cell-1>"
    namespace: dict = {}
    exec(compile(source, name, "exec"), namespace)
    rebuilt = pickle.loads(dumps(namespace["cell_fn"]))
    assert rebuilt.__code__.co_filename == name
    linecache.cache[name] = (len(source), None, source.splitlines(True), name)
    try:
        with pytest.raises(ZeroDivisionError) as info:
            rebuilt()
        assert "return 1 / 0" in "".join(traceback.format_exception(info.value))
    finally:
        linecache.cache.pop(name, None)

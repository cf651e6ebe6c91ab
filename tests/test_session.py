"""connect(), default sessions, the debug backend, and what `import azhpc` costs."""

from __future__ import annotations

import json
import subprocess
import sys
import threading

import pytest

import azhpc


def test_connect_rejects_unknown_arguments_listing_valid_ones():
    with pytest.raises(azhpc.ConfigError) as info:
        azhpc.connect(wokers=2)
    message = str(info.value)
    assert "wokers" in message and "workers=None" in message and "slots=1" in message
    assert isinstance(info.value, ValueError)


def test_connect_rejects_unknown_profile_and_backend():
    with pytest.raises(azhpc.ConfigError, match="choose one of local, emulated, azure"):
        azhpc.connect("cloud")
    with pytest.raises(azhpc.ConfigError, match="unknown backend 'gpu'"):
        azhpc.connect(backend="gpu")
    with pytest.raises(azhpc.ConfigError, match="workers must be"):
        azhpc.connect(workers=0)


def test_azure_profile_without_batch_url_says_how_to_get_compute():
    with pytest.raises(azhpc.ConfigError, match=r"set batch_url \(.*AZHPC_BATCH_URL"):
        azhpc.connect("azure", account_name="someaccount")


def test_connect_makes_the_default_session_and_close_clears_it():
    with azhpc.connect(workers=1, progress=False) as first:
        assert azhpc.submit(abs, -1).result() == 1
        assert azhpc.session.current_session() is first
    assert first.closed
    assert "closed" in repr(first)
    # With no open default, the next call opens a fresh local one.
    fresh = azhpc.session.current_session()
    try:
        assert fresh is not first and not fresh.closed
    finally:
        fresh.close()


def test_pool_argument_must_be_a_session():
    with pytest.raises(azhpc.ConfigError, match="pool= takes an azhpc Session"):
        azhpc.map(abs, [1], pool="local")


def test_debug_backend_runs_tasks_in_the_calling_thread():
    caller = threading.get_ident()
    with azhpc.connect(backend="debug") as session:
        assert session.map(lambda _: threading.get_ident(), [1, 2]) == [caller, caller]
        assert session.backend.runs_in_caller


def test_session_repr_names_profile_and_backend():
    with azhpc.connect(workers=1, progress=False) as session:
        text = repr(session)
    assert "profile='local'" in text and "workers=1" in text


def test_import_is_light_and_imports_no_azure_sdk():
    code = (
        "import sys, time, json; t = time.perf_counter(); import azhpc; "
        "t = time.perf_counter() - t; heavy = sorted({m.split('.')[0] for m in sys.modules "
        "if m.split('.')[0] in ('azure', 'pandas', 'numpy', 'joblib', 'IPython', "
        "'ipywidgets', 'adlfs', 'duckdb')}); print(json.dumps([t, heavy]))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    seconds, heavy = json.loads(done.stdout)
    assert heavy == []
    assert seconds < 0.5  # generous: measured ~0.01 s; benchmarks/ has the real figure


def test_joblib_backend_is_registered_explicitly_and_lazily():
    code = (
        "import sys, azhpc\n"
        "assert 'joblib' not in sys.modules\n"
        "azhpc.register_joblib_backend()\n"
        "import joblib\n"
        "with joblib.parallel_config(backend='azhpc'):\n"
        "    print(joblib.Parallel()(joblib.delayed(abs)(-i) for i in range(3)))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.stdout.strip() == "[0, 1, 2]", done.stderr


def test_registered_backend_is_built_by_connect_through_its_factory():
    import sys

    from azhpc.backends import available_backends

    assert "threads" in available_backends()
    assert "threads_backend" not in sys.modules or sys.modules["threads_backend"].created >= 0
    with azhpc.connect(backend="threads", progress=False) as session:
        import threads_backend

        assert type(session.backend) is threads_backend.ThreadsBackend
        before = threads_backend.created
        assert session.map(abs, [-1, -2]) == [1, 2]
    with azhpc.connect(backend="threads", progress=False):
        assert threads_backend.created == before + 1


def test_register_backend_refuses_a_taken_name_and_a_bad_factory():
    from azhpc.backends import register_backend

    with pytest.raises(azhpc.ConfigError, match="already registered"):
        register_backend("local", "somewhere:else")
    with pytest.raises(azhpc.ConfigError, match="module:function"):
        register_backend("broken", "no_colon_here")
    with pytest.raises(azhpc.ConfigError, match="factory"):
        register_backend("broken", 42)
    with pytest.raises(azhpc.ConfigError, match=r"unknown backend 'nope'.*register_backend"):
        azhpc.connect(backend="nope")


def test_lake_and_usql_are_attributes_of_azhpc_and_stay_light(tmp_path):
    code = (
        "import sys, json, azhpc\n"
        "url = azhpc.lake.url('/x')\n"
        "azhpc.usql.run\n"
        "heavy = sorted({m.split('.')[0] for m in sys.modules} & "
        "{'azure', 'pandas', 'numpy', 'duckdb', 'pyarrow', 'IPython', 'ipywidgets', 'adlfs'})\n"
        "print(json.dumps([url, heavy]))\n"
    )
    env = {**__import__("os").environ, "AZHPC_LAKE_ROOT": str(tmp_path)}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert done.returncode == 0, done.stderr
    url, heavy = json.loads(done.stdout.strip().splitlines()[-1])
    assert url == str(tmp_path / "x")
    assert heavy == []


def test_settings_where_names_only_arguments_connect_takes(tmp_path, monkeypatch):
    """Every ``connect(x=...)`` an error message recommends is one ``connect()`` accepts (it
    used to recommend connect(batch_url=...), which connect() refuses)."""
    import inspect
    import re

    from azhpc import config

    monkeypatch.setenv("AZHPC_CONFIG", str(tmp_path / "none.toml"))
    settings = config.resolve_settings("azure", account_name="someaccount", environ={})
    accepted = set(inspect.signature(azhpc.connect).parameters)
    for setting in (*config.ENVIRONMENT, "credential", "batch_url", "blob_endpoint"):
        hint = settings.where(setting)
        for named in re.findall(r"connect\((\w+)=", hint):
            assert named in accepted, f"{setting}: {hint}"
    assert "connect(batch_url" not in settings.where("batch_url")
    assert "AZHPC_BATCH_URL" in settings.where("batch_url")
    assert settings.where("account_name").startswith("connect(account_name=...)")
    with pytest.raises(azhpc.ConfigError) as info:
        azhpc.connect("azure", account_name="someaccount")
    assert "connect(batch_url" not in str(info.value)


def test_pool_on_a_local_session_names_a_real_way_to_get_batch(local_session):
    with pytest.raises(azhpc.ConfigError, match="AZHPC_BATCH_URL") as info:
        azhpc.Pool("p", session=local_session)
    assert "batch_url=" not in str(info.value)

"""The import hook in this process: what it records, and that imports behave exactly as without it."""

from __future__ import annotations

import importlib
import sys
import threading
import traceback
from pathlib import Path

import pytest
from helpers import write

from otel_coldstart.record import imports, timeline
from otel_coldstart.record.timeline import ImportRecord


@pytest.fixture
def pkgdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.syspath_prepend(str(tmp_path))
    yield tmp_path
    for name in list(sys.modules):
        module = sys.modules[name]
        if str(tmp_path) in str(getattr(module, "__file__", "") or ""):
            del sys.modules[name]
    importlib.invalidate_caches()


@pytest.fixture
def recorder():
    """A fresh timeline with the hook installed; removed afterwards."""
    assert not imports.is_installed()
    timeline.state.timeline = None
    timeline.state.ready = False
    imports.install("test")
    try:
        yield timeline.current()
    finally:
        imports.uninstall()
        timeline.state.timeline = None
        timeline.state.ready = False


def records_by_name(tl: timeline.Timeline) -> dict[str, ImportRecord]:
    return {r.name: r for r in tl.imports}


def parent_name(record: ImportRecord) -> str | None:
    return record.parent.name if record.parent is not None else None


def test_nested_imports_are_recorded_with_their_parents(pkgdir, recorder):
    write(pkgdir / "app_a" / "__init__.py", "from app_a import b\n")
    write(pkgdir / "app_a" / "b.py", "import app_c\n")
    write(pkgdir / "app_c.py", "X = 1\n")

    import app_a  # noqa: F401

    got = records_by_name(recorder)
    assert parent_name(got["app_a"]) is None
    assert parent_name(got["app_a.b"]) == "app_a"
    assert parent_name(got["app_c"]) == "app_a.b"
    for name in ("app_a", "app_a.b", "app_c"):
        record = got[name]
        assert record.end >= record.start > 0
        assert record.error is None
        assert record.spec is sys.modules[name].__spec__
        assert record.file == sys.modules[name].__file__


def test_fromlist_submodules_import_module_and_dunder_import(pkgdir, recorder):
    write(pkgdir / "fl_pkg" / "__init__.py", "")
    write(pkgdir / "fl_pkg" / "sub.py", "")
    write(pkgdir / "fl_pkg" / "other.py", "")
    write(pkgdir / "dyn_mod.py", "")
    write(pkgdir / "dunder_mod.py", "")

    from fl_pkg import sub  # noqa: F401

    importlib.import_module("dyn_mod")
    __import__("dunder_mod")
    importlib.import_module("fl_pkg.other")

    got = records_by_name(recorder)
    # The fromlist submodule is imported after its package finished, at the importer's level:
    # the same place `python -X importtime` puts it.
    assert parent_name(got["fl_pkg.sub"]) is None
    assert got["fl_pkg.sub"].start > got["fl_pkg"].end
    assert got["dyn_mod"].via_import_module is True
    assert got["dunder_mod"].via_import_module is False
    assert got["fl_pkg.other"].via_import_module is True
    # Already-loaded modules are not imports: import_module of one records nothing.
    before = len(recorder.imports)
    importlib.import_module("dyn_mod")
    assert len(recorder.imports) == before


def _failure(statement: str) -> tuple[type, str, str]:
    try:
        exec(statement, {})
    except BaseException as exc:
        last = traceback.extract_tb(exc.__traceback__)[-1]
        return type(exc), str(exc), f"{Path(last.filename).name}:{last.lineno}"
    raise AssertionError("no exception")


def test_failing_imports_fail_exactly_as_without_the_hook(pkgdir):
    write(pkgdir / "raises_value.py", "X = 1\nraise ValueError('broken at import')\n")
    write(pkgdir / "imports_missing.py", "import definitely_missing_module_xyz\n")
    statements = [
        "import no_such_module_abc",
        "from json import no_such_name",
        "import raises_value",
        "import imports_missing",
        "import json.no_such_sub",
    ]
    plain = [_failure(s) for s in statements]
    for name in ("raises_value", "imports_missing"):
        sys.modules.pop(name, None)

    timeline.state.timeline = None
    timeline.state.ready = False
    imports.install("test")
    try:
        hooked = [_failure(s) for s in statements]
        tl = timeline.current()
        errors = {r.name: r.error for r in tl.imports if r.error is not None}
    finally:
        imports.uninstall()
        timeline.state.timeline = None

    assert hooked == plain
    assert errors["no_such_module_abc"] == ("ModuleNotFoundError", "No module named 'no_such_module_abc'")
    assert errors["raises_value"] == ("ValueError", "broken at import")
    assert errors["definitely_missing_module_xyz"][0] == "ModuleNotFoundError"
    # The fallback pattern keeps working.
    namespace: dict = {}
    exec("try:\n    import no_such_fast_json as j\nexcept ImportError:\n    import json as j\n", namespace)
    assert namespace["j"].__name__ == "json"


def test_circular_imports(pkgdir, recorder):
    write(pkgdir / "circ_a.py", "import circ_b\nA = 1\ndef f():\n    return circ_b.B\n")
    write(pkgdir / "circ_b.py", "import circ_a\nB = 2\n")

    import circ_a

    assert circ_a.f() == 2
    got = records_by_name(recorder)
    assert parent_name(got["circ_b"]) == "circ_a"
    assert [r.name for r in recorder.imports].count("circ_a") == 1


def test_imports_in_threads_nest_per_thread(pkgdir, recorder):
    write(pkgdir / "th_main.py", "import time\ntime.sleep(0.05)\nimport th_main_child\n")
    write(pkgdir / "th_main_child.py", "")
    write(pkgdir / "th_worker.py", "import time\ntime.sleep(0.05)\nimport th_worker_child\n")
    write(pkgdir / "th_worker_child.py", "")

    def worker():
        import th_worker  # noqa: F401

    thread = threading.Thread(target=worker, name="importer")
    thread.start()
    import th_main  # noqa: F401

    thread.join()
    got = records_by_name(recorder)
    assert parent_name(got["th_main_child"]) == "th_main"
    assert parent_name(got["th_worker_child"]) == "th_worker"
    assert parent_name(got["th_worker"]) is None
    assert got["th_worker"].thread == thread.ident
    assert recorder.thread_names[thread.ident] == "importer"


def test_reload_and_self_replacing_modules(pkgdir, recorder):
    write(pkgdir / "reloadable.py", "COUNT = 1\n")
    write(
        pkgdir / "replacer.py",
        "import sys, types\n"
        "class Replacement(types.SimpleNamespace):\n    pass\n"
        "sys.modules[__name__] = Replacement(value=42)\n",
    )
    import reloadable

    reloadable = importlib.reload(reloadable)
    assert reloadable.COUNT == 1
    import replacer

    assert replacer.value == 42
    got = records_by_name(recorder)
    # Replaced by an object that is no module: nothing of it is read, nothing of it is kept.
    assert got["replacer"].spec is None and got["replacer"].error is None


def test_pytest_assertion_rewriter_still_rewrites(pkgdir, recorder):
    # We run under pytest: its rewriting finder sits on sys.meta_path beside our wrapper.
    assert any(type(f).__name__ == "AssertionRewritingHook" for f in sys.meta_path)
    write(pkgdir / "test_rewritten_probe.py", "def check():\n    x = 1\n    assert x == 2\n")
    import test_rewritten_probe

    with pytest.raises(AssertionError) as info:
        test_rewritten_probe.check()
    assert "assert 1 == 2" in str(info.value)  # only a rewritten assert explains itself
    assert "test_rewritten_probe" in records_by_name(recorder)


def test_install_is_idempotent_and_uninstall_restores(recorder):
    original = imports._bootstrap._find_and_load.__wrapped__
    assert imports.is_installed()
    assert imports.install("again") is False
    imports.uninstall()
    assert imports._bootstrap._find_and_load is original
    imports.install("test")


class _Unprintable(Exception):
    def __str__(self) -> str:
        raise RuntimeError("no text")


def test_a_launch_step_that_raises_an_unprintable_exception_passes_it_on_untouched(recorder) -> None:
    from otel_coldstart.launch import launch_phases

    raised = _Unprintable()
    with pytest.raises(_Unprintable) as caught, launch_phases.step("configure", "configurator"):
        raise raised
    assert caught.value is raised
    (record,) = [r for r in recorder.records if r.name == "configure"]
    assert record.error == (f"{__name__}._Unprintable", f"<unprintable {__name__}._Unprintable>")

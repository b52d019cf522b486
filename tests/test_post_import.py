"""Post-import hooks: once, after the module is complete, with or without the import recorder."""

from __future__ import annotations

import importlib
import sys
import traceback
from pathlib import Path

import pytest
from helpers import write

from otel_coldstart.record import imports, post_import, timeline


@pytest.fixture
def pkgdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.syspath_prepend(str(tmp_path))
    yield tmp_path
    for name in list(sys.modules):
        if str(tmp_path) in str(getattr(sys.modules[name], "__file__", "") or ""):
            del sys.modules[name]
    importlib.invalidate_caches()
    post_import.hooks.clear()
    post_import.remove_dispatch()


@pytest.fixture(params=["recorder", "dispatch-only"])
def hook_mode(request):
    """Dispatch from the import recorder's wrapper, or (import instrumentor disabled) from our own."""
    assert not imports.is_installed()
    if request.param == "recorder":
        timeline.state.timeline = None
        timeline.state.ready = False
        imports.install("test")
    try:
        yield request.param
    finally:
        if request.param == "recorder":
            imports.uninstall()
            timeline.state.timeline = None
            timeline.state.ready = False


def test_runs_once_after_the_module_is_complete(pkgdir, hook_mode):
    write(pkgdir / "ph_app.py", "import ph_dep\nLAST = 'set at the end of the body'\n")
    write(pkgdir / "ph_dep.py", "X = 1\n")
    seen = []
    post_import.when_imported("ph_app", lambda m: seen.append((m.__name__, m.LAST)))
    post_import.when_imported("ph_dep", lambda m: seen.append((m.__name__, m.X)))
    assert seen == []

    import ph_app

    assert seen == [("ph_dep", 1), ("ph_app", "set at the end of the body")]
    importlib.reload(sys.modules["ph_app"])
    import ph_app  # noqa: F401, F811

    assert len(seen) == 2
    assert post_import.hooks == {}


def test_already_imported_runs_at_once(hook_mode):
    seen = []
    post_import.when_imported("json", seen.append)
    assert seen == [sys.modules["json"]]


def test_submodule_and_import_module(pkgdir, hook_mode):
    write(pkgdir / "ph_pkg" / "__init__.py", "")
    write(pkgdir / "ph_pkg" / "server.py", "class Server: pass\n")
    seen = []
    post_import.when_imported("ph_pkg.server", lambda m: seen.append(m.Server.__name__))
    importlib.import_module("ph_pkg.server")
    assert seen == ["Server"]


def test_failed_import_keeps_waiting_and_fails_as_without_us(pkgdir, hook_mode):
    write(pkgdir / "ph_bad.py", "raise RuntimeError('broken module')\n")
    seen = []
    post_import.when_imported("ph_bad", seen.append)
    with pytest.raises(RuntimeError) as info:
        import ph_bad
    files = [frame.filename for frame in traceback.extract_tb(info.value.__traceback__)]
    assert not any("otel_coldstart" in f for f in files), files
    assert seen == []
    assert "ph_bad" in post_import.hooks
    write(pkgdir / "ph_bad.py", "OK = True\n")
    importlib.invalidate_caches()
    sys.modules.pop("ph_bad", None)
    import ph_bad  # noqa: F401

    assert [m.OK for m in seen] == [True]


def test_a_failing_callback_never_breaks_the_import(pkgdir, hook_mode, caplog):
    write(pkgdir / "ph_ok.py", "VALUE = 7\n")

    def boom(module):
        raise ValueError("hook bug")

    post_import.when_imported("ph_ok", boom)
    import ph_ok

    assert ph_ok.VALUE == 7
    assert "post-import hook for ph_ok failed" in caplog.text


def test_registering_from_inside_the_module_waits_for_its_end(pkgdir, hook_mode):
    if hook_mode == "dispatch-only":
        post_import.ensure_dispatch()  # as lifecycle.arm does: the import below must go through it
    write(
        pkgdir / "ph_self.py",
        "from otel_coldstart.record import post_import\n"
        "SEEN = []\n"
        "post_import.when_imported('ph_self', lambda m: SEEN.append(m.DONE))\n"
        "DONE = True\n",
    )
    import ph_self

    assert ph_self.SEEN == [True]


def test_callback_imports_are_not_recorded(pkgdir):
    write(pkgdir / "ph_trigger.py", "")
    write(pkgdir / "ph_ours.py", "")
    timeline.state.timeline = None
    timeline.state.ready = False
    imports.install("test")
    try:
        post_import.when_imported("ph_trigger", lambda m: importlib.import_module("ph_ours"))
        import ph_trigger  # noqa: F401

        names = [r.name for r in timeline.current().imports]
        assert "ph_trigger" in names
        assert "ph_ours" not in names
        assert "ph_ours" in sys.modules
    finally:
        imports.uninstall()
        timeline.state.timeline = None
        timeline.state.ready = False


def test_dispatch_survives_the_recorder_coming_and_going(pkgdir):
    write(pkgdir / "ph_one.py", "")
    write(pkgdir / "ph_two.py", "")
    seen = []
    post_import.when_imported("ph_one", lambda m: seen.append(m.__name__))
    post_import.when_imported("ph_two", lambda m: seen.append(m.__name__))
    bootstrap = sys.modules["_frozen_importlib"]
    assert bootstrap._find_and_load is post_import._dispatching_find_and_load
    timeline.state.timeline = None
    timeline.state.ready = False
    imports.install("test")  # replaces the dispatch-only wrapper: one dispatcher, never two
    try:
        assert imports.is_installed()
        import ph_one  # noqa: F401
    finally:
        imports.uninstall()
        timeline.state.timeline = None
        timeline.state.ready = False
    assert bootstrap._find_and_load is post_import._dispatching_find_and_load
    import ph_two  # noqa: F401

    assert seen == ["ph_one", "ph_two"]

"""LazyLoader and lazy module proxies; and the library's own import cost (no OpenTelemetry inside)."""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from helpers import write

from otel_coldstart.library.lazy import LazyLoader, LazyModule, lazy_module


@pytest.fixture
def pkgdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.syspath_prepend(str(tmp_path))
    yield tmp_path
    for name in list(sys.modules):
        if str(tmp_path) in str(getattr(sys.modules[name], "__file__", "") or ""):
            del sys.modules[name]
    importlib.invalidate_caches()


class CountingLoader(LazyLoader):
    def __init__(self) -> None:
        super().__init__()
        self.loads: list[str] = []

    def _load_target(self, target: str):
        self.loads.append(target)
        return super()._load_target(target)


def test_load_modules_and_attributes_and_cache_them(pkgdir):
    write(pkgdir / "lazy_pkg" / "__init__.py", "")
    write(pkgdir / "lazy_pkg" / "engine.py", "class Engine:\n    class Part:\n        SIZE = 3\n")
    loader = CountingLoader()
    assert "lazy_pkg.engine" not in sys.modules
    engine = loader.load("lazy_pkg.engine")
    assert engine is sys.modules["lazy_pkg.engine"]
    assert loader.load("lazy_pkg.engine:Engine") is engine.Engine
    assert loader.load("lazy_pkg.engine:Engine.Part.SIZE") == 3
    assert loader.load("lazy_pkg.engine") is engine
    assert loader.loads == ["lazy_pkg.engine", "lazy_pkg.engine:Engine", "lazy_pkg.engine:Engine.Part.SIZE"]
    assert loader.is_loaded("lazy_pkg.engine:Engine")


def test_errors_are_the_original_exceptions_and_are_retried(pkgdir):
    loader = CountingLoader()
    with pytest.raises(ModuleNotFoundError, match="no_such_lazy_mod"):
        loader.load("no_such_lazy_mod")
    write(pkgdir / "lazy_attr.py", "X = 1\n")
    with pytest.raises(AttributeError, match="Y"):
        loader.load("lazy_attr:Y")
    write(pkgdir / "no_such_lazy_mod.py", "VALUE = 7\n")
    importlib.invalidate_caches()
    assert loader.load("no_such_lazy_mod:VALUE") == 7  # a failure is not cached
    for bad in ("", ":x", "mod:", "mod:a..b"):
        with pytest.raises(ValueError, match="bad lazy-load target"):
            loader.load(bad)


def test_lazy_module_imports_at_first_attribute_access(pkgdir):
    write(
        pkgdir / "heavy_mod.py",
        "import sys\nsys.heavy_imported = getattr(sys, 'heavy_imported', 0) + 1\nX = 5\n",
    )
    loader = CountingLoader()
    proxy = loader.module("heavy_mod")
    assert isinstance(proxy, LazyModule)
    assert "heavy_mod" not in sys.modules
    assert "not loaded" in repr(proxy)
    assert proxy.X == 5
    assert "heavy_mod" in sys.modules and "loaded" in repr(proxy)
    proxy.Y = 6
    assert sys.modules["heavy_mod"].Y == 6
    assert "X" in dir(proxy)
    assert proxy.X == 5
    assert loader.loads == ["heavy_mod"] and sys.heavy_imported == 1
    del sys.heavy_imported


def test_lazy_module_error_surfaces_at_use_with_the_original_exception(pkgdir):
    write(pkgdir / "broken_mod.py", "raise RuntimeError('broken at import')\n")
    proxy = lazy_module("broken_mod")  # nothing happens yet
    with pytest.raises(RuntimeError, match="broken at import"):
        _ = proxy.anything
    with pytest.raises(ValueError):
        lazy_module("mod:")


def test_the_library_imports_no_opentelemetry_and_nothing_heavy():
    """services, lazy and monitor sit on the start-up path: no OTel, no asyncio, no inspect."""
    code = textwrap.dedent(
        """
        import sys
        import otel_coldstart
        before = set(sys.modules)
        import otel_coldstart.library.services, otel_coldstart.library.lazy, otel_coldstart.record.monitor
        from otel_coldstart import ServiceFactory, LazyLoader, lazy_module, start_service_timer
        new = sorted(set(sys.modules) - before)
        print(",".join(new))
        """
    )
    root = Path(__file__).resolve().parent.parent
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    env["PYTHONPATH"] = str(root)
    out = subprocess.run(
        [sys.executable, "-S", "-c", code], capture_output=True, text=True, env=env, check=True
    ).stdout.strip()
    new = set(out.split(","))
    heavy = {"asyncio", "concurrent.futures", "inspect", "dataclasses", "typing", "wrapt", "psutil"}
    assert not {m for m in new if m.startswith("opentelemetry")}, new
    assert not heavy & new, heavy & new

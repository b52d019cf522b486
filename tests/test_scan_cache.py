"""The entry-point scan's cache (``lazy_instrumentors._ScanCache``): a traced process reads the
scan of each ``sys.path`` directory from it while the directory is unchanged, and sees an
instrumentor installed, removed or rewritten in place at once. Real processes, real files."""

from __future__ import annotations

import marshal
import os
import subprocess
import sys
import time
from pathlib import Path

from helpers import auto_env, write

APP = "import fakelib\nprint('app ran')\n"
CACHE_NAME = f"entry-points-{sys.version_info[0]}.{sys.version_info[1]}.marshal"


def instrumentor_dist(site: Path, name: str, kind: str = "dist-info", marker: str = "v1") -> Path:
    """A distribution ``name`` declaring an instrumentor for library ``fakelib``."""
    info = site / f"{name}-1.0.{kind}"
    info.mkdir()
    write(
        info / "entry_points.txt",
        f"[opentelemetry_instrumentor]\nfakelib = {name}_instr:Instr\n",
    )
    write(
        site / f"{name}_instr.py",
        f"class Instr:\n    def instrument(self, **kw):\n        print('instrumented by {name} {marker}')\n",
    )
    return info


def traced(site: Path, tmp_path: Path, cache_home: Path | None = None) -> subprocess.CompletedProcess:
    script = write(tmp_path / "app.py", APP)
    env = auto_env(
        tmp_path / "trace.jsonl",
        OTEL_PYTHON_COLDSTART_AUTO="1",
        XDG_CACHE_HOME=str(cache_home or tmp_path / "cache"),
        PYTHONPATH=str(site),
    )
    return subprocess.run(
        [sys.executable, str(script)], env=env, capture_output=True, text=True, timeout=60, check=False
    )


def touch_later(path: Path) -> None:
    # A filesystem with coarse timestamps must still see a new mtime.
    stamp = time.time_ns() + 2_000_000_000
    os.utime(path, ns=(stamp, stamp))


def test_installed_removed_and_rewritten_instrumentors_are_seen_through_the_cache(tmp_path: Path):
    site = tmp_path / "site"
    site.mkdir()
    write(site / "fakelib.py", "")
    cache = (
        tmp_path
        / "cache"
        / "otel-coldstart"
        / f"entry-points-{sys.version_info[0]}.{sys.version_info[1]}.marshal"
    )

    assert traced(site, tmp_path).stdout == "app ran\n"
    assert cache.is_file()

    instrumentor_dist(site, "alpha")
    touch_later(site)
    first = traced(site, tmp_path)
    assert first.stdout == "instrumented by alpha v1\napp ran\n", first.stderr
    written = cache.stat().st_mtime_ns
    # Unchanged: read from the cache (not rewritten), the same instrumentor.
    again = traced(site, tmp_path)
    assert again.stdout == "instrumented by alpha v1\napp ran\n", again.stderr
    assert cache.stat().st_mtime_ns == written

    # An egg-info's entry points rewritten in place (setup.py develop) are seen.
    egg = instrumentor_dist(site, "beta", kind="egg-info")
    touch_later(site)
    assert traced(site, tmp_path).stdout == "instrumented by alpha v1\ninstrumented by beta v1\napp ran\n"
    write(egg / "entry_points.txt", "[opentelemetry_instrumentor]\n")
    touch_later(egg / "entry_points.txt")
    assert traced(site, tmp_path).stdout == "instrumented by alpha v1\napp ran\n"

    # Removed: gone at once.
    for path in (site / "alpha-1.0.dist-info").iterdir():
        path.unlink()
    (site / "alpha-1.0.dist-info").rmdir()
    touch_later(site)
    assert traced(site, tmp_path).stdout == "app ran\n"


def test_a_corrupt_or_unwritable_cache_costs_only_the_read(tmp_path: Path):
    site = tmp_path / "site"
    site.mkdir()
    write(site / "fakelib.py", "")
    instrumentor_dist(site, "alpha")
    directory = tmp_path / "cache" / "otel-coldstart"
    directory.mkdir(parents=True)
    (directory / CACHE_NAME).write_bytes(b"\x00junk")
    done = traced(site, tmp_path)
    assert (done.stdout, done.stderr) == ("instrumented by alpha v1\napp ran\n", "")
    # Well formed and current, but not what we write: the directory is read again.
    cache = directory / CACHE_NAME
    parts = marshal.loads(cache.read_bytes())
    stamp, dists, top_level = parts[str(site)]
    parts[str(site)] = (
        stamp,
        [(d, path, s, [("not_our_group", "x", 1)]) for d, path, s, _ in dists],
        top_level,
    )
    cache.write_bytes(marshal.dumps(parts))
    done = traced(site, tmp_path)
    assert (done.stdout, done.stderr) == ("instrumented by alpha v1\napp ran\n", "")
    parts[str(site)] = (stamp, [None], top_level)
    cache.write_bytes(marshal.dumps(parts))
    done = traced(site, tmp_path)
    assert (done.stdout, done.stderr) == ("instrumented by alpha v1\napp ran\n", "")
    # A cache home that cannot hold a directory (a file): nothing written, nothing shown.
    not_a_directory = write(tmp_path / "file", "")
    done = traced(site, tmp_path, cache_home=not_a_directory)
    assert (done.stdout, done.stderr) == ("instrumented by alpha v1\napp ran\n", "")

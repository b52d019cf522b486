"""Screenshot an HTML report in headless Chromium (no network): ``python scripts/screenshot_html.py
PAGE.html OUT.png [--width 1400 --height 1800]``. Exits 0 with the PNG written, 2 (one line,
no traceback) when the page is missing, Chromium fails, or no Chromium is installed
(``apt-get install -y chromium``)."""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

CANDIDATES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "chrome")


def find_chromium() -> str | None:
    for name in CANDIDATES:
        path = shutil.which(name)
        if path:
            return path
    return None


def screenshot(page: Path, out: Path, width: int = 1400, height: int = 1800, timeout: float = 60) -> Path:
    browser = find_chromium()
    if browser is None:
        raise FileNotFoundError("no chromium on PATH")
    with tempfile.TemporaryDirectory() as profile:
        command = [
            browser,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--no-first-run",
            "--hide-scrollbars",
            f"--user-data-dir={profile}",
            f"--window-size={width},{height}",
            f"--screenshot={out.resolve()}",
            page.resolve().as_uri(),
        ]
        subprocess.run(command, capture_output=True, timeout=timeout, check=True)
    if not out.is_file():
        raise RuntimeError(f"chromium wrote no screenshot to {out}")
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("page", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--width", type=int, default=1400)
    parser.add_argument("--height", type=int, default=1800)
    args = parser.parse_args()
    if not args.page.is_file():
        print(f"screenshot: no such page: {args.page}", file=sys.stderr)
        return 2
    try:
        screenshot(args.page, args.out, args.width, args.height)
    except FileNotFoundError as exc:
        print(f"screenshot: {exc}", file=sys.stderr)
        return 2
    except subprocess.TimeoutExpired as exc:
        print(f"screenshot: chromium did not finish within {exc.timeout:g} s", file=sys.stderr)
        return 2
    except (subprocess.CalledProcessError, RuntimeError, OSError) as exc:
        print(f"screenshot: {exc}", file=sys.stderr)
        return 2
    print(args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""A small service whose cold start otel-coldstart traces: eleven services in three tiers, then ready.

Critical services start in parallel (a dependency chain config -> database -> migrations runs
beside the others), essential ones are created on demand by the warm-up, optional ones are
preloaded on a background thread. Each init imports what it needs inside its factory, so the
trace shows which service paid for which import. Sleeps stand in for network round trips.

Run it plain (``python examples/demo_app.py``) or traced
(``opentelemetry-instrument python examples/demo_app.py``); ``otel-coldstart demo`` does the latter
and judges the trace.
"""

import argparse
import json
import logging
import os
import time

import otel_coldstart
from otel_coldstart.library.lazy import LazyLoader, lazy_module
from otel_coldstart.library.services import ServiceFactory, Tier
from otel_coldstart.record.monitor import service_timer, take_memory_snapshot

try:  # the optional-speedup pattern: a failing import must behave exactly as without tracing
    import ujson as fast_json
except ImportError:
    fast_json = json

# Imported at first use, wherever that is (the templates service's init, below).
ElementTree = lazy_module("xml.etree.ElementTree")
loader = LazyLoader()


class Closable:
    """Stands in for a client with a close() method."""

    def __init__(self, name: str, **parts: object) -> None:
        self.name = name
        self.parts = parts
        self.closed = False

    def close(self) -> None:
        self.closed = True


# --- critical: needed before the first request -------------------------------------------------


def make_config() -> dict:
    import configparser

    parser = configparser.ConfigParser()
    parser.read_string("[server]\nport = 8080\n[db]\nurl = :memory:\n")
    time.sleep(0.03)  # reading a remote config store
    return {"port": parser.getint("server", "port"), "db_url": parser.get("db", "url")}


def make_database(config: dict) -> object:
    import sqlite3

    db = sqlite3.connect(config["db_url"], check_same_thread=False)
    db.execute("create table orders (id integer primary key, total text)")
    db.execute("insert into orders (total) values (?)", ("19.99",))
    time.sleep(0.05)  # connection pool warm-up
    return db


def close_database(db: object) -> None:
    db.close()


def make_migrations(database: object) -> Closable:
    import difflib

    time.sleep(0.02)
    return Closable("migrations", diff=difflib.SequenceMatcher)


def make_cache() -> Closable:
    import queue

    time.sleep(0.04)  # connecting to the cache cluster
    return Closable("cache", pool=queue.SimpleQueue())


def make_auth(config: dict) -> Closable:
    import base64
    import gettext

    time.sleep(0.03)  # fetching signing keys
    key = base64.b64encode(os.urandom(16))
    return Closable("auth", key=key, translate=gettext.gettext)


# --- essential: created on first use ------------------------------------------------------------


def make_templates() -> Closable:
    import html
    import string

    page = ElementTree.fromstring("<page><title>orders</title></page>")  # the lazy import happens here
    time.sleep(0.01)
    return Closable("templates", title=html.escape(page.findtext("title")), tpl=string.Template)


def make_repository(database: object, cache: Closable) -> Closable:
    import dataclasses

    time.sleep(0.01)
    return Closable("repository", fields=dataclasses.fields)


def make_mailer(config: dict) -> Closable:
    import email.mime.text
    import quopri

    time.sleep(0.015)
    return Closable("mailer", encode=quopri.encodestring, mime=email.mime.text.MIMEText)


# --- optional: preloaded in the background ------------------------------------------------------


def make_metrics() -> Closable:
    to_hsv = loader.load("colorsys:rgb_to_hsv")  # a lazy load inside a preloaded service
    time.sleep(0.02)
    return Closable("metrics", colour=to_hsv)


def make_reports(repository: Closable) -> Closable:
    import csv
    import zipfile

    time.sleep(0.025)
    return Closable("reports", writer=csv.writer, archive=zipfile.ZipFile)


def make_search() -> Closable:
    import fnmatch
    import textwrap

    time.sleep(0.03)
    return Closable("search", match=fnmatch.fnmatch, wrap=textwrap.wrap)


def build_factory(ready_after_critical: bool) -> ServiceFactory:
    factory = ServiceFactory(mark_ready_when_critical_done=ready_after_critical)
    critical, essential, optional = Tier.CRITICAL, Tier.ESSENTIAL, Tier.OPTIONAL
    factory.register("config", make_config, critical)
    factory.register("database", make_database, critical, depends_on=["config"], disposer=close_database)
    factory.register("migrations", make_migrations, critical, depends_on=["database"])
    factory.register("cache", make_cache, critical)
    factory.register("auth", make_auth, critical, depends_on=["config"])
    factory.register("templates", make_templates, essential)
    factory.register("repository", make_repository, essential, depends_on=["database", "cache"])
    factory.register("mailer", make_mailer, essential, depends_on=["config"])
    factory.register("metrics", make_metrics, optional)
    factory.register("reports", make_reports, optional, depends_on=["repository"])
    factory.register("search", make_search, optional)
    return factory


def warm_up(factory: ServiceFactory) -> dict:
    """What the first request would need: essential services, created on demand here."""
    with service_timer("routes"):  # a hand-timed init, for code that does not use the factory
        from http.server import BaseHTTPRequestHandler

        routes = {"/orders": BaseHTTPRequestHandler}
    return {
        "port": factory.get("config")["port"],
        "routes": routes,
        # Most likely still preloading on the background thread: this waits for it (a wait span).
        "metrics": factory.get("metrics"),
        "templates": factory.get("templates"),
        "repository": factory.get("repository"),
        "mailer": factory.get("mailer"),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--serve-seconds", type=float, default=0.0)
    parser.add_argument(
        "--ready-after-critical",
        action="store_true",
        help="let the factory declare ready when the critical tier is done (instead of after warm-up)",
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO)
    with build_factory(args.ready_after_critical) as factory:
        factory.initialize_critical()
        take_memory_snapshot("critical services ready")
        preload = factory.preload_optional()
        app = warm_up(factory)
        # A server would not wait; the demo does, so that its trace shows the whole preload.
        preload.wait(5)
        otel_coldstart.mark_ready()
        if os.environ.get("DEMO_PRINT_READY_NS"):  # benchmarks/startup_overhead.py reads this
            print(f"ready_ns={time.time_ns()}", flush=True)
        # A demo: it serves nothing, so it must not claim a port it never bound.
        logging.getLogger("demo").info(
            "ready (configured port %s, not bound: the demo serves no requests) %s",
            app["port"],
            fast_json.dumps({"ok": True}),
        )
        if args.serve_seconds:
            time.sleep(args.serve_seconds)


if __name__ == "__main__":
    main()

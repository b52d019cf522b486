"""The cold-start trace's schema: every span name, attribute key and enumerated value we write.

The recorder (``spans.py``, ``service_tracing.py``, ``monitor.py``, ...), the validator
(``validate/``) and the test fixtures import these names; no other module spells them, so the
writer and the reader of a trace agree by construction (``tests/test_conventions.py`` checks it).
Keys we invented live under ``coldstart.``; where an OpenTelemetry semantic convention exists
(``code.*``, ``thread.*``, ``exception.*``, ``process.*``) it is used instead. The README's
"The trace" section describes the same shape for people.

Plain string constants, no imports: this module sits on the start-up path and costs one tiny
module load. Add a new name here, with a one-line meaning, before writing it anywhere else.
"""

from __future__ import annotations

# --- span names -------------------------------------------------------------------------------

#: The root: process creation -> the ready moment.
ROOT_SPAN = "coldstart"
#: Process creation -> our hook installed (interpreter start-up, a wrapper process).
BOOT_SPAN = "coldstart.boot"
#: Hook installed -> launcher done (configurator, other instrumentors); absent under ``start()``.
LAUNCHER_SPAN = "coldstart.launcher"
#: Launcher done (or ``start()``) -> ready: the application's own start-up.
MAIN_SPAN = "coldstart.main"
#: Prefix of the phase spans a service tier runs in: ``coldstart.tier critical``.
TIER_SPAN_PREFIX = "coldstart.tier "
#: A ``LazyLoader`` resolving its target: parent of the imports that triggers.
LAZY_LOAD_SPAN = "coldstart.lazy_load"
#: Prefix of an import span: ``import json.decoder``.
IMPORT_SPAN_PREFIX = "import "
#: Prefix of a service-init span: ``init db``.
INIT_SPAN_PREFIX = "init "
#: Prefix of a span waiting for another thread's or task's init of a service: ``wait db``.
WAIT_SPAN_PREFIX = "wait "
#: Inside boot: a launcher's wrapper process (same pid) from its creation to its ``exec`` of the app.
WRAPPER_SPAN = "coldstart.wrapper"
#: Our start-up hook importing and arming the recorder (before it can record its own imports).
LAUNCHER_ACTIVATE_SPAN = "coldstart.launcher.activate"
#: ``opentelemetry-instrument`` finding and loading the distro (``_load_distro``).
LAUNCHER_DISTRO_SPAN = "coldstart.launcher.distro"
#: ``opentelemetry-instrument`` finding and running the configurator (``_load_configurators``).
LAUNCHER_CONFIGURATOR_SPAN = "coldstart.launcher.configurator"
#: ``opentelemetry-instrument`` loading every instrumentor (``_load_instrumentors``).
LAUNCHER_INSTRUMENTORS_SPAN = "coldstart.launcher.instrumentors"
#: One scan of the installed distributions' entry points for a group.
LAUNCHER_ENTRY_POINTS_SPAN = "coldstart.launcher.entry_points"
#: Prefix of one instrumentor's load and ``instrument()``: ``instrument requests``.
INSTRUMENT_SPAN_PREFIX = "instrument "
#: Prefix shared by the root's own children and our phase spans (``coldstart.boot``, ...).
PHASE_SPAN_PREFIX = "coldstart."

# --- attribute keys: every span -----------------------------------------------------------------

#: What a span records: one of the ``KIND_*`` values.
KIND = "coldstart.kind"
#: Which phase or tier a phase span stands for (``PHASE_*``); ``after_ready`` on live imports.
PHASE = "coldstart.phase"
#: ``True`` on a record still running at ready: its span was cut at the ready moment.
INCOMPLETE = "coldstart.incomplete"
#: OpenTelemetry semconv: the recording thread's id (only off the main thread).
THREAD_ID = "thread.id"
#: OpenTelemetry semconv: the recording thread's name.
THREAD_NAME = "thread.name"

# --- attribute keys: the root -----------------------------------------------------------------

#: How recording started: ``ORIGIN_*``.
ORIGIN = "coldstart.origin"
#: What ended the cold start: ``explicit``, ``exit``, ``timeout``, ``critical_tier``, a detector's name.
READY_TRIGGER = "coldstart.ready.trigger"
#: Every import of the cold start, kept as a span or not.
IMPORTS_COUNT = "coldstart.imports.count"
#: Imports that raised.
IMPORTS_FAILED = "coldstart.imports.failed"
#: Import spans actually emitted (the minimum-duration filter drops short ones).
IMPORTS_RECORDED = "coldstart.imports.recorded"
#: Bytes of code and extension modules imported (the "bundle").
BUNDLE_SIZE = "coldstart.bundle.size"
#: Process creation -> hook installed, in ns (also the boot span's length).
BOOT_DURATION_NS = "coldstart.boot.duration_ns"
#: Resident set size at the ready moment, bytes.
MEMORY_RSS_AT_READY = "coldstart.memory.rss_at_ready"
#: The kernel's RSS high-water mark (``VmHWM``) by the ready moment, bytes.
MEMORY_PEAK_RSS = "coldstart.memory.peak_rss"
#: Unique set size measured after ready, bytes (too slow to read before).
MEMORY_USS_AFTER_READY = "coldstart.memory.uss_after_ready"

#: The module that ran as ``__main__``: ``pip.__main__`` for ``python -m pip``, ``__main__`` for a script.
ENTRY_MODULE = "coldstart.entry.module"
#: Modules whose code ran before ready while no import of their own package was in progress, plus
#: the modules of the bases and instances those define (``startup_profile.py``).
USED_MODULES = "coldstart.used.modules"
#: How ``USED_MODULES`` was observed: ``USED_SOURCE_*``.
USED_SOURCE = "coldstart.used.source"
#: ``module|caller module:function|app`` (or ``|library``): who asked for a top-level import.
IMPORT_CALLERS = "coldstart.import.callers"
#: The main thread's sampling interval before ready, ns.
PROFILE_INTERVAL_NS = "coldstart.profile.interval_ns"
#: ns the build thread spent after ready turning samples into spans and evidence.
PROFILE_BUILD_NS = "coldstart.profile.build_ns"
#: Why the samples were not read (no code spans, no evidence): ``PROFILE_SKIPPED_*``.
PROFILE_SKIPPED = "coldstart.profile.skipped"
#: The cold start ended at exit, and reading the samples would not fit the exit budget.
PROFILE_SKIPPED_EXIT_BUDGET = "exit_budget"

# --- attribute keys: code spans (the main phase between imports) ------------------------------

#: How many samples of the main thread fell in the span.
CODE_SAMPLES = "coldstart.code.samples"
#: The innermost functions sampled most often in it, with their share: ``module:function 40%``.
CODE_HOT = "coldstart.code.hot"
#: OpenTelemetry semconv: the line of the entry module that made the call.
CODE_LINE_NUMBER = "code.line.number"

# --- attribute keys: the boot span ------------------------------------------------------------

#: How many modules were already imported when our hook went in.
PREHOOK_MODULE_COUNT = "coldstart.prehook.module_count"
#: Their names.
PREHOOK_MODULES = "coldstart.prehook.modules"

# --- attribute keys: import spans -------------------------------------------------------------

#: The module's dotted name.
MODULE_NAME = "coldstart.module.name"
#: What kind of module: ``MODULE_KIND_*``.
MODULE_KIND = "coldstart.module.kind"
#: Bytes of its file on disk (absent for built-in and frozen modules).
MODULE_SIZE = "coldstart.module.size"
#: How it was imported: ``IMPORT_API_*``.
IMPORT_API = "coldstart.import.api"
#: ``OUTCOME_OK`` or ``OUTCOME_ERROR``.
IMPORT_OUTCOME = "coldstart.import.outcome"
#: ``True`` on an import still running at ready.
IMPORT_INCOMPLETE = "coldstart.import.incomplete"
#: OpenTelemetry semconv: the module's file.
CODE_FILE_PATH = "code.file.path"
#: OpenTelemetry semconv: the module a lazy load resolves.
CODE_NAMESPACE = "code.namespace"

# --- attribute keys: service spans ------------------------------------------------------------

#: The service's name.
SERVICE_NAME = "coldstart.service.name"
#: Its tier: ``TIER_*``.
SERVICE_TIER = "coldstart.service.tier"
#: Names of the services it depends on.
SERVICE_DEPENDENCIES = "coldstart.service.dependencies"
#: ``miss`` on an init span (the cache did not have it).
SERVICE_CACHE = "coldstart.service.cache"
#: How many times the cached instance was handed out before ready.
SERVICE_CACHE_HITS = "coldstart.service.cache_hits"
#: ``OUTCOME_OK`` or ``OUTCOME_ERROR``.
SERVICE_OUTCOME = "coldstart.service.outcome"
#: ``module:attribute`` of a user-named or svcs factory.
SERVICE_FACTORY = "coldstart.service.factory"
#: Resident set size change across an import or init, bytes (process-wide).
MEMORY_RSS_DELTA = "coldstart.memory.rss_delta"

# --- attribute keys: launcher spans -----------------------------------------------------------

#: Which launcher step a ``KIND_LAUNCHER`` span stands for: ``STEP_*``.
LAUNCHER_STEP = "coldstart.launcher.step"
#: On the wrapper span: which wrapper, ``WRAPPER_*``.
LAUNCHER_WRAPPER = "coldstart.launcher.wrapper"
#: On an entry-point scan: the entry-point group scanned.
LAUNCHER_GROUP = "coldstart.launcher.group"
#: On an instrument span: the instrumentor's entry-point name.
INSTRUMENTOR_NAME = "coldstart.instrumentor.name"

# --- attribute keys: lazy loads ---------------------------------------------------------------

#: The ``module:attribute`` a ``LazyLoader`` resolves.
LAZY_TARGET = "coldstart.lazy.target"

# --- memory snapshot events (on the root) -----------------------------------------------------

#: Name of a memory snapshot event.
MEMORY_SNAPSHOT_EVENT = "memory.snapshot"
#: What the snapshot marks: ``hook_installed``, ``ready``, ``critical done``, ...
MEMORY_LABEL = "coldstart.memory.label"
#: Resident set size at the snapshot, bytes.
MEMORY_RSS = "coldstart.memory.rss"
#: Virtual memory size at the snapshot, bytes.
MEMORY_VMS = "coldstart.memory.vms"
#: RSS growth since the previous snapshot, bytes per second.
MEMORY_GROWTH_RATE = "coldstart.memory.growth_rate"
#: Name of the event a failed import or init carries (OpenTelemetry's exception event).
EXCEPTION_EVENT = "exception"
#: OpenTelemetry semconv: the exception's type.
EXCEPTION_TYPE = "exception.type"
#: OpenTelemetry semconv: the exception's message.
EXCEPTION_MESSAGE = "exception.message"

# --- metrics (observable instruments after ready) ---------------------------------------------

#: OpenTelemetry semconv: physical memory in use, bytes.
METRIC_MEMORY_USAGE = "process.memory.usage"
#: OpenTelemetry semconv: committed virtual memory, bytes.
METRIC_MEMORY_VIRTUAL = "process.memory.virtual"
#: The kernel's RSS high-water mark, bytes.
METRIC_MEMORY_PEAK = "coldstart.memory.peak"
#: RSS change per second since the previous collection.
METRIC_MEMORY_GROWTH_RATE = "coldstart.memory.growth_rate"
#: Unique set size, bytes.
METRIC_MEMORY_USS = "coldstart.memory.uss"

# --- values of coldstart.kind -----------------------------------------------------------------

#: The root span.
KIND_ROOT = "root"
#: A phase of the cold start (boot, launcher, main) or a tier phase.
KIND_PHASE = "phase"
#: A module import.
KIND_IMPORT = "import"
#: A service init.
KIND_SERVICE = "service"
#: Waiting for another thread's or task's init of a service.
KIND_WAIT = "wait"
#: A lazy loader resolving its target.
KIND_LAZY_LOAD = "lazy_load"
#: The launcher's own work: the wrapper, our hook, a launcher step, an instrumentor.
KIND_LAUNCHER = "launcher"
#: The program's own code between imports on the main thread (from samples).
KIND_CODE = "code"

# --- values of coldstart.launcher.step and coldstart.launcher.wrapper ---------------------------

#: The wrapper process before its ``exec``.
STEP_WRAPPER = "wrapper"
#: Our start-up hook arming the recorder.
STEP_ACTIVATE = "activate"
#: Loading the distro.
STEP_DISTRO = "distro"
#: Running the configurator.
STEP_CONFIGURATOR = "configurator"
#: Loading all instrumentors.
STEP_INSTRUMENTORS = "instrumentors"
#: Scanning entry points.
STEP_ENTRY_POINTS = "entry_points"
#: Loading one instrumentor and calling its ``instrument()``.
STEP_INSTRUMENT = "instrument"
#: The stock launcher's wrapper, ``opentelemetry-instrument``.
WRAPPER_STOCK = "opentelemetry-instrument"
#: Our wrapper, ``otel-coldstart run``.
WRAPPER_RUN = "otel-coldstart-run"

# --- values of coldstart.module.kind ----------------------------------------------------------

#: A ``.py`` file.
MODULE_KIND_SOURCE = "source"
#: A ``.pyc`` without source.
MODULE_KIND_BYTECODE = "bytecode"
#: A regular package (its ``__init__``).
MODULE_KIND_PACKAGE = "package"
#: A namespace package (no file).
MODULE_KIND_NAMESPACE = "namespace"
#: A compiled extension module.
MODULE_KIND_EXTENSION = "extension"
#: Built into the interpreter.
MODULE_KIND_BUILTIN = "builtin"
#: Frozen into the interpreter.
MODULE_KIND_FROZEN = "frozen"
#: No spec to tell (a module that replaced itself in ``sys.modules``, say).
MODULE_KIND_UNKNOWN = "unknown"

# --- values of coldstart.phase ----------------------------------------------------------------

#: The boot span.
PHASE_BOOT = "boot"
#: The launcher span.
PHASE_LAUNCHER = "launcher"
#: The main span.
PHASE_MAIN = "main"
#: The critical tier, created in parallel before ready.
PHASE_CRITICAL = "critical"
#: The optional tier, preloaded in the background.
PHASE_PRELOAD = "optional preload"
#: On a live import span: recorded after the ready moment.
PHASE_AFTER_READY = "after_ready"

# --- values of coldstart.service.tier ---------------------------------------------------------

#: Created in parallel before ready (``ServiceFactory``).
TIER_CRITICAL = "critical"
#: Created on first use.
TIER_ESSENTIAL = "essential"
#: Preloaded in the background after start-up, or created on first use.
TIER_OPTIONAL = "optional"
#: The tiers of our ``ServiceFactory``, in start-up order.
FACTORY_TIERS = (TIER_CRITICAL, TIER_ESSENTIAL, TIER_OPTIONAL)
#: Timed by hand (``start_service_timer``).
TIER_MANUAL = "manual"
#: A factory named in ``OTEL_PYTHON_COLDSTART_SERVICE_FACTORIES``.
TIER_USER = "user"
#: A ``svcs`` container's factory.
TIER_SVCS = "svcs"

# --- other enumerated values ------------------------------------------------------------------

#: ``coldstart.origin``: armed under ``opentelemetry-instrument`` (our hook, distro or instrumentor).
ORIGIN_LAUNCHER = "launcher"
#: ``coldstart.origin``: armed by ``otel_coldstart.start()`` in the application.
ORIGIN_START = "start"
#: ``coldstart.origin``: armed by the start-up hook (``OTEL_PYTHON_COLDSTART_AUTO``, ``otel-coldstart run``).
ORIGIN_AUTO = "auto"
#: ``coldstart.*.outcome``: it returned.
OUTCOME_OK = "ok"
#: ``coldstart.*.outcome``: it raised.
OUTCOME_ERROR = "error"
#: ``coldstart.service.cache`` on an init span.
CACHE_MISS = "miss"
#: ``coldstart.import.api``: an ``import`` statement (``__import__``).
IMPORT_API_STATEMENT = "import"
#: ``coldstart.import.api``: ``importlib.import_module``.
IMPORT_API_IMPORT_MODULE = "import_module"
#: ``coldstart.ready.trigger``: ``otel_coldstart.mark_ready()``.
TRIGGER_EXPLICIT = "explicit"
#: ``coldstart.ready.trigger``: the process ended (scripts and CLIs).
TRIGGER_EXIT = "exit"
#: ``coldstart.ready.trigger``: ``OTEL_PYTHON_COLDSTART_READY_TIMEOUT`` ran out.
TRIGGER_TIMEOUT = "timeout"
#: ``coldstart.ready.trigger``: the critical service tier finished.
TRIGGER_CRITICAL_TIER = "critical_tier"
#: ``coldstart.used.source``: ``sys.monitoring`` saw every function's first call (3.12+).
USED_SOURCE_MONITORING = "monitoring"
#: ``coldstart.used.source``: samples of the main thread's stack (short calls can be missed).
USED_SOURCE_SAMPLING = "sampling"
#: ``coldstart.ready.trigger`` when the timeline was frozen without one.
TRIGGER_UNKNOWN = "unknown"

# --- AWS Lambda (faas_lambda.py, validate/faas.py) ----------------------------------------------

#: ``coldstart.ready.trigger``: a Lambda runtime's first request for an invocation (end of init).
TRIGGER_LAMBDA = "lambda"
#: Span in the cold-start trace: the first invocation after init (init / first-invocation split).
LAMBDA_FIRST_INVOCATION_SPAN = "coldstart.lambda.first_invocation"
#: Span (SnapStart): the sandbox sitting in its snapshot, from the snapshot request to the restore.
LAMBDA_SNAPSHOT_SPAN = "coldstart.lambda.snapshot"
#: Span (SnapStart): the restore -> ready; after-restore hooks' imports nest under it.
LAMBDA_RESTORE_SPAN = "coldstart.lambda.restore"
#: Root: ``on-demand``, ``provisioned-concurrency`` or ``snap-start`` (AWS_LAMBDA_INITIALIZATION_TYPE).
LAMBDA_INIT_TYPE = "coldstart.lambda.init_type"
#: Root: the init a caller can wait for, ns (SnapStart: restore -> ready; else creation -> ready).
LAMBDA_INIT_DURATION_NS = "coldstart.lambda.init_duration_ns"
#: Root (SnapStart): process creation -> snapshot, ns: init that ran before the snapshot.
LAMBDA_BEFORE_SNAPSHOT_NS = "coldstart.lambda.before_snapshot_ns"
#: First invocation: end of init -> the invocation's start, ns.
LAMBDA_INIT_GAP_NS = "coldstart.lambda.init_gap_ns"
#: First invocation: init ran ahead of demand (provisioned / proactive); the gap is nobody's wait.
LAMBDA_PROACTIVE_INIT = "coldstart.lambda.proactive_init"
#: First invocation span: the handler failed.
LAMBDA_ERROR = "coldstart.lambda.error"
#: ``coldstart.phase`` of the SnapStart snapshot span.
PHASE_SNAPSHOT = "snapshot"
#: ``coldstart.phase`` of the SnapStart restore span.
PHASE_RESTORE = "restore"
#: ``coldstart.kind`` of the first-invocation span: after the root's end by design, not a phase of it.
KIND_INVOCATION = "invocation"
#: ``coldstart.phase`` of the first-invocation span.
PHASE_FIRST_INVOCATION = "first_invocation"
#: OpenTelemetry semconv (FaaS): true on a sandbox's first invocation only.
FAAS_COLDSTART = "faas.coldstart"
#: OpenTelemetry semconv (FaaS): the AWS request id of the invocation.
FAAS_INVOCATION_ID = "faas.invocation_id"
#: OpenTelemetry semconv (FaaS): what triggered the invocation (``other``: unknown to the runtime).
FAAS_TRIGGER = "faas.trigger"
#: OpenTelemetry semconv: the function's ARN, without alias or version.
CLOUD_RESOURCE_ID = "cloud.resource_id"
#: OpenTelemetry semconv: the AWS account, from the ARN.
CLOUD_ACCOUNT_ID = "cloud.account.id"
#: OpenTelemetry semconv (AWS Lambda): the ARN as invoked, alias included.
AWS_LAMBDA_INVOKED_ARN = "aws.lambda.invoked_arn"
#: OpenTelemetry semconv metric: the init's duration (histogram, s).
METRIC_FAAS_INIT_DURATION = "faas.init_duration"
#: OpenTelemetry semconv metric: cold starts (counter).
METRIC_FAAS_COLDSTARTS = "faas.coldstarts"

#: ``coldstart.ready.trigger``: a stop signal (SIGTERM, SIGINT, SIGHUP) before ready: incomplete.
TRIGGER_SIGNAL = "signal"
#: ``coldstart.ready.trigger``: the generic detector, the first listening socket.
TRIGGER_LISTEN = "listen"

# --- process roles (root attributes) ------------------------------------------------------------

#: What this process is: one of the ``ROLE_*`` values.
PROCESS_ROLE = "coldstart.process.role"
#: The parent process's pid, on a forked or spawned child's root.
PARENT_PID = "coldstart.parent.pid"
#: On a span link: what the linked span is (``LINK_PARENT_PROCESS``).
LINK_KIND = "coldstart.link"
#: ``coldstart.link``: the root of the parent process's cold start.
LINK_PARENT_PROCESS = "parent_process"
#: The main process of the application: the one that serves (or the script).
ROLE_SERVICE = "service"
#: A forked or spawned process doing the service's work (a gunicorn or uvicorn worker).
ROLE_WORKER = "worker"
#: Starts and watches workers, serves nothing itself (gunicorn's arbiter, uvicorn's supervisor).
ROLE_SUPERVISOR = "supervisor"
#: A development reloader's parent process (Django, Werkzeug, ``uvicorn --reload``).
ROLE_RELOADER = "reloader"
#: multiprocessing's resource tracker.
ROLE_RESOURCE_TRACKER = "resource_tracker"
#: multiprocessing's fork server.
ROLE_FORKSERVER = "forkserver"
#: Roles whose cold start is not the service's: shown apart, never judged against targets.
HELPER_ROLES = (ROLE_SUPERVISOR, ROLE_RELOADER, ROLE_RESOURCE_TRACKER, ROLE_FORKSERVER)

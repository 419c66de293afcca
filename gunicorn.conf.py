"""gunicorn settings for aicost: `gunicorn aicost.wsgi` picks this file up from the working directory.

The master process checks the database schema before it forks any worker and exits with status 3
when the schema does not match the models (AICOST_SKIP_SCHEMA_GUARD=1 skips the check).

Prometheus request metrics add up across workers: every worker writes its counters to files in
PROMETHEUS_MULTIPROC_DIR (made here when unset, wiped at each start) and /metrics sums them.
"""

import glob
import multiprocessing
import os
import shutil
import tempfile

bind = os.environ.get("GUNICORN_BIND", "0.0.0.0:8000")
workers = int(os.environ.get("GUNICORN_WORKERS", min(2 * multiprocessing.cpu_count() + 1, 8)))
# Slow clients (README, Deploying): gthread workers. A sync worker is held whole by one client that
# trickles its headers or body, so a few of them stop the service. A gthread worker waits for a new
# connection's first bytes and for kept-alive connections in its poller, without a thread, and serves
# each request in one of `threads` threads: a slow client holds one thread, never the worker, and
# workers x threads bounds both the slow clients tolerated at once and the threads (each with its own
# persistent database connection, so keep it under PostgreSQL's max_connections). An async worker
# would need a green-thread database driver; a buffering reverse proxy in front (nginx) is the
# recommendation for a service reachable from untrusted networks.
worker_class = "gthread"
threads = int(os.environ.get("GUNICORN_THREADS", 16))
# Connections a worker holds at once (kept-alive ones included). At `threads`, a worker whose threads
# are all taken stops accepting, and the other workers take the new connections (they share the
# listening socket) instead of this one queueing them behind its slow clients.
worker_connections = int(os.environ.get("GUNICORN_WORKER_CONNECTIONS", threads))
# The worker's heartbeat: a gthread worker's main loop beats while its threads serve, so a slow request
# does not get the worker killed; a hung worker is still replaced after this.
timeout = int(os.environ.get("GUNICORN_TIMEOUT", 30))
graceful_timeout = int(os.environ.get("GUNICORN_GRACEFUL_TIMEOUT", 20))
# Idle kept-alive connections (and new ones that send nothing) are closed after this many seconds.
keepalive = 5
# Request line and header limits (gunicorn answers 414/431/400 above them, before Django runs). The body
# limit is Django's DATA_UPLOAD_MAX_MEMORY_SIZE (AICOST_MAX_BODY_BYTES), answered with a 413 JSON.
limit_request_line = 8190
limit_request_fields = 50
limit_request_field_size = 8190
# Recycle workers now and then so a slow leak cannot grow for ever; jitter avoids all at once.
max_requests = int(os.environ.get("GUNICORN_MAX_REQUESTS", 2000))
max_requests_jitter = 200
# Access log to stdout; the format has no headers, so API keys in Authorization are never logged.
accesslog = "-"
errorlog = "-"
access_log_format = '%(h)s "%(r)s" %(s)s %(b)s %(M)sms'
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1")


METRICS_DIR_VARIABLE = "PROMETHEUS_MULTIPROC_DIR"
_created_metrics_dir: list[str] = []


def _prepare_metrics_dir() -> None:
    """Before anything imports prometheus_client, which picks multiprocess mode from this variable at
    import. Files of an earlier run would carry its counts over, so a given directory is wiped."""
    path = os.environ.get(METRICS_DIR_VARIABLE)
    if not path:
        path = tempfile.mkdtemp(prefix="aicost-prometheus-")
        _created_metrics_dir.append(path)
        os.environ[METRICS_DIR_VARIABLE] = path  # Inherited by every worker.
        return
    os.makedirs(path, exist_ok=True)
    for stale in glob.glob(os.path.join(path, "*.db")):
        os.remove(stale)


def on_starting(server):
    """Runs once in the master, before workers fork: a broken schema never gets to serve."""
    _prepare_metrics_dir()
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "aicost.settings")
    import django

    django.setup()
    from django.db import connections

    from schemaguard.startup import schema_guard_or_exit

    try:
        schema_guard_or_exit()
    finally:
        connections.close_all()  # Workers must not inherit the master's connection.


def child_exit(server, worker):
    """A worker is gone: drop its live-gauge files (its counters stay, so totals never go down)."""
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)


def on_exit(server):
    for path in _created_metrics_dir:
        shutil.rmtree(path, ignore_errors=True)

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
import sys
import tempfile

bind = os.environ.get("GUNICORN_BIND", "0.0.0.0:8000")
workers = int(os.environ.get("GUNICORN_WORKERS", min(2 * multiprocessing.cpu_count() + 1, 8)))
# Slow clients (README, Deploying): gthread workers. A sync worker is held whole by one client that
# trickles its headers or body, so a few of them stop the service. A gthread worker waits for a new
# connection's first bytes and for kept-alive connections in its poller, without a thread, and serves
# each request in one of `threads` threads: a slow client holds one thread, never the worker, and
# workers x threads bounds the slow clients tolerated at once (default 100 per worker: 300 and more, on
# one core too). Threads are cheap while they wait on a socket; database connections are not, so they are
# not one per thread: each worker has a pool of AICOST_DB_POOL_MAX_SIZE (default 8) that its threads
# share, a connection per request being served, given back at its end (aicost/settings.py); a slow
# client holds none (its body is read before anything queries: core.middleware). An async worker would
# need every library to cooperate; a buffering reverse proxy in front (nginx) is the recommendation for
# a service reachable from untrusted networks.
worker_class = "gthread"
threads = int(os.environ.get("GUNICORN_THREADS", 100))
# Set before Django's settings are read (on_starting, then every worker): the workers' pool.
os.environ.setdefault("AICOST_DB_POOL_MAX_SIZE", "8")
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
    from schemaguard.startup import schema_guard_or_exit

    try:
        schema_guard_or_exit()
    finally:
        _close_database_connections()  # Workers must not inherit the master's connection, nor its pool.


def _close_database_connections() -> None:
    """Every connection of this process, and each pool with its connections and threads (a forked child
    would share the sockets and lack the threads)."""
    from django.db import connections

    connections.close_all()
    for connection in connections.all():
        if connection.alias in getattr(connection, "_connection_pools", {}):  # Pools are per process.
            connection.close_pool()


def worker_exit(server, worker):
    """A worker stops (recycled, or the server stops): its pool's connections are closed, not dropped."""
    if "django" in sys.modules:
        _close_database_connections()


def child_exit(server, worker):
    """A worker is gone: drop its live-gauge files (its counters stay, so totals never go down)."""
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)


def on_exit(server):
    for path in _created_metrics_dir:
        shutil.rmtree(path, ignore_errors=True)

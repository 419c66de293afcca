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
threads = int(os.environ.get("GUNICORN_THREADS", 1))
timeout = int(os.environ.get("GUNICORN_TIMEOUT", 30))
graceful_timeout = int(os.environ.get("GUNICORN_GRACEFUL_TIMEOUT", 20))
keepalive = 5
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

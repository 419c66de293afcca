"""gunicorn settings for aicost: `gunicorn aicost.wsgi` picks this file up from the working directory.

The master process checks the database schema before it forks any worker and exits with status 3
when the schema does not match the models (AICOST_SKIP_SCHEMA_GUARD=1 skips the check).
"""

import multiprocessing
import os

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


def on_starting(server):
    """Runs once in the master, before workers fork: a broken schema never gets to serve."""
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "aicost.settings")
    import django

    django.setup()
    from django.db import connections

    from aicost.startup import schema_guard_or_exit

    try:
        schema_guard_or_exit()
    finally:
        connections.close_all()  # Workers must not inherit the master's connection.

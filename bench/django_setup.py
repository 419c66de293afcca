"""Django configured for a benchmark: production settings, whatever a local .env says."""

import os
import warnings


def django_setup_for_bench() -> None:
    """DEBUG off above all (with it on, Django keeps every query in memory), a throwaway secret, the test
    client's host allowed; static files are not collected for benchmarks, so whitenoise's warning is muted."""
    import django

    os.environ["DEBUG"] = "false"
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "aicost.settings")
    os.environ.setdefault("SECRET_KEY", "bench-only-" + "x" * 60)
    os.environ.setdefault("ALLOWED_HOSTS", "testserver")
    warnings.filterwarnings("ignore", message="No directory at")
    django.setup()

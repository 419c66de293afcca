"""The apps depend one way only, and the project package holds configuration only (issue 14).

Each app may import the apps before it in LAYERS, never one after it or beside it, so there is no
import cycle between apps; migrations are left out (they name other apps' migrations, not code)."""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
# Lowest first. ingest and dashboard are both at the top: they use everything below them.
LAYERS = (("core",), ("schemaguard",), ("pricing",), ("usage",), ("alerts",), ("ingest",), ("dashboard",))
RANK = {app: rank for rank, apps in enumerate(LAYERS) for app in apps}
PROJECT_PACKAGE_FILES = {"__init__.py", "settings.py", "urls.py", "wsgi.py", "asgi.py"}


def imported_apps(source: str) -> set[str]:
    """The top-level packages a module imports from, at module level or inside functions."""
    found = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module.split(".")[0])
        elif isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
    return found


def layering_violations(app: str, modules: dict[str, str]) -> list[str]:
    """'path imports other' for each import of an app at the same rank or above `app`'s."""
    violations = []
    for path, source in sorted(modules.items()):
        for other in sorted(imported_apps(source) & RANK.keys() - {app}):
            if RANK[other] >= RANK[app]:
                violations.append(f"{path} imports {other}")
    return violations


def _modules_of(app: str) -> dict[str, str]:
    return {
        str(path.relative_to(ROOT)): path.read_text()
        for path in (ROOT / app).rglob("*.py")
        if "migrations" not in path.parts
    }


@pytest.mark.parametrize("app", sorted(RANK))
def test_an_app_imports_only_the_apps_below_it(app):
    assert layering_violations(app, _modules_of(app)) == []


def test_the_checker_sees_an_import_upwards_even_inside_a_function():
    source = "from core.money import ZERO\n\ndef f():\n    from alerts.services import budget_alerts_evaluate\n"
    assert layering_violations("usage", {"usage/x.py": source}) == ["usage/x.py imports alerts"]


def test_every_app_in_settings_has_a_layer():
    from django.conf import settings

    ours = {name.split(".")[0] for name in settings.INSTALLED_APPS if (ROOT / name.split(".")[0]).is_dir()}
    assert ours == RANK.keys()


def test_the_project_package_holds_configuration_only():
    files = {path.name for path in (ROOT / "aicost").glob("*.py")}
    assert files == PROJECT_PACKAGE_FILES
    assert [path.name for path in (ROOT / "aicost").iterdir() if path.is_dir() and path.name != "__pycache__"] == []

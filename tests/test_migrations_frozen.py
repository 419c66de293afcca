"""Migrations freeze what they run: none imports the project's code, whose later changes (a column
added to the log's DDL, a renamed default) would otherwise change or break what an old migration
does on a fresh `migrate`. Only Django and the standard library."""

import ast
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
MIGRATIONS = sorted(path for path in ROOT.glob("*/migrations/0*.py"))
ALLOWED = {"django", *sys.stdlib_module_names}


def _imported_modules(path: Path) -> list[str]:
    modules = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            modules += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            modules.append("." * node.level + (node.module or ""))
    return modules


def test_every_app_has_migrations_to_check():
    assert {path.parent.parent.name for path in MIGRATIONS} >= {"usage", "pricing", "alerts"}


@pytest.mark.parametrize("path", MIGRATIONS, ids=lambda path: f"{path.parent.parent.name}.{path.stem}")
def test_a_migration_imports_only_django_and_the_standard_library(path):
    foreign = [module for module in _imported_modules(path) if module.split(".")[0] not in ALLOWED]
    assert foreign == [], f"{path.relative_to(ROOT)} imports project code: {foreign}"

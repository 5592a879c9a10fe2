"""The package dependency direction of docs/architecture.md, checked on the source."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("vntext", "gis", "nlp", "crawler", "api", "ioc")
ALLOWED = {
    "vntext": set(),  # the shared Vietnamese text leaf: imports nothing of the project
    "gis": {"vntext"},
    "nlp": {"vntext"},
    "crawler": {"vntext", "gis", "nlp"},
    "api": {"vntext", "gis", "nlp"},
    "ioc": {"vntext", "gis", "nlp", "crawler", "api"},
}


def imported_packages(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        else:
            continue
        found.update(name.split(".")[0] for name in names)
    # string-based imports (importlib) count too
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            head = node.value.split(".")[0]
            parts = node.value.split(".")
            if head in PACKAGES and 2 <= len(parts) <= 4 and all(p.isidentifier() for p in parts):
                found.add(head)
    return found & set(PACKAGES)


@pytest.mark.parametrize("package", PACKAGES)
def test_dependency_direction(package: str) -> None:
    offenders = []
    for path in sorted((REPO / package).rglob("*.py")):
        if "migrations" in path.parts:
            continue
        bad = imported_packages(path) - ALLOWED[package] - {package}
        if bad:
            offenders.append(f"{path.relative_to(REPO)} imports {', '.join(sorted(bad))}")
    assert not offenders, "dependency direction broken:\n" + "\n".join(offenders)


def test_packages_are_listed_explicitly() -> None:
    import tomllib

    config = tomllib.loads((REPO / "pyproject.toml").read_text())
    include = config["tool"]["setuptools"]["packages"]["find"]["include"]
    for package in PACKAGES:
        assert package in include
    assert not any(p.startswith(("tests", "data")) for p in include)

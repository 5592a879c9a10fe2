"""The `ioc` command line: help everywhere, one-line errors, contract commands present."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from ioc.cli import cli

REPO = Path(__file__).resolve().parents[2]


def all_commands(group: click.Group, ctx: click.Context, prefix=()):
    for name in group.list_commands(ctx):
        command = group.get_command(ctx, name)
        if command is None:
            continue
        path = (*prefix, name)
        yield path
        if isinstance(command, click.Group):
            sub_ctx = click.Context(command, info_name=name, parent=ctx)
            yield from all_commands(command, sub_ctx, path)


def test_every_command_has_help() -> None:
    runner = CliRunner()
    ctx = click.Context(cli, info_name="ioc")
    paths = list(all_commands(cli, ctx))
    assert (
        ("db",) in paths
        and ("db", "up") in paths
        and ("admin", "import") in paths
        and ("demo",) in paths
    )
    for path in paths:
        result = runner.invoke(cli, [*path, "--help"])
        assert result.exit_code == 0, (path, result.output)
        assert "Usage:" in result.output


def run(*args: str, **env: str) -> subprocess.CompletedProcess:
    full = {k: v for k, v in os.environ.items() if not k.startswith("IOC_")}
    full.update(env)
    return subprocess.run(
        [sys.executable, "-m", "ioc.cli", *args],
        capture_output=True,
        text=True,
        env=full,
        cwd=REPO,
        timeout=120,
    )


def test_unknown_command_and_bad_option() -> None:
    result = run("frobnicate")
    assert result.returncode == 2 and "No such command" in result.stderr
    result = run("admin", "import")
    assert result.returncode == 2 and "Missing argument" in result.stderr


def test_database_not_running_is_one_sentence(tmp_path: Path) -> None:
    # not the user's input: a failure (1), not a user error (2)
    result = run("admin", "load-reference", IOC_STATE_DIR=str(tmp_path))
    assert result.returncode == 1
    assert (
        result.stderr.strip()
        == "error: The embedded PostGIS is not running; start it with `ioc db up`."
    )


def test_bad_setting_is_reported(tmp_path: Path) -> None:
    result = run("db", "status", IOC_DB_PORT="not-a-port", IOC_STATE_DIR=str(tmp_path))
    assert result.returncode == 2
    assert "invalid setting" in result.stderr and "db_port" in result.stderr


def _one_line_error(result: subprocess.CompletedProcess, code: int, *words: str) -> None:
    assert result.returncode == code, (result.returncode, result.stderr)
    lines = [ln for ln in result.stderr.splitlines() if ln.strip()]
    assert "Traceback" not in result.stderr
    assert lines and all(w in lines[-1] for w in words), result.stderr


# issue 12: user errors (bad file, bad argument) exit 2 as documented, not 1
def test_bad_files_and_arguments_exit_2_without_a_database(tmp_path: Path) -> None:
    env = {"IOC_STATE_DIR": str(tmp_path / "state")}
    corrupt = tmp_path / "corrupt.tif"
    corrupt.write_bytes(b"II*\x00garbage")
    broken_rules = tmp_path / "rules.yaml"
    broken_rules.write_text("rules: [\n", encoding="utf-8")
    before, after = "data/land/before", "data/land/after_T48QXH_20250418.tif"
    cases = [
        (
            ("land", "detect", str(tmp_path / "a.tif"), str(tmp_path / "b.tif"), "--quiet"),
            ("a.tif", "no such file"),
        ),
        (("land", "detect", str(corrupt), str(corrupt), "--quiet"), ("corrupt.tif", "raster")),
        (("land", "detect", before, after, "--method", "magic"), ("magic",)),
        (("land", "detect", before, after, "--threshold", "high"), ("high",)),
        (("land", "detect", before, after, "--force"), ("--force", "--store")),
        (
            ("land", "detect", before, after, "--store", "--rules", str(broken_rules)),
            ("rules.yaml", "not valid YAML", "line"),
        ),
        (("land", "import-cadastre", "x.gpkg", "--field", "nonsense"), ("TARGET=NAME",)),
        (("crawl", "run", "--no-store", "--since", "yesterday"), ("yesterday",)),
        (("crawl", "extract", str(tmp_path / "missing.html")), ("missing.html",)),
        (("db", "migrate", "--bogus"), ("--bogus",)),
    ]
    for args, words in cases:
        _one_line_error(run(*args, **env), 2, *words)


@pytest.mark.postgis
def test_bad_files_exit_2_with_a_database(run_ioc, tmp_path: Path) -> None:
    not_vector = tmp_path / "units.geojson"
    not_vector.write_text("{ not json", encoding="utf-8")
    empty = tmp_path / "empty.geojson"
    empty.write_text('{"type": "FeatureCollection", "features": []}', encoding="utf-8")
    for args in (
        ("admin", "import", str(not_vector)),
        ("admin", "import", str(tmp_path / "missing.gpkg")),
        ("land", "import-cadastre", str(not_vector)),
        ("land", "import-cadastre", str(empty)),
        ("land", "import-cadastre", str(tmp_path / "missing.gpkg")),
    ):
        result = run_ioc(*args)
        assert result.returncode == 2, (args, result.stderr)
        assert "Traceback" not in result.stderr and result.stderr.strip(), args
    result = run_ioc("land", "alerts", "--since", "last week")
    assert result.returncode == 2 and "last week" in result.stderr


@pytest.mark.postgis
def test_demo_no_serve_loads_units(run_ioc, own_database_url) -> None:
    # into a database of the module's own: the demo commits a whole province (units, articles,
    # posts, alerts) that later modules' counts of a day or of new alerts would otherwise include
    result = run_ioc("demo", "--no-serve", env={"IOC_DATABASE_URL": own_database_url}, timeout=900)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "administrative units" in result.stdout

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
    assert ("db",) in paths and ("db", "up") in paths and ("admin", "import") in paths and ("demo",) in paths
    for path in paths:
        result = runner.invoke(cli, [*path, "--help"])
        assert result.exit_code == 0, (path, result.output)
        assert "Usage:" in result.output


def run(*args: str, **env: str) -> subprocess.CompletedProcess:
    full = {k: v for k, v in os.environ.items() if not k.startswith("IOC_")}
    full.update(env)
    return subprocess.run([sys.executable, "-m", "ioc.cli", *args], capture_output=True, text=True,
                          env=full, cwd=REPO, timeout=120)


def test_unknown_command_and_bad_option() -> None:
    result = run("frobnicate")
    assert result.returncode == 2 and "No such command" in result.stderr
    result = run("admin", "import")
    assert result.returncode == 2 and "Missing argument" in result.stderr


def test_database_not_running_is_one_sentence(tmp_path: Path) -> None:
    result = run("admin", "load-reference", IOC_STATE_DIR=str(tmp_path))
    assert result.returncode == 2
    assert result.stderr.strip() == "error: The embedded PostGIS is not running; start it with `ioc db up`."


def test_bad_setting_is_reported(tmp_path: Path) -> None:
    result = run("db", "status", IOC_DB_PORT="not-a-port", IOC_STATE_DIR=str(tmp_path))
    assert result.returncode == 2
    assert "invalid setting" in result.stderr and "db_port" in result.stderr


@pytest.mark.postgis
def test_demo_no_serve_loads_units(run_ioc) -> None:
    result = run_ioc("demo", "--no-serve", timeout=900)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "administrative units" in result.stdout

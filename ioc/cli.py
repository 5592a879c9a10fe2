"""The ``ioc`` console script: one command line over every package.

Each package owns its commands (``gis.cli``, ``gis.cli_land``, ``nlp.cli``, ``crawler.cli``,
``api.cli``); this module only assembles them and turns user-facing errors into one line and a
non-zero exit.
"""

from __future__ import annotations

import importlib
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

import click

from gis.settings import DatabaseSettings, StateSettings

REPO_DATA_DIR = Path(__file__).resolve().parents[1] / "data"

# (module, attribute) of each package's click commands, imported when the command is used
COMMANDS = (
    ("gis.cli", "db"),
    ("gis.cli", "admin"),
    ("gis.cli_land", "land"),
    ("nlp.cli", "nlp"),
    ("nlp.cli", "digest"),
    ("crawler.cli", "crawl"),
    ("crawler.cli", "posts"),
    ("api.cli", "serve"),
    ("ioc.demo", "demo"),
    ("ioc.run", "run"),
    ("ioc.run", "jobs"),
    ("ioc.delivery", "delivery"),
)

# root error classes of the packages: shown as one line; exit code 2 (a user error: bad file,
# argument or setting) unless the class says otherwise with ``exit_code`` (gis.errors.
# DatabaseError: 1, the database is not there, which is not the user's input)
USER_ERROR_CLASSES = (
    ("gis.errors", "IocError"),
    ("nlp.errors", "NLPError"),
    ("crawler.errors", "CrawlerError"),
    ("api.errors", "ApiError"),
)


@dataclass
class AppContext:
    """What commands need, read once from the environment at the edge."""

    db_settings: DatabaseSettings = field(default_factory=DatabaseSettings)
    state: StateSettings = field(default_factory=StateSettings)
    data_dir: Path = field(
        default_factory=lambda: Path(os.environ.get("IOC_DATA_DIR", REPO_DATA_DIR))
    )
    _engine: object = None

    @property
    def state_dir(self) -> Path:
        return self.state.state_dir

    def database_url(self) -> str:
        from gis.database import database_url

        return database_url(self.db_settings)

    def log_config(self) -> dict | None:
        """uvicorn's ``log_config`` when IOC_LOG_FORMAT/IOC_LOG_LEVEL ask for ioc's log lines
        (so `ioc serve`'s worker processes log like the command); None = uvicorn's own."""
        from ioc.logging import logging_requested, uvicorn_log_config

        return uvicorn_log_config() if logging_requested() else None

    def engine(self):
        if self._engine is None:
            from gis.db.session import make_engine

            self._engine = make_engine(self.database_url())
        return self._engine


def _user_error_types() -> tuple[type[BaseException], ...]:
    return tuple(
        getattr(importlib.import_module(module_name), attr)
        for module_name, attr in USER_ERROR_CLASSES
    )


class IocGroup(click.Group):
    """Loads each package's commands lazily so `ioc --help` stays fast."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(attr for _module, attr in COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        for module_name, attr in COMMANDS:
            if attr == cmd_name:
                return getattr(importlib.import_module(module_name), attr)
        return None


@click.group(cls=IocGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="ioc-monitor")
@click.pass_context
def cli(ctx: click.Context) -> None:
    """ioc-monitor: land and internet monitoring for a provincial operations centre.

    Configuration comes from IOC_* environment variables or a .env file (see .env.example).
    """
    ctx.obj = AppContext()


def main(argv: list[str] | None = None) -> None:
    try:
        from ioc.logging import setup_observability  # IOC_LOG_FORMAT; metrics of ioc run/serve

        args = sys.argv[1:] if argv is None else argv
        setup_observability(
            next((a for a in args if not a.startswith("-")), None), StateSettings().state_dir
        )
        cli.main(args=argv, prog_name="ioc", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except _user_error_types() as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(getattr(exc, "exit_code", 2))
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        sys.exit(130)
    except SystemExit:
        raise
    except Exception as exc:
        # pydantic validation of IOC_* settings is a user error too
        if type(exc).__name__ == "ValidationError":
            first = str(exc).splitlines()
            click.echo(f"error: invalid setting: {' '.join(first[1:3]).strip()}", err=True)
            sys.exit(2)
        raise


if __name__ == "__main__":
    main()

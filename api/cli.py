"""``ioc serve``: the OGC API (pygeoapi + our provider) under uvicorn[standard]."""

from __future__ import annotations

import os

import click


def _database_url() -> str:
    ctx = click.get_current_context()
    obj = ctx.obj
    if obj is not None and hasattr(obj, "database_url"):
        return obj.database_url()
    url = os.environ.get("IOC_DATABASE_URL")
    if not url:
        raise click.UsageError("No database: set IOC_DATABASE_URL or run through `ioc serve`.")
    return url


@click.command()
@click.option(
    "--host", default=None, help="Interface to listen on  [default: 127.0.0.1, IOC_API_HOST]"
)
@click.option("--port", default=None, type=int, help="Port  [default: 5000, IOC_API_PORT]")
@click.option(
    "--workers",
    default=None,
    type=click.IntRange(1, 64),
    help="uvicorn worker processes  [default: 1, IOC_API_WORKERS]",
)
def serve(host: str | None, port: int | None, workers: int | None) -> None:
    """Serve the OGC API (Features, Tiles, Processes), the digest and review writes."""
    import uvicorn

    from api.errors import ConfigError
    from api.settings import ApiSettings

    overrides = {
        k: v for k, v in {"host": host, "port": port, "workers": workers}.items() if v is not None
    }
    settings = ApiSettings(**overrides)
    url = _database_url()
    from gis.db.session import check_connection

    check_connection(url)
    from api.auth import TokenStore

    tokens = TokenStore.from_settings(settings.tokens, settings.tokens_file)
    click.echo(
        f"serving the OGC API on {settings.public_url()} ({settings.workers} worker(s); "
        f"{len(tokens.tokens)} API token(s) for writes{'; reads protected' if settings.protect_reads else ''})"
    )
    # workers re-create the app from the environment (uvicorn needs an import string)
    os.environ["IOC_API_DATABASE_URL"] = url
    for key, value in overrides.items():
        os.environ[f"IOC_API_{key.upper()}"] = str(value)
    # the ioc command's log format for the workers too (ctx.obj.log_config(), when it has one)
    log_config = getattr(click.get_current_context().obj, "log_config", None)
    log_config = log_config() if callable(log_config) else None
    try:
        uvicorn.run(
            "api.app:app_from_environment",
            factory=True,
            host=settings.host,
            port=settings.port,
            workers=settings.workers,
            log_level="info" if settings.access_log else "warning",
            access_log=settings.access_log,
            http="httptools",
            loop="uvloop",
            **({"log_config": log_config} if log_config else {}),
        )
    except ConfigError as exc:  # a bad setting: a user error, exit 2 (README)
        error = click.ClickException(str(exc))
        error.exit_code = 2
        raise error from exc

"""Command line of the nlp package: ``ioc nlp score|train|retrain`` and ``ioc digest``.

Commands that need the database take it from the click context object (``ioc.cli.AppContext``,
used duck-typed: ``.engine()``, ``.state_dir``); nlp never imports ioc or gis.
"""

from __future__ import annotations

import datetime as dt
import json
import sys
import time
from pathlib import Path
from typing import Any, TextIO

import click

from nlp.settings import DEFAULT_MODEL_DIR, NLPSettings

DEFAULT_STATE_DIR = Path(".state")


def _app() -> Any:
    ctx = click.get_current_context(silent=True)
    return ctx.find_root().obj if ctx is not None else None


def _state_dir() -> Path:
    app = _app()
    return Path(getattr(app, "state_dir", None) or DEFAULT_STATE_DIR)


def _registry_dir(settings: NLPSettings, state_dir: Path | None = None) -> Path:
    return settings.registry_dir or ((state_dir or _state_dir()) / "nlp-models")


def _engine() -> Any:
    app = _app()
    if app is None or not hasattr(app, "engine"):
        raise click.ClickException(
            "this command needs the database: run it as `ioc ...` (no app context found)"
        )
    return app.engine()


def resolve_model_path(
    explicit: Path | None, settings: NLPSettings, state_dir: Path | None = None
) -> Path | None:
    """Explicit path, else the setting, else the registry's current model, else None (shipped).

    ``state_dir``: where the registry lives when ``IOC_NLP_REGISTRY_DIR`` is unset (default:
    the click app's state dir; callers outside a click command pass it)."""
    if explicit:
        return explicit
    if settings.model_path:
        return settings.model_path
    from nlp.registry import ModelRegistry

    try:
        cur = ModelRegistry(_registry_dir(settings, state_dir)).current_model_path()
    except (OSError, ValueError):
        cur = None
    return cur if cur and cur.exists() else None


@click.group("nlp")
def nlp() -> None:
    """Vietnamese news NLP: sentiment, topics and places; model training."""


def _iter_batches(stream: TextIO, size: int):
    batch: list[tuple[int, str]] = []
    for n, line in enumerate(stream, start=1):
        if not line.strip():
            continue
        batch.append((n, line))
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


@nlp.command("score")
@click.option(
    "--input", "input_", default="-", show_default=True, help="JSON-lines file, or - for stdin."
)
@click.option("--output", default="-", show_default=True, help="JSON-lines file, or - for stdout.")
@click.option(
    "--genre",
    type=click.Choice(["auto", "article", "post"]),
    default="auto",
    show_default=True,
    help="Force every record's genre; auto: the record's genre/kind field, else its form.",
)
@click.option(
    "--model",
    "model_path",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="Model file (default: the registry's current model, else the shipped one).",
)
@click.option(
    "--gazetteer",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="Gazetteer JSON (default: IOC_NLP_GAZETTEER_PATH or data/admin/gazetteer_hanam.json).",
)
@click.option("--batch-size", default=256, show_default=True, type=click.IntRange(1, 100_000))
@click.option("--no-ner", is_flag=True, help="Do not use underthesea NER to check place mentions.")
@click.option(
    "--no-encoder",
    is_flag=True,
    help="TF-IDF-only heads (the fallback used where the encoder cannot run).",
)
def score_cmd(
    input_: str,
    output: str,
    genre: str,
    model_path: Path | None,
    gazetteer: Path | None,
    batch_size: int,
    no_ner: bool,
    no_encoder: bool,
) -> None:
    """Score news articles and citizens' posts: each input line {"id", "text", ...} gets
    "sentiment", "topic", "places", "genre" and "confidence".

    A malformed line gives an output line {"line": N, "error": "..."}; the batch goes on. Exit
    status 0 when at least one line was scored (or the input was empty), 1 when every line
    failed or was not scored, 2 for a user error (unreadable input, unknown model file).
    """
    from nlp.errors import NLPError
    from nlp.scoring import load_scorer

    settings = NLPSettings()

    def user_error(message: str) -> click.ClickException:
        exc = click.ClickException(message)
        exc.exit_code = 2
        return exc

    if input_ != "-" and not Path(input_).is_file():
        raise user_error(f"input {input_} does not exist or is not a file")
    try:
        fin = sys.stdin if input_ == "-" else open(input_, encoding="utf-8", errors="replace")  # noqa: SIM115
    except OSError as exc:
        raise user_error(f"input {input_} cannot be read: {exc.strerror}") from exc
    try:
        scorer = load_scorer(
            resolve_model_path(model_path, settings),
            gazetteer or settings.gazetteer_path,
            use_ner=not no_ner,
            state_dir=_state_dir(),
            use_encoder=settings.use_encoder and not no_encoder,
        )
    except NLPError as exc:
        if fin is not sys.stdin:
            fin.close()
        raise user_error(str(exc)) from exc
    out_path = None if output == "-" else Path(output)
    tmp = out_path.with_name(out_path.name + ".tmp") if out_path else None
    try:
        fout = sys.stdout if out_path is None else open(tmp, "w", encoding="utf-8")  # noqa: SIM115
    except OSError as exc:
        if fin is not sys.stdin:
            fin.close()
        raise user_error(f"output {output} cannot be written: {exc.strerror}") from exc
    n_in = n_ok = n_bad = 0
    t0 = time.perf_counter()
    try:
        for batch in _iter_batches(fin, batch_size):
            records: list[Any] = []
            slots: list[tuple[int, Any]] = []
            for n, line in batch:
                n_in += 1
                try:
                    rec = json.loads(line)
                except json.JSONDecodeError as exc:
                    slots.append(
                        (
                            n,
                            {
                                "line": n,
                                "error": f"line {n} is not valid JSON: {exc.msg} at column {exc.colno}",
                            },
                        )
                    )
                    continue
                except RecursionError:
                    slots.append(
                        (n, {"line": n, "error": f"line {n} is nested too deeply to read"})
                    )
                    continue
                if not isinstance(rec, dict):
                    slots.append((n, {"line": n, "error": f"line {n} is not a JSON object"}))
                    continue
                slots.append((n, None))
                records.append(rec)
            scored = iter(scorer.score_records(records, genre=genre)) if records else iter(())
            for n, ready in slots:
                rec = ready if ready is not None else next(scored)
                if "sentiment" in rec:
                    n_ok += 1
                else:
                    n_bad += 1
                    if "error" in rec and ready is None:
                        rec = {"line": n, **rec, "error": f"line {n}: {rec['error']}"}
                fout.write(json.dumps(rec, ensure_ascii=False) + "\n")
            fout.flush()
            if out_path is not None:
                click.echo(f"scored {n_in} lines ({n_ok} ok, {n_bad} not scored/errors)", err=True)
    finally:
        if fin is not sys.stdin:
            fin.close()
        if fout is not sys.stdout:
            fout.close()
    if out_path is not None and tmp is not None:
        tmp.replace(out_path)
    click.echo(
        f"{n_in} lines: {n_ok} scored, {n_bad} not scored or errors "
        f"({time.perf_counter() - t0:.1f} s, model {scorer.model_version}, features {scorer.features}"
        + (
            f": {scorer.encoder_reason}"
            if scorer.features == "tfidf" and scorer.encoder_reason
            else ""
        )
        + ")",
        err=True,
    )
    if n_in and not n_ok:
        click.echo("error: no line was scored", err=True)
        sys.exit(1)


@nlp.command("train")
@click.option(
    "--data-dir",
    type=click.Path(path_type=Path, file_okay=False),
    default=None,
    help="The shared data folder holding sentiment/news-dev (default ../shared/data).",
)
@click.option(
    "--output-dir",
    type=click.Path(path_type=Path, file_okay=False),
    default=DEFAULT_MODEL_DIR,
    show_default=True,
    help="Where sentiment-<version>.joblib is written.",
)
@click.option(
    "--version", "version", default=None, help="Model version (default: today's date, YYYY.MM.DD)."
)
@click.option(
    "--cv/--no-cv",
    default=False,
    help="tfidf recipe: also report 10-fold cross-validation on news-dev.",
)
@click.option(
    "--recipe",
    type=click.Choice(["genre", "tfidf"]),
    default="genre",
    show_default=True,
    help="genre: article and post heads, encoder + TF-IDF fallback (format 2); tfidf: the format-1 news model.",
)
def train_cmd(
    data_dir: Path | None, output_dir: Path, version: str | None, cv: bool, recipe: str
) -> None:
    """Train the sentiment + topic model: article heads on news-dev and its unlabelled news, post
    heads on the public comment sets (figures: benchmarks/nlp_sentiment.py, the model card)."""
    from nlp.errors import NLPError
    from nlp.training import train_genre_release, train_release

    settings = NLPSettings()
    data_dir = data_dir or settings.data_dir
    echo = lambda m: click.echo(m, err=True)  # noqa: E731
    try:
        if recipe == "genre":
            path, report = train_genre_release(
                data_dir, output_dir, version=version, state_dir=_state_dir(), echo=echo
            )
        else:
            path, report = train_release(data_dir, output_dir, version=version, cv=cv, echo=echo)
    except NLPError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(json.dumps({"model": str(path), **report}, ensure_ascii=False, indent=1))


@nlp.command("retrain")
@click.option(
    "--data-dir",
    type=click.Path(path_type=Path, file_okay=False),
    default=None,
    help="The shared data folder holding sentiment/news-dev (default ../shared/data).",
)
@click.option(
    "--registry",
    "registry_dir",
    type=click.Path(path_type=Path, file_okay=False),
    default=None,
    help="Model registry folder (default <state dir>/nlp-models).",
)
@click.option(
    "--tolerance",
    default=0.0,
    show_default=True,
    type=float,
    help="Promote if reference macro-F1 >= current - tolerance.",
)
@click.option(
    "--rollback", is_flag=True, help="Make the previously promoted model current again and stop."
)
@click.option("--status", is_flag=True, help="Print the registry state and stop.")
@click.option(
    "--recipe",
    type=click.Choice(["genre", "tfidf"]),
    default="genre",
    show_default=True,
    help="genre: article and post heads with the encoder (format 2); tfidf: the format-1 news model.",
)
def retrain_cmd(
    data_dir: Path | None,
    registry_dir: Path | None,
    tolerance: float,
    rollback: bool,
    status: bool,
    recipe: str,
) -> None:
    """Retrain with staff corrections; promote only if not worse on the frozen reference sets."""
    from nlp.errors import NLPError
    from nlp.registry import ModelRegistry

    settings = NLPSettings()
    registry = ModelRegistry(registry_dir or _registry_dir(settings))
    if status:
        click.echo(
            json.dumps(
                {"current": registry.current_version, "history": registry.history()},
                ensure_ascii=False,
                indent=1,
            )
        )
        return
    if rollback:
        try:
            v = registry.rollback()
        except NLPError as exc:
            raise click.ClickException(str(exc)) from exc
        click.echo(f"current model is now {v}")
        return
    from nlp.feedback import load_corrections, mark_used
    from nlp.registry import retrain
    from nlp.sentiment import load_news_dev

    try:
        labelled, unlabelled = load_news_dev(data_dir or settings.data_dir)
    except NLPError as exc:
        raise click.ClickException(str(exc)) from exc
    engine = _engine()
    with engine.connect() as conn:
        corrections = load_corrections(conn)
    by_genre = {g: sum(c["genre"] == g for c in corrections) for g in ("article", "post")}
    click.echo(
        f"{len(corrections)} corrections ({by_genre['article']} of articles, {by_genre['post']} "
        "of posts); training (takes a few minutes)...",
        err=True,
    )
    if recipe == "genre":
        from nlp.registry import retrain_genre

        result = retrain_genre(
            registry,
            data_dir or settings.data_dir,
            corrections,
            state_dir=_state_dir(),
            tolerance=tolerance,
            echo=lambda m: click.echo(m, err=True),
            use_encoder=settings.use_encoder,
        )
    else:
        # the format-1 news model has no post head: only the articles' corrections train it
        if by_genre["post"]:
            click.echo(
                f"recipe tfidf: the {by_genre['post']} corrections of posts are left for the "
                "genre recipe",
                err=True,
            )
        corrections = [c for c in corrections if c["genre"] == "article"]
        result = retrain(registry, labelled, unlabelled, corrections, tolerance=tolerance)
    if result.promoted and corrections:
        with engine.begin() as conn:
            mark_used(conn, [c["feedback_id"] for c in corrections], f"sentiment-{result.version}")
    click.echo(json.dumps(result.as_dict(), ensure_ascii=False, indent=1))
    if not result.promoted:
        click.echo(result.reason, err=True)


@nlp.command("correct")
@click.argument("item")
@click.argument("label")
@click.option(
    "--field",
    type=click.Choice(["sentiment", "topic"]),
    default="sentiment",
    show_default=True,
    help="What is corrected: the sentiment label or the topic.",
)
@click.option(
    "--reviewer", default=None, help="Who corrects it (default: the system user running ioc)."
)
@click.option("--note", default=None, help="Why (at most 2,000 characters).")
def correct_cmd(item: str, label: str, field: str, reviewer: str | None, note: str | None) -> None:
    """Correct the label of an article or a citizen's post; ``ioc nlp retrain`` trains the
    article head with the corrections of articles and the post head with those of posts.

    ITEM is article:ID or post:ID (the id the articles and posts collections publish), or the
    item's URL. LABEL is negative, neutral or positive (--field topic: one of the 12 topics).
    Stored with an audit row (channel cli, the system user) like the API's corrections.
    """
    import getpass

    from nlp.errors import InputError
    from nlp.feedback import record_correction, resolve_item

    user = getpass.getuser()
    engine = _engine()
    try:
        with engine.begin() as conn:
            genre, item_id = resolve_item(conn, item)
            feedback_id = record_correction(
                conn,
                item_id,
                label,
                reviewer or user,
                note,
                field,
                genre=genre,
                actor=user,
                role=None,
                channel="cli",
            )
    except InputError as exc:  # an unknown item or label: a user error
        error = click.ClickException(str(exc))
        error.exit_code = 2
        raise error from exc
    click.echo(
        json.dumps(
            {"id": feedback_id, "genre": genre, f"{genre}_id": item_id, field: label},
            ensure_ascii=False,
        )
    )


@click.command("digest")
@click.option("--date", "date_", required=True, help="Day of the digest, YYYY-MM-DD.")
@click.option(
    "--format", "fmt", type=click.Choice(["html", "pdf", "json"]), default="html", show_default=True
)
@click.option(
    "--out",
    "out",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="Output file (default digest-YYYY-MM-DD.<format>; - for stdout with html/json).",
)
@click.option(
    "--days",
    default=7,
    show_default=True,
    type=click.IntRange(1, 90),
    help="Days of history shown.",
)
@click.option(
    "--feedback-url",
    default="/digest/feedback",
    show_default=True,
    help="Where the correction form POSTs (the API's endpoint).",
)
def digest(date_: str, fmt: str, out: Path | None, days: int, feedback_url: str) -> None:
    """Daily digest of the news about the province: HTML, PDF or JSON."""
    from nlp.digest import build_digest, render_html, render_pdf
    from nlp.errors import NLPError

    try:
        day = dt.date.fromisoformat(date_)
    except ValueError as exc:
        raise click.BadParameter(
            f"{date_!r} is not a date in YYYY-MM-DD form", param_hint="--date"
        ) from exc
    engine = _engine()
    with engine.connect() as conn:
        data = build_digest(conn, day, days=days)
    data["feedback_url"] = feedback_url
    try:
        if fmt == "json":
            payload: bytes = json.dumps(data, ensure_ascii=False, indent=1, default=str).encode(
                "utf-8"
            )
        elif fmt == "html":
            payload = render_html(data).encode("utf-8")
        else:
            payload = render_pdf(data)
    except NLPError as exc:
        raise click.ClickException(str(exc)) from exc
    if out is not None and str(out) == "-":
        if fmt == "pdf":
            raise click.BadParameter("PDF cannot go to stdout: give a file", param_hint="--out")
        sys.stdout.buffer.write(payload)
        return
    out = out or Path(f"digest-{day.isoformat()}.{fmt}")
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_bytes(payload)
    tmp.replace(out)
    click.echo(
        f"wrote {out} ({len(payload):,} bytes; {data['totals']['articles']} articles on {day})",
        err=True,
    )

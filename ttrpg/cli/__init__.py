"""The ``ttrpg`` command line: thin typer commands over library functions.

One module per command group. Command modules import only typer at import time and pull
in the library inside the command body, so ``ttrpg --help`` answers without importing
langgraph or openai (each takes a second or more to import).

Every expected error is a :class:`ttrpg.exceptions.TTRPGError`: :func:`main` prints it as
one or two lines on stderr and exits with its code (0 ok, 1 failure, 2 usage/config,
130 interrupted).

:func:`main` sets umask 077 first: everything a command creates (``$TTRPG_HOME``, session
logs, exports, worker logs, the embedded Redis's files) holds whispers, which are secrets,
so it is readable by the user alone. Processes it starts (workers, Redis) inherit it.
"""

from __future__ import annotations

import os
import sys

import typer

from ttrpg import __version__
from ttrpg.cli import (
    batch,
    bench,
    characters,
    compact,
    logs,
    memory,
    overreach,
    play,
    server,
    sessions,
    worker,
    workers,
)

app = typer.Typer(
    name="ttrpg",
    help="Run a Lasers & Feelings game with a human DM and 1-4 AI players; sessions never lose a turn.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    add_completion=False,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"ttrpg {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Show the version and exit."),
) -> None:
    """Run a Lasers & Feelings game with a human DM and 1-4 AI players; sessions never lose a turn."""


app.command()(play.play)
app.command()(play.resume)
app.command()(play.demo)
app.command()(sessions.sessions)
app.command()(sessions.status)
app.command()(compact.compact)
app.add_typer(server.app, name="redis")
app.add_typer(characters.app, name="characters")
app.add_typer(memory.app, name="memory")
app.add_typer(logs.app, name="logs")
app.command()(logs.watch)
app.command()(logs.report)
app.command("worker")(worker.worker)
app.add_typer(workers.app, name="workers")
app.add_typer(batch.app, name="batch")
app.add_typer(overreach.app, name="overreach")
app.command()(bench.bench)
app.command()(bench.drill)


def private_umask() -> None:
    """Files and directories created from here on are the user's alone (umask 077)."""
    os.umask(os.umask(0o077) | 0o077)


def report_error(exc: BaseException) -> int:
    """Print an expected error as one or two lines on stderr; return its exit code."""
    from rich.text import Text

    from ttrpg.console import clean_text, err, text
    from ttrpg.exceptions import TTRPGError

    if isinstance(exc, TTRPGError):  # messages may quote servers, files and ids: text, never markup
        err().print(Text.assemble(("Error: ", "bold red"), clean_text(str(exc))), soft_wrap=True)
        if exc.hint:
            err().print(text(exc.hint), soft_wrap=True)
        return exc.exit_code
    raise exc


def main(argv: list[str] | None = None) -> None:
    from ttrpg.exceptions import TTRPGError

    private_umask()
    try:
        app(args=argv, prog_name="ttrpg")
    except TTRPGError as exc:
        sys.exit(report_error(exc))
    except KeyboardInterrupt:
        sys.exit(130)

"""``ttrpg memory query | list | bench``: what the AI players remember in a campaign.

Only typer is imported at module level so ``ttrpg --help`` stays fast; the library is
imported inside each command. ``--json`` prints one JSON document on stdout; tables and
messages for humans go to stdout / stderr through rich.
"""

from __future__ import annotations

# Library imports are deferred into each command: `ttrpg --help` must not import langgraph,
# openai, rq or redis (a second or more of start-up); see ttrpg/cli/__init__.py.
from typing import List, Optional

import typer

app = typer.Typer(help="Search and list what the AI players remember in a campaign.", no_args_is_help=True,
                  rich_markup_mode=None, add_completion=False)

_SCOPE_HELP = "party, player:<pid> or character:<pid>; repeat for several (default: every scope)."


@app.command("query")
def query_cmd(
    campaign: str = typer.Argument(..., help="Campaign id."),
    text: str = typer.Argument(..., help='What to look for, e.g. "what do we know about Galvin?"'),
    scope: Optional[List[str]] = typer.Option(None, "--scope", "-s", help=_SCOPE_HELP),
    limit: int = typer.Option(10, "--limit", "-n", min=1, max=1000, help="Most results to show."),
    json_out: bool = typer.Option(False, "--json", help="Print JSON on stdout."),
) -> None:
    """Memories relevant to TEXT, best first (relevance x confidence), with where they came from."""
    from ttrpg.backend.connection import get_redis
    from ttrpg.console import err, print_json
    from ttrpg.memory.recall import NOTHING_KNOWN, query

    rows = query(get_redis(), campaign, text, scopes=list(scope) if scope else None, limit=limit,
                 token_budget=None)
    if json_out:
        print_json(rows)
        return
    if not rows:
        err().print(NOTHING_KNOWN, markup=False)
        return
    _table(rows, ("confidence", "scope", "learned", "text"))


@app.command("list")
def list_cmd(
    campaign: str = typer.Argument(..., help="Campaign id."),
    scope: Optional[str] = typer.Option(None, "--scope", "-s", help="Only this scope: party, player:<pid> or "
                                                                     "character:<pid>."),
    limit: int = typer.Option(100, "--limit", "-n", min=1, max=10000, help="Most memories to show."),
    json_out: bool = typer.Option(False, "--json", help="Print JSON on stdout."),
) -> None:
    """A campaign's memories, newest first (superseded ones included, marked)."""
    from ttrpg.backend.connection import get_redis
    from ttrpg.console import err, print_json, text
    from ttrpg.memory.recall import list_memories

    rows = list_memories(get_redis(), campaign, scope=scope, limit=limit)
    if json_out:
        print_json(rows)
        return
    if not rows:
        err().print(text(f"No memories in campaign {campaign}."), soft_wrap=True)
        return
    _table(rows, ("id", "scope", "kind", "status", "confidence", "learned", "text"))


@app.command("bench")
def bench_cmd(
    n: int = typer.Option(10000, "--memories", "-n", min=1, help="Synthetic memories to load."),
    queries: int = typer.Option(50, "--queries", "-q", min=1, help="Queries to time."),
    json_out: bool = typer.Option(False, "--json", help="Print JSON on stdout."),
) -> None:
    """Time memory queries against N synthetic memories (a throwaway campaign, removed after)."""
    from ttrpg.backend.connection import get_redis
    from ttrpg.console import err, print_json
    from ttrpg.memory.benchmark import bench_query

    figures = bench_query(get_redis(), n=n, queries=queries)
    if json_out:
        print_json(figures)
        return
    err().print(f"{figures['queries']} queries over {figures['n']} memories: median {figures['median_ms']} ms, "
                f"p95 {figures['p95_ms']} ms, max {figures['max_ms']} ms (load {figures['load_s']} s)",
                markup=False)


def _table(rows: list[dict], cols: tuple[str, ...]) -> None:
    """Memories as a table: their texts came from models and the DM, so every cell is a
    cleaned ``Text`` (no markup, no control characters; newlines kept)."""
    from rich.table import Table

    from ttrpg.console import cell, out

    table = Table()
    for col in cols:
        table.add_column(col, overflow="fold")
    for r in rows:
        cells = []
        for col in cols:
            v = r.get(col)
            cells.append(cell(f"{v:.2f}" if col == "confidence" and isinstance(v, (int, float)) else v))
        table.add_row(*cells)
    out().print(table)

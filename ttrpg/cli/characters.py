"""``ttrpg characters``: check a party file before a game starts.

Why a command of its own: a DM edits characters.json by hand; finding a typo here, with
the field path and the allowed values, beats finding it when the session starts.
Only typer is imported at module level so ``ttrpg --help`` stays fast.
"""

from __future__ import annotations

# Library imports are deferred into each command: `ttrpg --help` must not import langgraph,
# openai, rq or redis (a second or more of start-up); see ttrpg/cli/__init__.py.
from pathlib import Path

import typer

app = typer.Typer(help="Check party files (characters.json).", no_args_is_help=True,
                  rich_markup_mode=None, add_completion=False)


@app.command()
def check(file: Path = typer.Argument(..., help="The characters.json to validate.")) -> None:
    """Validate FILE and print a short summary of the party (exit 2 if it is invalid)."""
    from ttrpg.console import err
    from ttrpg.game.characters import load_party

    party = load_party(file)
    ship = party.ship
    err().print(f"{file}: OK, {len(party.players)} player(s); ship {ship.name} "
                f"({', '.join(ship.strengths)}; problem: {ship.problem})", markup=False, soft_wrap=True)
    for member in party.players:
        c = member.character
        err().print(f"  {member.id}: {c.name}, {c.style} {c.role}, number {c.number}, goal {c.goal} "
                    f"(played by {member.player.name})", markup=False, soft_wrap=True)

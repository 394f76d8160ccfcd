"""What the DM sees: the story on stdout, status on stderr.

:class:`StoryUI` renders each phase as it completes (narration and character lines as
panels, dice as a table, a live line per AI player while it thinks, a recap on resume).
Everything a model, a file or the DM wrote is printed as text (:func:`ttrpg.console.text`):
never as markup, with terminal escape sequences removed.
"""

from __future__ import annotations

from rich.live import Live
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from ttrpg.console import clean_text, err, out, text
from ttrpg.vocabulary import QUESTIONS, phase_label, question_words


def party_table(party: dict) -> Table:
    ship = party.get("ship") or {}
    title = Text(f"The crew of {clean_text(ship.get('name', 'the ship'))} "
                 f"({clean_text(', '.join(ship.get('strengths') or []))}; "
                 f"problem: {clean_text(ship.get('problem', ''))})")
    table = Table(title=title)
    for col in ("id", "player", "character", "style", "role", "number", "goal"):
        table.add_column(col)
    for p in party.get("players", []):
        c = p["character"]
        table.add_row(*(text(v) for v in (p["id"], (p.get("player") or {}).get("name", ""), c["name"], c["style"],
                                          c["role"], str(c["number"]), c.get("goal", ""))))
    return table


class StoryUI:
    def __init__(self, verbose: bool = True):
        self.verbose = verbose
        self.names: dict[str, str] = {}
        self._live: Live | None = None

    def _name(self, pid: str) -> str:
        return self.names.get(pid, pid)

    def session_header(self, driver, values: dict) -> None:
        party = values.get("party") or {}
        self.names = {p["id"]: p["character"]["name"] for p in party.get("players", [])}
        llm = values.get("llm") or {}
        mode = "offline model (no API key needed)" if llm.get("offline") else f"model {llm.get('model')}"
        err().print(Text.assemble(("Session ", "bold"), clean_text(driver.session_id), " · campaign ",
                                  clean_text(driver.meta.get("campaign_id") or ""), " · AI players: ", clean_text(mode)))
        if party:
            out().print(party_table(party))

    def recap(self, values: dict, pending: list[str]) -> None:
        """On resume: the turn so far, then the pending question is asked again."""
        if not values:
            return
        turn = values.get("turn", 1)
        where = phase_label(pending[0]) if pending else "the end"
        out().rule(Text(f"Resuming turn {turn} at {where}"))
        if values.get("narration") and pending and pending[0] not in ("ask_narration",):
            out().print(Panel(text(values["narration"]), title="DM", border_style="cyan"))
            c = values.get("consensus") or {}
            if c.get("state"):
                out().print(text(f"  Table: {c.get('state')} on “{c.get('plan', '')}”", "dim italic"))
            for pid, a in (values.get("actions") or {}).items():
                out().print(text(f"  {self._name(pid)}: {a.get('text', '')}", "green"))
            for r in values.get("rolls") or []:
                res = r.get("result") or {}
                out().print(text(f"  {self._name(r['player'])} rolled {' '.join(map(str, r.get('dice') or []))} "
                                 f"({r.get('approach', '').upper()}{', ' + res['band'] if res else ''})", "magenta"))
            if values.get("outcome"):
                out().print(Panel(text(values["outcome"]), title="Outcome", border_style="cyan"))
        elif values.get("history"):
            out().print(text(f"  Last turn: {values['history'][-1]}", "dim"))

    def question(self, question: dict, state: dict) -> None:
        self.progress_done()
        kind = question["kind"]
        if kind == "adjudication":  # the DM sees what the characters attempt, then rules
            for pid, a in (state.get("actions") or {}).items():
                tag = " (auto-corrected)" if a.get("autocorrected") else ""
                out().print(Panel(text(a["text"]), title=text(f"{self._name(pid)} ({pid}){tag}"), border_style="green"))
        if self.verbose:
            phase = question.get("phase") if kind == "intervention" else QUESTIONS.get(kind, (None, kind))[1]
            err().print(text(f"turn {question.get('turn', state.get('turn'))} · {phase_label(phase)}: the DM is "
                             f"asked {question_words(kind)}", "dim"))

    def progress(self, players: dict[str, dict]) -> None:
        """A live line per AI player while its job runs: thinking, retrying, done; elapsed time."""
        if not self.verbose:
            return
        table = Table.grid(padding=(0, 2))
        for pid, p in players.items():
            status = p.get("status", "")
            style = {"done": "green", "failed": "red", "retrying": "yellow"}.get(status, "cyan")
            detail = p.get("detail") or ""
            table.add_row(text(f"  {self._name(pid)}"), text(status, style),
                          text(f"{float(p.get('elapsed_s') or 0):.1f} s"), text(detail, "dim"))
        if self._live is None:
            self._live = Live(table, console=err(), refresh_per_second=4, transient=True)
            self._live.start()
        else:
            self._live.update(table)

    def progress_done(self) -> None:
        if self._live is not None:
            self._live.stop()
            self._live = None

    def step(self, node: str, values: dict, state: dict) -> None:
        self.progress_done()
        turn = state.get("turn")
        if node == "dm_narration" and values.get("narration"):
            out().rule(Text(f"Turn {turn}"))
            out().print(Panel(text(values["narration"]), title="DM", border_style="cyan"))
        elif node == "party_discussion" and values.get("discussion") and self.verbose:
            for t in values["discussion"]:
                out().print(text(f"  [{self._name(t['player'])}'s player, round {t['round']}] {t.get('say', '')}",
                                 "dim"))
            c = values.get("consensus") or {}
            dissent = f" (dissent: {', '.join(map(self._name, c['dissent']))})" if c.get("dissent") else ""
            out().print(text(f"  Table: {c.get('state')} on “{c.get('plan', '')}”{dissent}", "dim italic"))
        elif node == "dice_resolution" and values.get("rolls"):
            table = Table(title="Dice")
            for col in ("character", "approach", "number", "dice", "successes", "result"):
                table.add_column(col)
            for r in values["rolls"]:
                res = r["result"]
                lf = " · LASER FEELINGS" if res["laser_feelings"] else ""
                table.add_row(text(self._name(r["player"])), r["approach"].upper(), str(r["number"]),
                              " ".join(map(str, r["dice"])) + (" (DM)" if r.get("overridden") else ""),
                              str(res["successes"]), res["band"] + lf)
            out().print(table)
        elif node == "laser_feelings":
            for q in values.get("laser_feelings") or []:
                if q.get("answer") is not None:
                    out().print(text(f"  {self._name(q['player'])} asks: {q['question']}\n  DM: {q['answer']}",
                                     "magenta"))
        elif node == "dm_outcome" and values.get("outcome"):
            out().print(Panel(text(values["outcome"]), title="Outcome", border_style="cyan"))
        elif node == "character_reaction":
            for pid, line in (values.get("reactions") or {}).items():
                out().print(text(f"  {self._name(pid)}: {line}", "green"))
        if self.verbose and not node.startswith("ask_") and not values.get("dm_error"):
            err().print(text(f"· {phase_label(node)} done", "dim"))

    def failure(self, phase: str, count: int, reason: str) -> None:
        self.progress_done()
        if phase == "redis":
            err().print(text(f"{reason}...", "yellow"))
            return
        what = "rolling back and retrying" if count % 2 == 1 else "asking the DM"
        err().print(text(f"Phase {phase_label(phase)} failed ({reason}); {what}.", "yellow"))

    def session_end(self, driver, final: dict) -> None:
        self.progress_done()
        err().print(Text.assemble((f"Session {clean_text(driver.session_id)} ended", "bold"),
                                  f" after {final.get('turn', 1) - 1} turn(s). Log: {driver.mirror.path}"))

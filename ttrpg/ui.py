"""The DM's terminal: the story on stdout, status and prompts on stderr.

:class:`StoryUI` renders each phase as it completes (narration and character lines as
panels, dice as a table, the current phase in a status line). :class:`KeyboardDM` asks
the DM the graph's questions with rich prompts. Both are thin: the game is elsewhere.
"""

from __future__ import annotations

from rich.panel import Panel
from rich.prompt import Confirm, IntPrompt, Prompt
from rich.table import Table
from rich.text import Text

from ttrpg.console import err, out

PHASE_LABELS = {
    "dm_narration": "DM narration", "memory_query": "memory query", "party_discussion": "table talk",
    "strategic_intent": "strategic intent", "character_action": "character action", "validation": "validation",
    "action_retry": "validation retry", "dm_review": "DM review", "dm_adjudication": "DM adjudication",
    "dice_roll": "dice", "dice_resolution": "dice resolution", "laser_feelings": "LASER FEELINGS",
    "dm_outcome": "DM outcome", "character_reaction": "character reaction", "memory_storage": "memory storage",
}


class StoryUI:
    def __init__(self, verbose: bool = True):
        self.verbose = verbose
        self.names: dict[str, str] = {}

    def _name(self, pid: str) -> str:
        return self.names.get(pid, pid)

    def session_header(self, driver, values: dict) -> None:
        party = values.get("party") or {}
        self.names = {p["id"]: p["character"]["name"] for p in party.get("players", [])}
        llm = values.get("llm") or {}
        mode = "offline model (no API key needed)" if llm.get("offline") else f"model {llm.get('model')}"
        err().print(f"[bold]Session[/] {driver.session_id} · campaign {driver.meta.get('campaign_id')} · "
                    f"AI players: {mode}")
        if party:
            table = Table(title=f"The crew of {party['ship']['name']} "
                                f"({', '.join(party['ship']['strengths'])}; problem: {party['ship']['problem']})")
            for col in ("player", "character", "style", "role", "number", "goal"):
                table.add_column(col)
            for p in party["players"]:
                c = p["character"]
                table.add_row(p["player"]["name"], c["name"], c["style"], c["role"], str(c["number"]), c["goal"])
            out().print(table)

    def question(self, question: dict, state: dict) -> None:
        if question["kind"] == "adjudication":  # the DM sees what the characters attempt, then rules
            for pid, a in (state.get("actions") or {}).items():
                tag = " (auto-corrected)" if a.get("autocorrected") else ""
                out().print(Panel(a["text"], title=f"{self._name(pid)}{tag}", border_style="green"))
        err().print(f"[dim]turn {question.get('turn', state.get('turn'))} · waiting for the DM: "
                    f"{question['kind']}[/]")

    def step(self, node: str, values: dict, state: dict) -> None:
        turn = state.get("turn")
        if node == "dm_narration" and values.get("narration"):
            out().rule(f"Turn {turn}")
            out().print(Panel(values["narration"], title="DM", border_style="cyan"))
        elif node == "party_discussion" and values.get("discussion") and self.verbose:
            for t in values["discussion"]:
                out().print(Text(f"  [{self._name(t['player'])}'s player, round {t['round']}] {t.get('say', '')}",
                                 style="dim"))
            c = values.get("consensus") or {}
            out().print(Text(f"  Table: {c.get('state')} on “{c.get('plan', '')}”"
                             + (f" (dissent: {', '.join(map(self._name, c['dissent']))})" if c.get("dissent") else ""),
                             style="dim italic"))
        elif node == "dice_resolution" and values.get("rolls"):
            table = Table(title="Dice")
            for col in ("character", "approach", "number", "dice", "successes", "result"):
                table.add_column(col)
            for r in values["rolls"]:
                res = r["result"]
                lf = " · LASER FEELINGS" if res["laser_feelings"] else ""
                table.add_row(self._name(r["player"]), r["approach"].upper(), str(r["number"]),
                              " ".join(map(str, r["dice"])) + (" (DM)" if r.get("overridden") else ""),
                              str(res["successes"]), res["band"] + lf)
            out().print(table)
        elif node == "laser_feelings":
            for q in values.get("laser_feelings") or []:
                out().print(Text(f"  {self._name(q['player'])} asks: {q['question']}\n  DM: {q['answer']}",
                                 style="magenta"))
        elif node == "dm_outcome" and values.get("outcome"):
            out().print(Panel(values["outcome"], title="Outcome", border_style="cyan"))
        elif node == "character_reaction":
            for pid, text in (values.get("reactions") or {}).items():
                out().print(Text(f"  {self._name(pid)}: {text}", style="green"))
        if self.verbose and node in PHASE_LABELS:
            err().print(f"[dim]· {PHASE_LABELS[node]} done[/]", highlight=False)

    def failure(self, phase: str, count: int, reason: str) -> None:
        if phase == "redis":
            err().print(f"[yellow]{reason}...[/]")
            return
        what = "rolling back and retrying once" if count == 1 else "asking the DM"
        err().print(f"[yellow]Phase {PHASE_LABELS.get(phase, phase)} failed ({reason}); {what}.[/]")

    def session_end(self, driver, final: dict) -> None:
        err().print(f"[bold]Session {driver.session_id} ended[/] after {final.get('turn', 1) - 1} turn(s). "
                    f"Log: {driver.mirror.path}")


class KeyboardDM:
    """Asks the DM at the terminal. Commands in narration: ``/whisper``, ``/end``, ``/help``."""

    HELP = ("Type the scene. Commands: /whisper <player-id> <player|character|both> <text>  ·  "
            "/end (finish the session)  ·  Ctrl-C pauses (resume later with `ttrpg resume`).")

    def ask(self, question: dict, state: dict):
        kind = question["kind"]
        players = {p["id"]: p for p in state["party"]["players"]}
        return getattr(self, f"_ask_{kind}")(question, state, players)

    def _ask_narration(self, q, state, players):
        whispers = []
        err().print(f"[bold cyan]Turn {q['turn']}[/] — {self.HELP}")
        while True:
            line = Prompt.ask("[cyan]DM[/]", console=err()).strip()
            if line == "/help":
                err().print(self.HELP)
            elif line == "/end":
                return {"text": "", "end": True}
            elif line.startswith("/whisper"):
                parts = line.split(maxsplit=3)
                if len(parts) < 4 or parts[1] not in players or parts[2] not in ("player", "character", "both"):
                    err().print("Usage: /whisper <player-id> <player|character|both> <text>  "
                                f"(players: {', '.join(players)})")
                    continue
                whispers.append({"to": parts[1], "layer": parts[2], "text": parts[3]})
                err().print(f"[dim]Whisper to {parts[1]} ({parts[2]}) noted.[/]")
            elif line:
                return {"text": line, "whispers": whispers}

    def _ask_adjudication(self, q, state, players):
        rolls = []
        acting = [pid for pid in players if pid in (q.get("actions") or {})]
        while True:
            who = Prompt.ask(f"Who rolls? ({', '.join(acting)}, or Enter for nobody / no more)", console=err(),
                             default="").strip()
            if not who:
                return {"rolls": rolls}
            if who not in acting:
                err().print(f"Choose one of: {', '.join(acting)}")
                continue
            approach = Prompt.ask("LASERS or FEELINGS", choices=["lasers", "feelings"], console=err(),
                                  default="lasers")
            n = IntPrompt.ask("Dice (1 + prepared + expert)", choices=["1", "2", "3"], console=err(), default=1)
            helpers = Prompt.ask("Helpers (ids, space-separated, or Enter)", console=err(), default="").split()
            rolls.append({"player": who, "approach": approach, "dice": n, "helpers": helpers})

    def _ask_dice(self, q, state, players):
        override = {}
        for r in q["rolls"]:
            raw = Prompt.ask(f"{r['player']} rolled {' '.join(map(str, r['dice']))}; Enter to keep, or type dice",
                             console=err(), default="").strip()
            if raw:
                override[r["player"]] = [int(x) for x in raw.replace(",", " ").split()]
        return {"override": override}

    def _ask_laser_feelings(self, q, state, players):
        err().print(f"[magenta]LASER FEELINGS![/] {q['player_id']} asks: {q['question']}")
        return {"text": Prompt.ask("Answer honestly", console=err())}

    def _ask_outcome(self, q, state, players):
        return {"text": Prompt.ask("[cyan]Outcome[/]", console=err())}

    def _ask_review(self, q, state, players):
        err().print(f"Auto-corrected action of {q['player_id']} may not read well: “{q['text']}” "
                    f"(violations: {'; '.join(q['violations'])})")
        text = Prompt.ask("Enter to accept, or type the action", console=err(), default="")
        return {"text": text or q["text"]}

    def _ask_intervention(self, q, state, players):
        err().print(f"[red]Phase {q['phase']} failed {q['failures']} times[/]: {q['reason']}")
        choice = Prompt.ask("What now?", choices=list(q["options"]), console=err(), default="retry")
        answer = {"choice": choice, "player_id": q.get("player_id")}
        if choice == "type":
            answer["text"] = Prompt.ask(f"Type {q.get('player_id')}'s line", console=err())
        if choice in ("skip", "type") and not q.get("player_id"):
            answer["player_id"] = Prompt.ask("Which player", choices=list(players), console=err())
        if choice == "end_turn" and not Confirm.ask("End this turn now?", console=err(), default=True):
            return self._ask_intervention(q, state, players)
        return answer

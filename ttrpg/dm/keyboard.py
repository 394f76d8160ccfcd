"""The DM at the keyboard: every question asked at a prompt, every answer checked where it is typed.

The contracts of :mod:`ttrpg.turn.questions` read what is typed; a wrong answer is asked
again with the reason and what is allowed, so nothing invalid reaches the graph. Prompts
and messages go to stderr; the party table to stdout.
"""

from __future__ import annotations

import difflib
import sys
import termios

from rich.text import Text

from ttrpg.console import clean_text, err, out, text
from ttrpg.dm.story import party_table
from ttrpg.turn import questions
from ttrpg.vocabulary import phase_label

COMMANDS = {
    "/help": "show what you can type here",
    "/party": "show the party: ids, names, style, role, number",
    "/whisper": "/whisper <player> <player|character|both> <text>: a secret for one player (narration only)",
    "/end": "end the session (asks to confirm)",
}


def _name_of(state: dict, pid: str) -> str:
    return questions.party_names(state).get(pid, pid)


class _Command(Exception):
    """A slash command was typed and handled: ask the same thing again."""


class KeyboardDM:
    """Asks the DM at the terminal; every answer is checked where it is typed.

    At every prompt: ``/help``, ``/party``, ``/end`` (asks to confirm). At the narration
    prompt also ``/whisper``. An unknown or mistyped command is refused with the list of
    commands and never becomes narration. Lines typed while the AIs were thinking are
    discarded before each prompt (they were meant for an earlier moment).
    """

    source = "keyboard"

    def __init__(self, input_fn=None):
        self._input = input_fn
        self._end_requested = False

    # --- reading a line --------------------------------------------------------------------------

    def _discard_typeahead(self) -> None:
        if self._input is not None:
            return
        try:
            if sys.stdin.isatty():
                termios.tcflush(sys.stdin.fileno(), termios.TCIFLUSH)
        except (OSError, ValueError):
            pass

    def _read(self, prompt: str) -> str:
        """One raw line, typed after this prompt appeared (earlier keystrokes are dropped); Ctrl-D pauses."""
        self._discard_typeahead()
        try:
            return self._input(prompt) if self._input else err().input(Text(f"{prompt} › ", style="cyan"))
        except EOFError:
            raise KeyboardInterrupt from None

    def _line(self, prompt: str, state: dict, *, narration: bool = False, help_text: str = "") -> str:
        """One line from the DM with slash commands handled; ``/x`` never comes back as an answer."""
        while True:
            line = self._read(prompt).strip()
            if line.startswith("//"):
                return line[1:]
            if not line.startswith("/"):
                return line
            try:
                result = self._command(line, state, narration=narration, help_text=help_text)
            except _Command:
                continue
            return result

    def _command(self, line: str, state: dict, *, narration: bool, help_text: str) -> str:
        word = line.split(maxsplit=1)[0].lower()
        if word == "/help":
            if help_text:
                err().print(text(help_text))
            for cmd, what in COMMANDS.items():
                if cmd != "/whisper" or narration:
                    err().print(text(f"  {cmd:<9} {what}"))
            err().print(text("  Start a line with // to type text that begins with /. Ctrl-C pauses "
                             "(`ttrpg resume` continues).", "dim"))
            raise _Command
        if word == "/party":
            out().print(party_table(state.get("party") or {}))
            raise _Command
        if word == "/end":
            if not self._confirm("End the session" + ("" if narration else " after this turn") + "?"):
                err().print(text("Not ended.", "dim"))
                raise _Command
            if narration:
                return "/end"
            self._end_requested = True
            err().print(text("The session will end at the next narration prompt.", "dim"))
            raise _Command
        if word == "/whisper":
            if not narration:
                err().print(text("Whispers go with the narration: type /whisper at the next DM narration prompt."))
                raise _Command
            return line
        close = difflib.get_close_matches(word, list(COMMANDS), n=1, cutoff=0.6)
        hint = f" Did you mean {close[0]}?" if close else ""
        err().print(text(f"Unknown command {word[:30]}.{hint} Commands: {', '.join(COMMANDS)} "
                         "(start with // to type text that begins with /).", "yellow"))
        raise _Command

    def _confirm(self, prompt: str) -> bool:
        while True:
            word = self._read(f"{prompt} [y/n]").strip().lower()
            if word in ("y", "yes"):
                return True
            if word in ("n", "no", ""):
                return False
            err().print(text("Type y or n.", "yellow"))

    @staticmethod
    def _refuse(reason) -> None:
        err().print(text(str(reason), "yellow"))

    # --- questions ------------------------------------------------------------------------------

    def ask(self, question: dict, state: dict):
        if question.get("error"):
            self._refuse(f"That answer could not be used: {question['error']}")
        return getattr(self, f"_ask_{question['kind']}")(question, state)

    def _checked(self, answer, question: dict, state: dict):
        return questions.check(answer, question, state)

    def _ask_narration(self, q, state):
        if self._end_requested:
            err().print(text("Ending the session, as you asked."))
            return {"text": "", "end": True}
        names = questions.party_names(state)
        err().print(Text.assemble((f"Turn {q['turn']}", "bold cyan"),
                                  " — describe the scene. /help lists commands; /whisper tells one player a secret."))
        whispers: list[dict] = []
        while True:
            line = self._line("DM", state, narration=True,
                              help_text="Type the scene as the players' characters see it.")
            if line == "/end":
                return {"text": "", "end": True}
            if line.lower().startswith("/whisper"):
                parts = line.split(maxsplit=3)
                try:
                    if len(parts) < 4:
                        raise questions.InvalidAnswer(
                            f"Usage: /whisper <player> <player|character|both> <text>; players: "
                            f"{', '.join(f'{p} ({n})' for p, n in names.items())}.")
                    pid = questions.parse_player(parts[1], names)
                    layer = parts[2].lower()
                    if layer not in questions.LAYERS:
                        raise questions.InvalidAnswer(f"{parts[2][:20]!r} is not a layer: use player, character "
                                                      "or both.")
                    wtext = questions.check_text(parts[3], "whisper")
                except questions.InvalidAnswer as exc:
                    self._refuse(exc)
                    continue
                whispers.append({"to": pid, "layer": layer, "text": wtext})
                err().print(text(f"Whisper to {pid} ({layer}) noted; it goes with the narration.", "dim"))
                continue
            try:
                return self._checked({"text": line, "whispers": whispers}, q, state)
            except questions.InvalidAnswer as exc:
                self._refuse(f"{exc} Or /end to finish the session.")

    def _ask_review(self, q, state):
        pid = q["player_id"]
        said = ("Auto-corrected action of {who} may not read well" if q.get("corrected", True) else
                "The referee still reads an outcome in the last action of {who}, and no words could be cut")
        err().print(text(f"{said.format(who=f'{_name_of(state, pid)} ({pid})')}: “{q['text']}” "
                         f"(violations: {'; '.join(q.get('violations') or [])})"))
        while True:
            line = self._line("Enter to accept, or type the action", state)
            try:
                return self._checked({"text": line}, q, state)
            except questions.InvalidAnswer as exc:
                self._refuse(exc)

    def _ask_adjudication(self, q, state):
        names = questions.party_names(state)
        acting = {pid: names.get(pid, pid) for pid in names if pid in (q.get("actions") or {})}
        suggested = q.get("suggested") or {}
        rolls: list[dict] = []
        while True:
            left = {pid: n for pid, n in acting.items() if pid not in {r["player"] for r in rolls}}
            listing = ", ".join(f"{p} ({n})" for p, n in left.items())
            if not left:
                return self._checked({"rolls": rolls}, q, state)
            who_raw = self._line(f"Who rolls? {listing}; Enter for {'nobody' if not rolls else 'no more'}", state)
            if not who_raw:
                return self._checked({"rolls": rolls}, q, state)
            try:
                who = questions.parse_player(who_raw, acting)
                if who not in left:
                    raise questions.InvalidAnswer(f"{who} already rolls this turn: each player rolls at most once. "
                                                  f"Choose {listing}, or Enter.")
            except questions.InvalidAnswer as exc:
                self._refuse(exc)
                continue
            default = suggested.get(who, "lasers")
            approach = self._field(f"LASERS or FEELINGS for {acting[who]}? L/F, Enter for {default.upper()} "
                                   "(from the action)", state, lambda s: questions.parse_approach(s or default))
            n = self._field("Dice: 1, +1 if prepared, +1 if expert (1-3, Enter for 1)", state,
                            lambda s: questions.parse_dice_count(s or "1"))
            others = ", ".join(f"{p} ({nm})" for p, nm in acting.items() if p != who)
            helpers = [] if not others else self._field(
                f"Helpers ({others}), or Enter for none", state,
                lambda s: questions.parse_helpers(s, acting, who))
            rolls.append({"player": who, "approach": approach, "dice": n, "helpers": helpers})
            err().print(text(f"{acting[who]} rolls {n} di{'e' if n == 1 else 'ce'}, {approach.upper()}"
                             + (f", helped by {', '.join(helpers)}" if helpers else "") + ".", "dim"))

    def _field(self, prompt: str, state: dict, parse):
        while True:
            raw = self._line(prompt, state)
            try:
                return parse(raw)
            except questions.InvalidAnswer as exc:
                self._refuse(exc)

    def _ask_dice(self, q, state):
        override = {}
        for r in q["rolls"]:
            n = len(r["dice"])
            shown = " ".join(map(str, r["dice"]))
            got = self._field(f"{r['player']} ({_name_of(state, r['player'])}) rolled {shown}; Enter to keep, "
                              f"or type the {n} di{'e' if n == 1 else 'ce'} you rolled", state,
                              lambda s, n=n: None if not s else questions.parse_dice(s, n))
            if got:
                override[r["player"]] = got
        return self._checked({"override": override}, q, state)

    def _ask_laser_feelings(self, q, state):
        pid = q["player_id"]
        err().print(Text.assemble(("LASER FEELINGS! ", "magenta"),
                                  clean_text(f"{_name_of(state, pid)} ({pid}) asks: {q['question']}")))
        return self._text_answer("Answer honestly", q, state)

    def _ask_outcome(self, q, state):
        for r in q.get("rolls") or []:
            res = r.get("result") or {}
            hits = res.get("successes", 0)
            err().print(text(f"  {_name_of(state, r['player'])}: {res.get('band', '')} "
                             f"({hits} success{'' if hits == 1 else 'es'}, dice {' '.join(map(str, r['dice']))})",
                             "dim"))
        return self._text_answer("Outcome", q, state)

    def _text_answer(self, prompt: str, q, state):
        while True:
            line = self._line(prompt, state)
            try:
                return self._checked({"text": line}, q, state)
            except questions.InvalidAnswer as exc:
                self._refuse(exc)

    def _ask_intervention(self, q, state):
        err().print(text(f"Phase {phase_label(q['phase'])} failed {q['failures']} times: {q.get('reason', '')}", "red"))
        names = questions.party_names(state)
        while True:
            choice = self._field("What now? retry (r), skip a player (s), type the player's line (t), "
                                 "end the turn (e)", state, questions.parse_choice)
            answer: dict = {"choice": choice}
            if choice in ("skip", "type"):
                default = q.get("player_id")
                answer["player_id"] = self._field(
                    f"Which player? {', '.join(f'{p} ({n})' for p, n in names.items())}"
                    + (f"; Enter for {default}" if default else ""), state,
                    lambda s: questions.parse_player(s or default or "", names))
            if choice == "type":
                answer["text"] = self._field(f"{answer['player_id']}'s line", state,
                                             lambda s: questions.check_text(s, "player's line"))
            if choice == "end_turn" and not self._confirm("End this turn now?"):
                continue
            try:
                return self._checked(answer, q, state)
            except questions.InvalidAnswer as exc:
                self._refuse(exc)


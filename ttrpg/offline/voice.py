"""The offline model's replies, in each character's voice.

A high number sounds calm and technical (LASERS), a low number passionate and intuitive
(FEELINGS); the style (alien, android, hot-shot...) adds openers and action beats; quoted
catchphrases from the speech patterns are used; mannerisms become action beats; nouns and
names from the DM's narration are picked up. Every choice comes from a ``random.Random``
seeded with ``stable_hash(seed, messages)``: the same seed and prompt give the same words,
another seed gives other words.

``overreach`` makes a character-layer *action* narrate its own outcome ("... and the guard
falls unconscious"), so validation has something to catch.
"""

from __future__ import annotations

import random
import re
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ttrpg.offline.hashing import stable_hash
from ttrpg.offline.reader import Prompt, narration_nouns, read_prompt, table_talk
from ttrpg.prompts.builders import (
    SEC_DIRECTIVE,
    SEC_HISTORY,
    SEC_MEMORIES,
    SEC_NARRATION,
    SEC_OUTCOME,
    SEC_PLAYER_WHISPERS,
    SEC_SITUATION,
)
from ttrpg.prompts.parsers import plan_label_key

_STYLE: dict[str, dict[str, list[str]]] = {
    "alien": {
        "openers": ["Curious.", "Your species would call this interesting.", "The air tastes of trouble here.",
                    "On my world, we have a word for this."],
        "beats": ["tilts {pos} head at an angle no human neck allows", "goes utterly, unnervingly still",
                  "hums a low note in {pos} throat"],
        "feel_good": ["A pleasing pattern.", "My people would sing of this."],
        "feel_bad": ["This pattern displeases me.", "On my world, this would be an omen."],
    },
    "android": {
        "openers": ["Processing.", "Acknowledged.", "Probability assessment complete.", "Running diagnostics."],
        "beats": ["blinks once, precisely", "pauses for exactly one second", "rotates {pos} head with a faint whir"],
        "feel_good": ["Outcome within acceptable parameters.", "Logging this as a favourable result."],
        "feel_bad": ["Outcome outside acceptable parameters.", "Recalculating. This was not in the model."],
    },
    "dangerous": {
        "openers": ["Nobody move.", "Let's make this quick.", "I've seen worse. Done worse, too.",
                    "Stay behind me."],
        "beats": ["rolls {pos} shoulders", "rests a hand on {pos} holster", "smiles without any warmth"],
        "feel_good": ["Good. That's how it's done.", "Told you I'd handle it."],
        "feel_bad": ["Somebody's going to pay for that.", "Fine. Now I'm annoyed."],
    },
    "heroic": {
        "openers": ["Stand fast, everyone!", "Not on my watch.", "Someone has to do it.",
                    "For the crew of the {ship}!"],
        "beats": ["squares {pos} shoulders", "plants {pos} feet and lifts {pos} chin", "looks back at the crew"],
        "feel_good": ["We did it together. That's what matters.", "Never doubted you all for a second."],
        "feel_bad": ["That's on me. I'll make it right.", "We've come back from worse. We will again."],
    },
    "hot-shot": {
        "openers": ["Watch this.", "Easy. I was born for this.", "Hold my drink.", "Nobody panic, the pro's here."],
        "beats": ["flashes a crooked grin", "spins a stylus between {pos} fingers", "winks at nobody in particular"],
        "feel_good": ["Ha! Did everybody see that?", "Tell me that wasn't beautiful."],
        "feel_bad": ["Okay. Okay! That was the warm-up.", "Nobody saw that. Nobody saw anything."],
    },
    "intrepid": {
        "openers": ["Onward!", "Now this is what we came out here for!", "Into the unknown, then.",
                    "Let's find out."],
        "beats": ["leans forward, eyes bright", "rolls up {pos} sleeves", "grins at the unknown"],
        "feel_good": ["Incredible. I want to see more.", "This is why we fly!"],
        "feel_bad": ["Huh. Didn't see that coming. Noted.", "Setbacks are just more map to draw."],
    },
    "savvy": {
        "openers": ["Well, well.", "I know a play when I see one.", "Everyone's got an angle.",
                    "Let's be smart about this."],
        "beats": ["raises one eyebrow", "taps the side of {pos} nose", "leans back, weighing the room"],
        "feel_good": ["Just like I figured.", "Knew the angles would line up."],
        "feel_bad": ["Should've read that one better.", "Hm. Someone's playing a longer game than me."],
    },
}

_LASERS = {
    "manner": ["calmly and precisely", "by the numbers", "step by step, checking every reading",
               "with cold, careful focus", "methodically"],
    "try": ["try to", "attempt to", "carefully try to", "set about trying to"],
    "openers": ["Readings first, feelings second.", "Let me run the numbers.", "Steady. Logic first.",
                "Precision, people."],
    "good": ["Within tolerances.", "As calculated.", "Good. The numbers held."],
    "bad": ["Variables I failed to account for.", "Recalculating. That wasn't in the model.",
            "Hm. The data lied to me."],
    "mixed": ["Acceptable, but costly. I'll log the error margin.", "Partial result. I can work with partial."],
}
_FEELINGS = {
    "manner": ["on pure instinct", "with everything I've got", "trusting my gut", "with a reckless grin",
               "heart first"],
    "try": ["try to", "go for it and try to", "throw myself into trying to", "do my best to"],
    "openers": ["I've got a feeling about this.", "Gut says go.", "Forget the plan, feel it.",
                "Here goes nothing!"],
    "good": ["Yes! I knew it, I just knew it!", "Ha! That felt right.", "See? Trust the gut."],
    "bad": ["No, no, no. That felt so right!", "Ugh. My gut's never been that wrong.", "That one stings."],
    "mixed": ["Close enough. Heart's still pounding.", "We'll take it, scrapes and all."],
}

#: Verb phrases per role. ``{who}`` wants a person (a name from the narration, "the
#: smuggler"), ``{t}`` a thing ("the derelict freighter"); ``{your}`` is "your" (player
#: speaking to its character) or "my" (the character); ``{gear}`` a piece of equipment.
_ROLE_ACTIONS: dict[str, list[str]] = {
    "doctor": ["check {who} for injuries with {your} {gear}", "keep everyone steady and watch {who} for signs of harm",
               "get {your} {gear} ready and stay close to {who}"],
    "envoy": ["open a channel and talk with {who}", "read what {who} really wants and offer a fair deal",
              "greet {who} openly and look for common ground"],
    "engineer": ["patch into the systems of {t} with {your} {gear}", "bypass the locks on {t} with {your} {gear}",
                 "reroute power so the crew can reach {t}"],
    "explorer": ["scout ahead toward {t} and look for another way in", "map {t} and mark every exit",
                 "search {t} for anything nobody has noticed yet"],
    "pilot": ["bring the {ship} in close to {t}", "fly an evasive pattern around {t}",
              "hold the {ship} steady alongside {t}, ready for a fast exit"],
    "scientist": ["scan {t} with {your} {gear}", "analyse the strange readings coming from {t}",
                  "take samples from {t} and compare them with known data"],
    "soldier": ["take cover and keep {your} {gear} trained on {who}", "move up on {t} and cover the others",
                "secure the area around {t}"],
}
_ROLE_LABELS: dict[str, list[str]] = {
    "doctor": ["check on {who} first", "treat the wounded first"],
    "envoy": ["talk to {who} first", "negotiate with {who}"],
    "engineer": ["hack into {t}", "cut power to {t}"],
    "explorer": ["scout {t} first", "find another way in"],
    "pilot": ["fly in close to {t}", "keep our distance from {t}"],
    "scientist": ["scan {t} first", "study {t} from afar"],
    "soldier": ["secure {t}", "go in weapons ready"],
}
_ROLE_GEAR = {"doctor": "medkit", "envoy": "translator", "engineer": "toolkit", "explorer": "scanner",
              "pilot": "flight controls", "scientist": "scanner", "soldier": "blaster"}

#: Nouns that make a "the ..." phrase a person, so it can fill ``{who}``.
_PERSON_WORDS = {"smuggler", "guard", "guards", "captain", "pirate", "pirates", "officer", "soldier", "soldiers",
                 "merchant", "alien", "aliens", "stranger", "woman", "man", "figure", "envoy", "warden", "crew",
                 "bounty", "hunter", "admiral", "commander", "queen", "king", "trader", "survivor", "survivors",
                 "child", "robot", "android", "drone", "drones", "mercenary", "mercenaries", "scientist",
                 "doctor", "pilot", "engineer", "creature", "creatures", "ambassador", "leader", "boss",
                 "passenger", "passengers", "prisoner", "prisoners", "thug", "thugs", "agent", "spy"}

_FALLBACK = {"who": "whoever is in charge here", "t": "whatever lies ahead"}

_OVERREACH = [
    " It works perfectly, and {t} is ours.",
    " {Who} falls unconscious at my feet.",
    " I successfully hack the lock and the hatch slides open.",
    " {T} is destroyed before anyone can react.",
    " Everyone cheers as the plan succeeds.",
]

_QUESTIONS = [
    "What {is} {who} really after?",
    "What is the biggest danger around {t} right now?",
    "Is there something about {t} that {me} hasn't noticed yet?",
    "Who else knows about {t}?",
    "What {is} {who} not telling us?",
]


@dataclass
class _Voice:
    """How one character sounds, derived from its sheet ."""

    p: Prompt
    rng: random.Random
    catchphrases: list[str]
    address: list[str]
    third_person: bool
    terse: bool
    formal: bool
    asks: bool
    names: list[str]
    things: list[str]

    @property
    def lasers(self) -> bool:
        return self.p.number >= 4

    @property
    def tone(self) -> dict[str, list[str]]:
        return _LASERS if self.lasers else _FEELINGS

    @property
    def style(self) -> dict[str, list[str]]:
        key = self.p.style.strip().lower().replace(" ", "-")
        return _STYLE.get(key, _STYLE["intrepid"])

    def pick(self, options: Sequence[str]) -> str:
        return options[self.rng.randrange(len(options))] if options else ""

    def people(self) -> list[str]:
        return self.names + [t for t in self.things if set(t.lower().split()) & _PERSON_WORDS]

    def objects(self) -> list[str]:
        people = self.people()
        return [t for t in self.things if t not in people]

    def target(self, kind: str = "t") -> str:
        """A noun from the narration: ``kind`` "who" for a person, "t" for a thing."""
        pool = (self.people() if kind == "who" else self.objects())[:5]
        return self.pick(pool) if pool else _FALLBACK[kind]

    def gear(self) -> str:
        key = self.p.role.lower()
        return self.pick(self.p.equipment) if self.p.equipment else _ROLE_GEAR.get(key, "gear")

    def fill(self, template: str, your: str = "my", who: str | None = None, t: str | None = None) -> tuple[str, str]:
        """Fill a template with targets from the narration; returns (text, the target used)."""
        who = who if who is not None else (self.target("who") if "{who}" in template.lower() else "")
        t = t if t is not None else (self.target("t") if "{t}" in template.lower() else "")
        plural = who.startswith("the ") and who.endswith("s") and not who.endswith("ss")
        text = template.format(t=t, T=t[:1].upper() + t[1:], who=who, Who=who[:1].upper() + who[1:], your=your,
                               **{"is": "are" if plural else "is"},
                               gear=self.gear() if "{gear}" in template else "", ship=_bare(self.p.ship),
                               me=self.p.name)
        return text, (who if "{who}" in template.lower() else t)

    def beat(self) -> str:
        """An action beat that names the character: ``*Zix tilts her head*``."""
        if self.p.mannerisms and self.rng.random() < 0.85:
            m = self.pick(self.p.mannerisms).rstrip(".!")
            m = m[:1].lower() + m[1:]
            first = m.split()[0] if m.split() else ""
            if first.endswith("s") and not first.endswith("ss"):
                return f"*{self.p.name} {m}*"
            if first.endswith("ing"):
                return f"*{self.p.name}, {m}*"
            return f"*{self.p.name} - {m}*"
        return f"*{self.p.name} {self.pick(self.style['beats']).format(pos='their')}*"

    def opener(self) -> str:
        if self.catchphrases and self.rng.random() < 0.75:
            phrase = self.pick(self.catchphrases)
            return phrase if phrase[-1:] in ".!?" else phrase + "."
        options = self.style["openers"] + self.tone["openers"]
        line = self.pick(options).format(ship=_bare(self.p.ship))
        if self.address and line[-1:] in ".!?":
            line = f"{line[:-1]}, {self.pick(self.address)}{line[-1]}"
        return line

    def polish(self, text: str) -> str:
        if self.formal:
            for a, b in (("I'm", "I am"), ("don't", "do not"), ("can't", "cannot"), ("won't", "will not"),
                         ("it's", "it is"), ("let's", "let us"), ("Let's", "Let us"), ("that's", "that is"),
                         ("wasn't", "was not"), ("I've", "I have"), ("I'll", "I will")):
                text = text.replace(a, b)
        return " ".join(text.split())


def _bare(name: str) -> str:
    return re.sub(r"^the\s+", "", name.strip(), flags=re.I) or "ship"


def _voice(p: Prompt, rng: random.Random) -> _Voice:
    speech = " ".join(p.speech)
    low = speech.lower()
    quoted = re.findall(r"[\"\u201c]([^\"\u201d]{2,60})[\"\u201d]", speech)
    quoted += re.findall(r"(?:^|\s)'([^']{2,60})'(?=[\s.,;!?]|$)", speech)
    narration = p.section(SEC_NARRATION)
    exclude = [p.name, p.ship, _bare(p.ship)]
    names, things = narration_nouns(narration, exclude)
    if not (names or things):
        for extra in (p.section(SEC_HISTORY), p.section(SEC_OUTCOME), p.section(SEC_SITUATION)):
            names, things = narration_nouns(extra, exclude)
            if names or things:
                break
    quoted = [q.strip() for q in quoted if q.strip()]
    return _Voice(
        p=p, rng=rng, catchphrases=[q for q in quoted if len(q.split()) > 1 or q[:1].isupper()],
        address=[q for q in quoted if len(q.split()) == 1 and q[:1].islower()],
        third_person="third person" in low or "third-person" in low,
        terse=any(w in low for w in ("short", "clipped", "terse", "few words", "laconic", "blunt")),
        formal=any(w in low for w in ("formal", "no contractions", "never uses contractions", "proper")),
        asks=any(w in low for w in ("question", "asks", "curious")),
        names=names, things=things,
    )


def _first_sentence(text: str) -> str:
    parts = re.split(r"(?<=[.!?])\s+", " ".join(text.split()), maxsplit=1)
    return parts[0] if parts else ""


def _to_first_person(text: str) -> str:
    """Directive to action: "your scanner" -> "my scanner", "before you board" -> "before I board"."""
    swaps = [(r"\byourself\b", "myself"), (r"\byours\b", "mine"), (r"\byour\b", "my"),
             (r"\bYour\b", "My"), (r"\byou're\b", "I'm"), (r"\byou've\b", "I've"),
             (r"\b(before|after|while|when|until|if|as|so|and|then|once|unless)\s+you\b", r"\1 I"),
             (r"\byou\b", "me")]
    for a, b in swaps:
        text = re.sub(a, b, text)
    return text


def _to_third_person(text: str, name: str) -> str:
    swaps = [(r"\bmyself\b", "themself"), (r"\bmine\b", "theirs"), (r"\bmy\b", "their"), (r"\bMy\b", "Their"),
             (r"\bI'm\b", f"{name} is"), (r"\bme\b", "them")]
    for a, b in swaps:
        text = re.sub(a, b, text)
    return text


_ORDER = re.compile(r"(have|tell|get|let|make|ask)\s+", re.I)
_AFTER_ORDERED = re.compile(r"\s+(to\s+)?", re.I)
_AFTER_NAMED = re.compile(r"\s*,?\s*((should|must|will|needs to|can|could|has to)\s+)?", re.I)


def _strip_addressee(d: str, name: str) -> str:
    """``"Have Zix scan the hull"`` / ``"Zix, scan the hull"`` -> ``"scan the hull"``.

    ``d`` is whitespace-normalized. The patterns do not contain the name, so they are compiled
    once, at import, rather than once per character: a forked horse runs one job and would
    otherwise compile them anew.
    """
    key, size = name.lower(), len(name)
    ordered = _ORDER.match(d)
    if ordered and d[ordered.end():ordered.end() + size].lower() == key:
        after = _AFTER_ORDERED.match(d, ordered.end() + size)
        if after:
            d = d[after.end():]
    if d[:size].lower() == key:
        d = d[_AFTER_NAMED.match(d, size).end():]
    return d


def _action_from_directive(directive: str, name: str) -> str:
    """The verb phrase of a directive: "Have Zix scan the hull, quickly." -> "scan the hull, quickly"."""
    d = " ".join(directive.split())
    d = _first_sentence(d) or d
    d = d.strip(" \"'").rstrip(".!")
    d = _strip_addressee(d, name)
    d = re.sub(r"^(please|you should|you must|try to|attempt to|go and|i want you to)\s+", "", d, flags=re.I)
    d = re.sub(r"^(please|try to|attempt to)\s+", "", d, flags=re.I)
    words = d.split()
    if words and words[0][1:].islower():
        d = d[:1].lower() + d[1:]
    if len(words) > 30:
        d = " ".join(words[:30])
    return _to_first_person(d)


def _mentions_any(text: str, nouns: Sequence[str]) -> bool:
    low = text.lower()
    return any(_bare(n).lower() in low for n in nouns)




_THIRD_TRY = {"try to": "tries to", "attempt to": "attempts to", "carefully try to": "carefully tries to",
              "set about trying to": "sets about trying to", "go for it and try to": "goes for it and tries to",
              "throw myself into trying to": "throws themself into trying to", "do my best to": "does their best to"}


def _reply_action(v: _Voice, overreach: bool) -> str:
    p = v.p
    directive = p.section(SEC_DIRECTIVE)
    if directive:
        action = _action_from_directive(directive, p.name)
        t = next((n for n in v.names + v.things if _mentions_any(action, [n])), "")
    else:
        action, t = _plan(v, "my")
    if not _mentions_any(action, v.names + v.things) and (v.names or v.things):
        t = v.target("who") if not v.objects() else v.target("t")
        action += f", keeping an eye on {t}"
    has_manner = any(m in action for m in _LASERS["manner"] + _FEELINGS["manner"])
    manner = "" if v.terse or has_manner or len(action.split()) > 16 else ", " + v.pick(v.tone["manner"])
    tries = v.pick(v.tone["try"])
    if v.third_person:
        core = f"{p.name} {_THIRD_TRY.get(tries, 'tries to')} {_to_third_person(action, p.name)}{manner}."
    else:
        core = f"I {tries} {action}{manner}."
    parts = [v.beat()]
    if not v.terse or v.rng.random() < 0.5:
        parts.append(v.opener())
    parts.append(core)
    if p.char_goal and not v.terse and v.rng.random() < 0.4:
        parts.append(_goal_aside(v))
    text = " ".join(x for x in parts if x)
    if overreach:
        template = v.pick(_OVERREACH)
        people = v.people()
        text += v.fill(template, "my", who=t if t in people else None, t=t if t and t not in people else None)[0]
    return v.polish(text)


def _goal_aside(v: _Voice) -> str:
    goal = v.p.char_goal.lower()
    asides = {
        "captain": "A captain would do no less.", "alien": "Maybe there's someone out there worth meeting.",
        "bad guys": "And if anyone starts shooting, I'll be ready.", "world": "Somewhere past this is a new world.",
        "myster": "There's a mystery here, I can smell it.", "prove": "Time to prove what I can do.",
        "awesome": "Staying awesome is a full-time job.",
    }
    for key, line in asides.items():
        if key in goal:
            return line
    return f"All for the sake of {goal}." if goal else ""


def _sentiment(outcome: str) -> str:
    low = outcome.lower()
    bad = re.search(r"\b(fail\w*|wrong|worse|damag\w*|hurt\w*|injur\w*|lost|los\w+|complication\w*|cost\w*|"
                    r"alarm\w*|broke\w*|break\w*|destroy\w*|trap\w*|miss\w*|spot\w*|caught|bad\w*|harm\w*)\b", low)
    good = re.search(r"\b(succeed\w*|success\w*|works?|worked|well|critical|perfect\w*|safe\w*|clean\w*|"
                     r"manage\w*|great|open\w*|done)\b", low)
    if bad and good:
        return "mixed"
    return "bad" if bad else "good"


def _reply_reaction(v: _Voice) -> str:
    outcome = v.p.section(SEC_OUTCOME)
    mood = _sentiment(outcome)
    outcome_names, outcome_things = narration_nouns(outcome, [v.p.name, v.p.ship])
    pool = (outcome_names + outcome_things)[:4] or (v.names + v.things)[:4]
    t = v.pick(pool) if pool else "all this"
    parts = [v.beat()]
    if v.catchphrases and v.rng.random() < 0.5:
        parts.append(v.opener())
    style_key = "feel_good" if mood == "good" else "feel_bad"
    if mood == "mixed":
        parts.append(v.pick(v.tone["mixed"]))
    else:
        parts.append(v.pick(v.tone[mood] + v.style[style_key]))
    if not v.terse:
        if v.lasers:
            parts.append(v.pick([f"I'll remember how {t} played out.", f"Noting every detail about {t}.",
                                 f"{t[:1].upper() + t[1:]} behaved exactly as the data suggested."
                                 if mood == "good" else f"I did not expect that from {t}."]))
        else:
            parts.append(v.pick([f"My heart's still racing over {t}.", f"I won't forget {t}, not ever.",
                                 f"{t[:1].upper() + t[1:]}: I feel it in my bones, this isn't over."]))
    if v.asks and v.rng.random() < 0.5:
        parts.append("What does that mean for the rest of us?")
    return v.polish(" ".join(parts))


def _plan(v: _Voice, your: str = "your") -> tuple[str, str]:
    """A role-typical verb phrase aimed at something from the narration, and that target."""
    return v.fill(v.pick(_ROLE_ACTIONS.get(v.p.role.lower(), _ROLE_ACTIONS["explorer"])), your)


def _odds_clause(v: _Voice) -> str:
    n = v.p.number
    pct = round(100 * n / 6) if v.lasers else round(100 * (7 - n) / 6)
    return f"{'LASERS' if v.lasers else 'FEELINGS'} gives {v.p.name} a {pct}% chance per die"




def _leading_label(rows: Sequence[Mapping[str, str]]) -> str:
    labels = [r["proposal"] for r in rows if r.get("proposal")]
    if not labels:
        return ""
    counts = Counter(plan_label_key(x) for x in labels)
    best = max(counts.values())
    for label in reversed(labels):  # the most recent of the most backed
        if counts[plan_label_key(label)] == best:
            return label
    return labels[-1]


def _reply_intent(v: _Voice) -> str:
    p = v.p
    risk, analytical = p.trait("risk_tolerance"), p.trait("analytical")
    coop, rp = p.trait("cooperativeness"), p.trait("roleplay_intensity")
    plan, _ = _plan(v)
    approach = "LASERS" if v.lasers else "FEELINGS"
    intent = [f"Play to {p.name}'s {approach} side (number {p.number}): {p.name} should {plan}."]
    if analytical >= 0.6:
        intent.append(f"The odds favour it: {_odds_clause(v)}.")
    if risk >= 0.65:
        intent.append("Better to act now while we have the initiative.")
    elif risk <= 0.35:
        intent.append("Low risk first; we learn before we commit.")
    if p.items(SEC_PLAYER_WHISPERS):
        intent.append("I'll keep what the GM told me to myself, but it shapes this plan.")
    if p.items(SEC_MEMORIES):
        memory = p.items(SEC_MEMORIES)[-1]
        intent.append(f"I remember: {' '.join(memory.split()[:10])}.")
    leading = _leading_label(table_talk(p))
    if leading and coop >= 0.4:
        intent.append(f"It fits what the table agreed: {leading}.")
    if p.ship_strengths and v.rng.random() < 0.4:
        intent.append(f"{p.ship} is {v.pick(p.ship_strengths)}; we should use that.")
    if rp >= 0.7:
        intent.append(f"I want to play {p.name} to the hilt, in {p.name}'s own voice.")
    if p.player_goal and v.rng.random() < 0.6:
        intent.append(f"It also serves my goal: {p.player_goal[:1].lower() + p.player_goal[1:]}.")
    manner = v.pick(v.tone["manner"]).replace("I've", "you've").replace("my ", "your ")
    directive = f"{plan[:1].upper() + plan[1:]}, {manner}"
    if leading and coop >= 0.4:
        directive += f", to help the crew {leading}"
    return f"INTENT: {' '.join(intent)}\nDIRECTIVE: {directive}."


def _reply_discussion(v: _Voice) -> str:
    p = v.p
    coop, assertive = p.trait("cooperativeness"), p.trait("assertiveness")
    label_template = v.pick(_ROLE_LABELS.get(p.role.lower(), _ROLE_LABELS["explorer"]))
    own, _ = v.fill(label_template, "our")
    if len(own.split()) > 7:
        own = " ".join(own.split()[:7])
    rows = table_talk(p)
    me = {x for x in (p.player, p.seat) if x}
    mine = [r["proposal"] for r in rows if r["proposal"] and r["who"] in me]
    if mine:
        own = mine[-1]  # a player sticks to their own plan unless they come round to another
    leading = _leading_label(rows)
    hint = " Trust me, I have a feeling about this." if p.items(SEC_PLAYER_WHISPERS) and v.rng.random() < 0.6 else ""
    if not leading:
        odds = f" ({_odds_clause(v)})" if p.trait("analytical") >= 0.6 else ""
        plan, _ = _plan(v, "their")
        say = f"How about we {own}? {p.name} can {plan}{odds}.{hint}"
        return f"SAY: {say}\nPROPOSAL: {own}\nVOTE: agree"
    if plan_label_key(own) == plan_label_key(leading):
        return f"SAY: Yes, exactly what I was thinking. {p.name} is in.{hint}\nPROPOSAL: {leading}\nVOTE: agree"
    adopt = min(0.95, max(0.05, 0.15 + 0.5 * coop + 0.2 * (p.round_no - 1) - 0.25 * assertive))
    if v.rng.random() < adopt:
        say = v.pick([f"Fine by me, let's {leading}. {p.name} can back it up.",
                      f"Okay, I'm in: {leading}. {p.name} will cover the rest.",
                      f"Sounds good. {p.name} follows the plan: {leading}."])
        return f"SAY: {say}{hint}\nPROPOSAL: {leading}\nVOTE: agree"
    reason = ("We don't know enough yet." if v.lasers else "We're overthinking this.")
    say = f"I'm not sold on '{leading}'. {reason} I'd rather we {own}; {p.name} is built for it.{hint}"
    return f"SAY: {say}\nPROPOSAL: {own}\nVOTE: disagree"


def _reply_question(v: _Voice) -> str:
    people = v.people()
    template = v.pick(_QUESTIONS if people else [q for q in _QUESTIONS if "{who}" not in q])
    q, _ = v.fill(template, "our")
    return f"QUESTION: {q[:1].upper() + q[1:]}"


def offline_reply(messages: Sequence[Mapping[str, Any]], seed: int, overreach: bool = False) -> str:
    """The offline model's reply text to ``messages`` (pure: same inputs, same text)."""
    p = read_prompt(messages)
    rng = random.Random(stable_hash("content", seed, [(m.get("role"), m.get("content")) for m in messages]))
    v = _voice(p, rng)
    if p.layer == "player":
        if p.task.startswith("discuss"):
            return _reply_discussion(v)
        if p.task.startswith("question"):
            return _reply_question(v)
        return _reply_intent(v)
    if p.task.startswith("react"):
        return _reply_reaction(v)
    return _reply_action(v, overreach)

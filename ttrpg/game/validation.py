"""Narrative overreach detection: characters state intent, the DM and the dice decide.

Why: in Lasers & Feelings a player says what their character *tries* to do; the dice and
the GM say what happens. A model playing a character readily writes "I fire and the guard
drops" or "the captain nods and agrees", which takes the outcome away from the dice and
other characters' reactions away from the DM. The graph checks every character-layer
action with :func:`find_overreach`, re-asks the model up to :data:`ttrpg.defaults.VALIDATION_MAX_ATTEMPTS` times
with :func:`strict_instructions`, and finally falls back to :func:`autocorrect` (flagging
the text for the DM when the correction no longer reads as a sentence).

How (deliberately rules, not a model: fast, deterministic, testable):

1. Quoted speech is masked (a character may *say* "This will end the fight").
   Questions and sentences opening with a conditional ("If it works, ...") are skipped.
2. Each sentence is cut into *segments* at hard boundaries (``;``, ``:``, commas,
   ``and`` + a new subject, ``, which``/``, who``, "so hard that"): an intent word in
   one segment ("I try to hack the door") does not excuse another ("and it opens").
3. Inside a segment, a match is excused by a hedge before it ("try", "want", "hoping",
   "might", "if", "maybe", "says"...) or by being an infinitive ("aiming *to kill*").
4. Three families of patterns: **outcome** (achievement verbs such as kill, defeat,
   decrypt, convince, find; success adverbs such as successfully, easily, undetected;
   and events that only the GM can narrate, such as "the guard drops", "it opens");
   **other_reaction** (someone else's reaction or feeling: salutes, agrees, is
   terrified, cheers); **future** ("which will", "and then the ship", "soon").
   Events and reactions count only when their subject is not the acting character
   ("Kaya drops to one knee" is her action; "the guard drops" is an outcome).

:func:`evaluate` measures precision and recall on the shipped, hand-labelled corpus
``tests/data/overreach_corpus.jsonl`` (hard negatives included on purpose).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Literal, TypedDict

from ttrpg import defaults

Kind = Literal["outcome", "other_reaction", "future"]


class Violation(TypedDict):
    """One overreach: what kind, the exact substring and where it is, and why it is wrong."""

    kind: Kind
    match: str
    start: int
    end: int
    reason: str


# --------------------------------------------------------------------------- patterns

_SELF_WORDS = {"i", "i'm", "i'll", "i'd", "i've", "me", "myself", "we", "we're", "we'll", "we'd", "us"}
_NOT_ACTOR = {
    "the", "a", "an", "my", "his", "her", "their", "its", "our", "your", "this", "that", "these",
    "those", "everyone", "everybody", "nobody", "no", "someone", "both", "all", "after", "once",
    "with", "hoping", "if", "in", "while", "since", "maybe", "hopefully", "soon", "can", "could",
    "does", "do", "what", "let", "would", "when", "as", "then", "he", "it", "they", "there",
    "direct", "nice", "take", "drop", "hold", "get", "stand", "you", "we",
}
_TITLES = {"dr", "doc", "captain", "capt", "lt", "sgt", "mr", "mrs", "ms", "professor", "agent", "commander"}

# Hedges excuse a later match in the same segment: the character only intends or wonders.
_HEDGE = re.compile(
    r"\b(?:try|tries|trying|tried|attempt\w*|want\w*|wish\w*|hope\w*|hoping|"
    r"aim(?:s|ed|ing)? (?:to|for)|aiming|plan(?:s|ning)? to|intend\w*|means? to|"
    r"would|could|might|may|can|cannot|can't|should|maybe|perhaps|possibly|probably|"
    r"if|whether|in case|unless|think|thinks|guess|wonder\w*|asks?|see if|why|"
    r"says?|said|let me|ready to|about to|in order to|like to|expect\w*|until I|to see)\b",
    re.IGNORECASE,
)

_WORD_BEFORE_TO = re.compile(r"\bto\s+$", re.IGNORECASE)
_MODAL_BEFORE = re.compile(r"\b(?:might|may|could|would|should|can|must|to)\s+(?:\w+\s+)?$", re.IGNORECASE)

_O = r"(?:him|her|them|it|the \w+)"
_EXCLUDED_HIT = r"(?!\s+the\s+(?:thrusters|deck|brakes|button|switch|gas|lights|afterburners|ground|dirt|floor|throttle|road)\b)"

# (pattern, reason, subject rule): "any" = whoever the subject; "other" = only when the
# subject is not the acting character (an event or reaction the DM must narrate).
_OUTCOME: list[tuple[str, str, str]] = [
    (r"\bsuccessfully\b|\beffortlessly\b|\beasily\b|\bperfectly\b|\bflawlessly\b|\bsafely\b|\bto safety\b",
     "asserts the action succeeded", "any"),
    (r"\bmanag(?:es|ed|e) to\b|\b(?:was|were|am|is) able to\b|\bsucceed(?:s|ed)?\b(?: in)?",
     "asserts the action succeeded", "any"),
    (r"\bwithout a scratch\b|\bundetected\b|\bunseen\b|\bunnoticed\b|\bwith \w+ seconds? to spare\b|"
     r"\bin (?:seconds|an instant)\b|\bdirect hit\b|\bbullseye\b|\bclean off\b|\bpull(?:s|ed)? off\b",
     "describes the result of the action", "any"),
    (r"\bkill(?:s|ed)?\b|\bdefeat(?:s|ed)?\b|\bdestroy(?:s|ed)?\b|\bknock(?:s|ed)? (?:\w+ ){0,2}(?:out|flat|down|unconscious|cold)\b|"
     r"\bblows? (?:him|her|them|it) (?:away|apart|up)\b|\bblew\b|\bslices?\b|\bsliced\b|\bsends? (?:him|her|them|it) flying\b",
     "states the target is hurt or beaten", "any"),
    (rf"\bhits?\b{_EXCLUDED_HIT}|\bstrikes?\b(?! up)|\bstruck\b|\blands? the (?:blow|punch|shot|hit|kick)\b|\bconnects\b",
     "states the attack lands", "any"),
    (r"\bdecrypts?\b|\bdecrypted\b|\bcrack(?:s|ed)? (?:the|their|its)\b|\bfinds? (?:the|a|an|their|his|her)\b|\bfound\b|"
     r"\bconvinces?\b|\bpersuades?\b|\brepair(?:s|ed)? the\b|\bfix(?:es|ed)? the\b|\bdisarms? the\b|\bbypass(?:es|ed)?\b|"
     r"\boutmaneuver(?:s|ed)?\b|\bwrestles? (?:\w+ ){1,3}(?:from|out of|away)\b|\bdodges? every\b|"
     r"\bbreaks? (?:\w+ ){0,3}down\b|\bbreaks? through\b|\bpins? (?:him|her|it|them)\b|\blose them\b|\blost them\b|"
     r"\bescape[sd]\b|\bwins?\b|\bwon\b(?!')|\bsaves? (?:the|him|her|them)\b|\brescues?\b|"
     r"\b(?:our|my|her|his|their) way (?:past|through|into|out|in|aboard)\b|\bmake it (?:to|out|through|past|in time)\b|"
     r"\bmade it\b|\bjust in time\b|\bsends? (?:\w+ ){1,3}(?:flying|crashing|sprawling|reeling|tumbling)\b",
     "states the task is accomplished", "any"),
    (r"\bplunging\b|\bcutting off\b|\btakes? over\b|\bconfirms\b|\bis (?:gone|over|dead|destroyed|unconscious|open)\b|"
     r"\bare (?:gone|over|dead|destroyed|asleep)\b|\bwe(?:'re| are) in\b(?=\s*[.!,;]|\s*$)",
     "states the result of the action", "any"),
    (r"\bfalls?\b(?! back)(?! for)|\bfell\b|\bfall (?:out|to|down|over|unconscious)\b|\bdrops?\b(?! to (?:one|a|his|her|their) knees?)|"
     r"\bdies\b|\bdied\b|\bexplodes?\b|\bexploded\b|\bcollapses?\b|\bcollapsed\b|\bcrumbles?\b|\bcrumpl(?:es|ed|e)\b|"
     r"\bgo(?:es)? down\b|\bwent down\b|\bstops\b|\bstopped\b|\bslam(?:s|med)? shut\b|\bopens\b|\bopened\b|"
     r"\b(?:slides|swings|clicks|pops|bursts) open\b|\bsnaps back\b|\bspirals?\b|\bfails?\b|\bfailed\b|\bworks\b|\bworked\b|"
     r"\bwakes? up\b|\bwoke up\b|\bshakes\b|\bshatters?\b|\bgives way\b|\bgoes dark\b|\bblows up\b",
     "narrates an outcome only the DM and the dice decide", "other"),
]

_REACTION: list[tuple[str, str, str]] = [
    (r"\bsalutes?\b|\bnods?\b|\bagrees?\b|\blaughs?\b|\bscreams?\b|\bruns? away\b|\bflees\b|\bfled\b|\baccepts?\b|"
     r"\bsmiles?\b|\bsmiled\b|\bbacks? down\b|\bcheers?\b|\bcheered\b|\bpanic(?:s|ked)?\b|\bbelieves?\b|\bbelieved\b|"
     r"\bbuys? it\b|\bhesitates?\b|\bbows?\b|\blets? (?:us|me|them) \w+|\bblush(?:es)?\b|\bthank(?:s|ed)? (?:us|me)\b|"
     r"\bwaves? (?:us|me|them) through\b|\bsurrenders?\b|\bsurrendered\b|\bstares?\b|\bstops? crying\b|\bhugs?\b|"
     r"\btells? (?:me|us)\b|\bsuspects?\b|\btakes? the bait\b|\btake the bait\b|\bflinch(?:es)?\b|\bapologi[sz]es?\b|"
     r"\bunlocks?\b|\bgives? (?:me|us)\b|\boffers? (?:me|us)\b|\bfalls? silent\b|\bforgives?\b|\brelents?\b|"
     r"\blowers? (?:their|his|her)\b|\bdrops? (?:their|his|her)\b|\bshakes? (?:it|my hand)\b|\bgasps?\b|\bobeys?\b|"
     r"\bcompl(?:ies|y)\b|\btrusts? (?:me|us)\b|\bgrins? back\b",
     "narrates another character's reaction, which is the DM's to decide", "other"),
    (r"\bterrified\b|\bimpressed\b|\bintimidated\b|\bcharmed\b|\brelieved\b|\bconvinced\b|\bsmitten\b|\bfurious\b|"
     r"\bdistracted\b|\bafraid\b|\bscared\b|\bstunned\b|\bin awe\b|\bgrateful\b|\bamazed\b|\bdelighted\b|\bfooled\b",
     "states how another character feels, which is the DM's to decide", "other"),
]

_FUTURE_MARKERS: list[tuple[str, str, str]] = [
    (r"(?:\band then|\bsoon|\bafter that|\bby the time)\b(?= (?!I\b)(?:the|a|an|he|she|it|they|we|everyone|nobody|[A-Z]\w*)\b)",
     "narrates what happens next", "any"),
    (r"\bsurely\b|\bdefinitely\b|\bfor sure\b|\bcertainly\b|\bnever see it coming\b|\blong gone\b|\bcan't fail\b|"
     r"\bwithin (?:a|an|the) (?:minute|hour|day)\b|\btomorrow\b|\blater\b|\bin \w+ (?:seconds|minutes)\b",
     "predicts the future", "any"),
]

_WILL = re.compile(
    r"\b([\w']+?)(?:'ll| will| won't| is going to| are going to|'s going to|'re going to| shall)\b(\s+(?:\w+\s+)?be\b)?",
    re.IGNORECASE,
)

_HARD_BOUNDARY = re.compile(
    r"[;:]|,\s*(?=and then\b)|\s(?=and then\b)|,\s*(?:(?:and|but|then|so|while|as)\b)?|"
    r"\s(?:and|but)\s(?=(?:then\s)?(?:the|a|an|he|she|it|they|we|his|her|their|its|my|our|everyone|nobody|both|all|"
    r"sparks|soon|after|[A-Z])\b)|\bso \w+ that\b",
)
_SOFT_BOUNDARY = re.compile(r"\b(?:as|when|until|before|after|while|so|that|because|once|if|whether|then|who|which)\b",
                            re.IGNORECASE)
_SENTENCE = re.compile(r"(?<!\bDr)(?<!\bMr)(?<!\bMrs)(?<!\bMs)(?<!\bLt)(?<!\bSt)(?<!\bSgt)(?<!\bCapt)[.!?]+")
_CONDITIONAL_START = re.compile(r"^\s*(?:if|in case|unless|should|suppose|what if)\b", re.IGNORECASE)
_QUOTE = re.compile(r"\"[^\"]*\"|“[^”]*”")

_TOKEN = re.compile(r"[A-Za-z][\w'-]*")
_BACKGROUND = {"while", "since", "because", "before", "once", "if", "whether", "so", "that", "when"}
_PRONOUNS = {"he", "she", "it", "they", "everyone", "everybody", "nobody", "someone", "somebody", "nothing"}
_DETERMINERS = {"the", "a", "an", "my", "his", "her", "their", "its", "our", "your", "both", "all", "this",
                "these", "those", "every", "each", "no"}
_ADVERBS = {"never", "just", "also", "all", "suddenly", "finally", "immediately", "instantly", "still", "even", "quickly"}
_NOT_VERBS = {"is", "was", "are", "were", "has", "have", "had", "does", "do", "did", "doesn't", "don't", "didn't",
              "can", "can't", "could", "will", "won't", "would", "should", "might", "may", "must", "isn't",
              "wasn't", "aren't", "'s", "its", "his", "this", "as", "us", "always", "perhaps", "towards",
              "needs", "wants", "tries", "hopes", "seems", "plan", "plans", "shall", "being", "been", "be",
              "needed", "wanted", "tried", "hoped", "seemed", "planned", "says", "said", "i"}
_FUNCTION = {"to", "of", "in", "on", "at", "for", "with", "from", "by", "into", "over", "under", "and", "or",
             "but", "than", "if", "as", "that", "so", "the", "a", "an", "like"}

_COMPILED = [
    (kind, re.compile(pattern, re.IGNORECASE if kind != "future" else 0), reason, rule)
    for kind, table in (("outcome", _OUTCOME), ("other_reaction", _REACTION), ("future", _FUTURE_MARKERS))
    for pattern, reason, rule in table
]


# --------------------------------------------------------------------------- structure

def _mask_quotes(text: str) -> str:
    """Blank out quoted speech (same length), so offsets still refer to the original text."""
    return _QUOTE.sub(lambda m: " " * len(m.group(0)), text)


def _sentences(masked: str) -> list[tuple[int, int]]:
    """Sentence spans, end punctuation included."""
    spans, start = [], 0
    for m in _SENTENCE.finditer(masked):
        spans.append((start, m.end()))
        start = m.end()
    if masked[start:].strip():
        spans.append((start, len(masked)))
    return spans


def _segments(masked: str, start: int, end: int) -> list[tuple[int, int]]:
    """Segment spans inside one sentence; each span starts after its boundary."""
    spans, seg_start = [], start
    for m in _HARD_BOUNDARY.finditer(masked, start, end):
        if m.start() > seg_start:
            spans.append((seg_start, m.start()))
        seg_start = m.end()
    if seg_start < end:
        spans.append((seg_start, end))
    return spans


def _actor(masked: str) -> set[str]:
    """The acting character's name (lower case), taken from the text's first words."""
    words = re.findall(r"[A-Za-z][\w'-]*", masked)
    if not words or words[0].lower() in _NOT_ACTOR or words[0] == "I":
        return set()
    names = {words[0].lower()}
    if words[0].lower() in _TITLES and len(words) > 1:
        names.add(words[1].lower())
    return names


def _subject(masked: str, seg_start: int, pos: int, actor: set[str]) -> str:
    """``"self"`` or ``"other"``: the subject of the sub-clause that contains ``pos``."""
    clause_start = seg_start
    for m in _SOFT_BOUNDARY.finditer(masked, seg_start, pos):
        clause_start = m.end()
    words = re.findall(r"[A-Za-z][\w'-]*", masked[clause_start:pos])
    while words and words[0].lower() in {"and", "then", "just", "but"}:
        words.pop(0)
    if not words:
        return "other" if clause_start > seg_start else "self"
    first = words[0].lower()
    return "self" if first in _SELF_WORDS or first in actor else "other"


def _hedged(masked: str, seg_start: int, pos: int) -> bool:
    """Whether the match at ``pos`` is only intended, hoped for, or hypothetical."""
    before = masked[seg_start:pos]
    return bool(_HEDGE.search(before) or _MODAL_BEFORE.search(before))


# --------------------------------------------------------------------------- detection

def find_overreach(text: str) -> list[Violation]:
    """Every place where ``text`` narrates an outcome, another's reaction, or the future."""
    masked = _mask_quotes(text)
    actor = _actor(masked)
    found: list[Violation] = []
    for s_start, s_end in _sentences(masked):
        sentence = masked[s_start:s_end]
        if sentence.rstrip().endswith("?") or _CONDITIONAL_START.match(sentence):
            continue
        for seg_start, seg_end in _segments(masked, s_start, s_end):
            found.extend(_segment_violations(text, masked, seg_start, seg_end, actor))
    found.sort(key=lambda v: v["start"])
    return _dedupe(found)


def _segment_violations(text: str, masked: str, seg_start: int, seg_end: int,
                        actor: set[str]) -> list[Violation]:
    out: list[Violation] = []
    for kind, pattern, reason, rule in _COMPILED:
        for m in pattern.finditer(masked, seg_start, seg_end):
            if _hedged(masked, seg_start, m.start()):
                continue
            if rule == "other" and (_subject(masked, seg_start, m.start(), actor) == "self"
                                    or _clause_intro(masked, seg_start, m.start()) in _BACKGROUND):
                continue
            out.append(_violation(kind, text, m.start(), m.end(), reason))
    out.extend(_other_actor_verbs(text, masked, seg_start, seg_end, actor))
    for m in _WILL.finditer(masked, seg_start, seg_end):
        subject = m.group(1).lower()
        is_self = subject in _SELF_WORDS or subject in actor
        if is_self and not m.group(2):
            continue
        if _hedged(masked, seg_start, m.start()):
            continue
        out.append(_violation("future", text, m.start(), m.end(), "narrates what will happen; only the DM can"))
    return out


def _clause_intro(masked: str, seg_start: int, pos: int) -> str | None:
    """The subordinating word that opens the sub-clause containing ``pos`` (None: main clause)."""
    intro = None
    for m in _SOFT_BOUNDARY.finditer(masked, seg_start, pos):
        intro = m.group(0).lower()
    return intro


def _other_actor_verbs(text: str, masked: str, seg_start: int, seg_end: int,
                       actor: set[str]) -> list[Violation]:
    """Someone or something else *doing* something in a main or relative clause.

    The general rule behind the reaction lexicon: "the mercenaries scatter", "it purrs",
    "who pockets the credits" all narrate what only the DM decides. Background clauses
    ("while she works", "until the guard looks away") describe the situation and are
    left alone, as is anything hedged.
    """
    out: list[Violation] = []
    bounds = [(seg_start, None)] + [(m.end(), m.group(0).lower())
                                    for m in _SOFT_BOUNDARY.finditer(masked, seg_start, seg_end)]
    for i, (c_start, intro) in enumerate(bounds):
        c_end = bounds[i + 1][0] if i + 1 < len(bounds) else seg_end
        if intro not in (None, "then", "who", "which"):
            continue
        tokens = [(m.group(0), m.start(), m.end()) for m in _TOKEN.finditer(masked, c_start, c_end)]
        while tokens and tokens[0][0].lower() in {"and", "then", "just", "but", "now", "suddenly"}:
            tokens.pop(0)
        if (intro is None and actor and tokens and tokens[0][0].lower() in {"he", "she"}
                and re.search(r"\bbut\s*$", masked[max(0, c_start - 6):c_start])):
            continue  # "Rex wants to punch him, but he settles for a glare": still Rex.
        verb = _find_other_verb(tokens, intro, actor)
        if verb is None or _hedged(masked, seg_start, verb[1]):
            continue
        kind: Kind = "outcome" if (intro == "which" or tokens[0][0].lower() in {"it", "its"}) else "other_reaction"
        out.append(_violation(kind, text, verb[1], verb[2],
                              "narrates what someone or something else does; the DM decides that"))
    return out


def _find_other_verb(tokens: list[tuple[str, int, int]], intro: str | None,
                     actor: set[str]) -> tuple[str, int, int] | None:
    """The finite verb of a clause whose subject is not the acting character, if any."""
    if not tokens:
        return None
    words = [t[0].lower() for t in tokens]
    if intro in ("who", "which"):
        return _first_verb(tokens, 0, base_ok=True)
    first = words[0]
    if first in _SELF_WORDS or first in actor or first == "i":
        return None
    if first in _PRONOUNS:
        return _first_verb(tokens, 1, base_ok=first in {"they", "everyone", "nobody", "everybody"} or first == "they")
    if first in _DETERMINERS or (tokens[0][0][:1].isupper() and first not in _NOT_ACTOR):
        for k in range(1, min(len(tokens), 5)):
            word, prev = words[k], words[k - 1]
            if word in _FUNCTION or word in _NOT_VERBS:
                return None
            if prev.endswith("'s"):
                continue
            if k >= 2 or (k == 1 and first not in _DETERMINERS):
                if _looks_finite(word) and not prev.endswith("s"):
                    return tokens[k]
                if prev.endswith("s") and k >= 2 and not prev.endswith("ss") and not word.endswith("ly"):
                    return tokens[k]
    return None


def _first_verb(tokens: list[tuple[str, int, int]], start: int, base_ok: bool) -> tuple[str, int, int] | None:
    for tok in tokens[start:start + 3]:
        word = tok[0].lower()
        if word in _ADVERBS or word.endswith("ly"):
            continue
        if word in _NOT_VERBS or word in _FUNCTION:
            return None
        return tok if (base_ok or _looks_finite(word)) else None
    return None


def _looks_finite(word: str) -> bool:
    """A third-person present (-s) or past (-ed) verb form, roughly."""
    if word in _NOT_VERBS or word.endswith(("ss", "us", "'s", "ous")):
        return False
    return word.endswith(("s", "ed"))


def _violation(kind: Kind, text: str, start: int, end: int, reason: str) -> Violation:
    return {"kind": kind, "match": text[start:end], "start": start, "end": end, "reason": reason}


def _dedupe(found: list[Violation]) -> list[Violation]:
    """Drop matches that lie inside an earlier, longer one."""
    kept: list[Violation] = []
    for v in found:
        if any(k["start"] <= v["start"] and v["end"] <= k["end"] for k in kept):
            continue
        kept.append(v)
    return kept


# --------------------------------------------------------------------------- retries

_STRICT = [
    "",
    ("IMPORTANT: your last answer narrated what happened. Describe only what your character "
     "TRIES or INTENDS to do (\"I try to...\", \"I aim at...\"). Do not say whether it works, "
     "how anyone else reacts, or what happens next: the dice and the DM decide that."),
    ("STRICT RULE, FINAL ATTEMPT: write ONE sentence of the form \"<your character> tries to "
     "<action>\" or \"I want to <action>\". Forbidden: any result (hits, kills, opens, "
     "succeeds, falls, manages to), any other character's or NPC's reaction or feeling "
     "(nods, screams, is impressed), and any future (will, then, soon). If unsure, state "
     "only the attempt and stop."),
]


def strict_instructions(attempt: int) -> str:
    """Extra instructions for the ``attempt``-th try: none at first, then stricter each time
    (the last, strictest, from :data:`ttrpg.defaults.VALIDATION_MAX_ATTEMPTS` on)."""
    if attempt < 1:
        raise ValueError(f"attempt counts from 1, got {attempt}")
    return _STRICT[min(attempt, defaults.VALIDATION_MAX_ATTEMPTS, len(_STRICT)) - 1]


# --------------------------------------------------------------------------- autocorrect

_REPLACE = [
    (re.compile(r"\bmanages to\b", re.IGNORECASE), "tries to"),
    (re.compile(r"\bmanaged to\b|\bwas able to\b", re.IGNORECASE), "tried to"),
    (re.compile(r"\bsucceeds? in\b", re.IGNORECASE), "tries"),
]
_REMOVABLE_WORDS = re.compile(
    r"^(?:successfully|effortlessly|easily|perfectly|flawlessly|safely|undetected|unseen|unnoticed|"
    r"without a scratch|with \w+ seconds? to spare|in (?:seconds|an instant)|surely|definitely|certainly|"
    r"for sure|clean off)$", re.IGNORECASE)
_DANGLING = {"and", "but", "or", "then", "which", "who", "as", "so", "until", "when", "that", "while",
             "to", "the", "a", "an", "with", "of", "at", "before", "after"}
_INTENT = re.compile(r"\b(?:try|tries|trying|want|wants|aim|aims|attempt\w*|hope\w*|plan|intend\w*|going to|'ll|will)\b",
                     re.IGNORECASE)


def autocorrect(text: str, violations: list[Violation]) -> tuple[str, bool]:
    """Remove the violating words or clauses; ``needs_review`` when the rest is not a sentence.

    Success markers that have an intent equivalent ("manages to") are rewritten; success
    adverbs ("easily") are dropped; a violating clause after the first one in its sentence
    is cut with its connector ("..., and it opens"); a violation in a sentence's first
    clause removes the sentence.
    """
    if not violations:
        return text, False
    masked = _mask_quotes(text)
    cuts: list[tuple[int, int, str]] = []
    for v in violations:
        cuts.append(_cut_for(text, masked, v))
    corrected = _apply_cuts(text, cuts)
    corrected = _tidy(corrected)
    return corrected, _needs_review(corrected)


def _cut_for(text: str, masked: str, v: Violation) -> tuple[int, int, str]:
    match = text[v["start"]:v["end"]]
    for pattern, replacement in _REPLACE:
        if pattern.fullmatch(match):
            return v["start"], v["end"], replacement
    if _REMOVABLE_WORDS.match(match):
        return v["start"], v["end"], ""
    for s_start, s_end in _sentences(masked):
        if not s_start <= v["start"] < s_end:
            continue
        segments = _segments(masked, s_start, s_end)
        for i, (g_start, g_end) in enumerate(segments):
            if g_start <= v["start"] < max(g_end, g_start + 1) or (i + 1 < len(segments) and v["start"] < segments[i + 1][0]):
                if i == 0:
                    return s_start, s_end, ""
                prev_end = segments[i - 1][1]
                tail = s_end if i == len(segments) - 1 else segments[i + 1][0]
                end_punct = masked[g_end:s_end] if i == len(segments) - 1 else ""
                return prev_end, tail, end_punct.strip()
        return s_start, s_end, ""
    return v["start"], v["end"], ""


def _apply_cuts(text: str, cuts: list[tuple[int, int, str]]) -> str:
    merged: list[tuple[int, int, str]] = []
    for start, end, rep in sorted(cuts):
        if merged and start < merged[-1][1]:
            p_start, p_end, p_rep = merged[-1]
            if end > p_end:
                merged[-1] = (p_start, end, rep)
            elif (p_end - p_start) < (end - start):
                merged[-1] = (start, end, rep)
            continue
        merged.append((start, end, rep))
    out = text
    for start, end, rep in reversed(merged):
        out = out[:start] + rep + out[end:]
    return out


def _tidy(text: str) -> str:
    text = re.sub(r"\s+", " ", text).strip()
    text = re.sub(r"\s+([,.;:!?])", r"\1", text)
    text = re.sub(r",\s*([.;:!?])", r"\1", text)
    text = re.sub(r"^[,.;:!?\s]+", "", text)
    words = text.rstrip(".!?;:, ").split()
    while words and words[-1].lower().strip(",;:") in _DANGLING:
        words.pop()
        text = " ".join(words)
    if text and text[-1] not in ".!?\"”":
        text = text.rstrip(",;: ") + "."
    return text[:1].upper() + text[1:] if text else text


def _needs_review(corrected: str) -> bool:
    """Whether a human should look: too short, no intent or action left, still overreaching."""
    words = re.findall(r"[A-Za-z][\w'-]*", corrected)
    if len(words) < 3:
        return True
    if words[-1].lower() in _DANGLING:
        return True
    has_subject_verb = bool(re.match(r"^\s*(?:I|We|[A-Z][\w'.-]*(?: [A-Z][\w'-]*)?)\s+[a-z]", corrected))
    if not (has_subject_verb or _INTENT.search(corrected)):
        return True
    return bool(find_overreach(corrected))


# --------------------------------------------------------------------------- evaluation

def evaluate(corpus_path: str | Path) -> dict:
    """Precision, recall and the confusion counts of :func:`find_overreach` on a corpus.

    The corpus is JSON lines ``{"text", "overreach": bool, "kind"}``; a text counts as
    flagged when at least one violation is found.
    """
    path = Path(corpus_path)
    tp = fp = fn = tn = 0
    misses: list[dict] = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        row = json.loads(line)
        flagged = bool(find_overreach(row["text"]))
        expected = bool(row["overreach"])
        if flagged and expected:
            tp += 1
        elif flagged:
            fp += 1
            misses.append({"text": row["text"], "error": "false positive"})
        elif expected:
            fn += 1
            misses.append({"text": row["text"], "error": "false negative"})
        else:
            tn += 1
    precision = tp / (tp + fp) if tp + fp else 1.0
    recall = tp / (tp + fn) if tp + fn else 1.0
    return {"precision": precision, "recall": recall, "tp": tp, "fp": fp, "fn": fn, "tn": tn,
            "errors": misses}

"""Narrative overreach detection: characters state intent, the DM and the dice decide.

Why: in Lasers & Feelings a player says what their character *tries* to do; the dice and
the GM say what happens. A model playing a character readily writes "I fire and the guard
drops" or "the captain nods and agrees", which takes the outcome away from the dice and
other characters' reactions away from the DM. The graph checks every character-layer
action with :func:`find_overreach`, re-asks the model up to :data:`ttrpg.defaults.VALIDATION_MAX_ATTEMPTS` times
with :func:`strict_instructions`, and finally falls back to :func:`autocorrect` (flagging
the text for the DM when the correction no longer reads as a sentence).

How (deliberately rules, not a model: fast, deterministic, testable). The detector reads
the *structure* of each sentence rather than matching whole phrases:

1. Quoted speech is masked (a character may *say* "This will end the fight"); a reply
   that opens with a speaker label ("Zix: ...") is speech, unless the label names someone
   else ("The ambassador: ..."), which writes another character's lines. Questions and
   sentences that open with a conditional are hypothetical and skipped.
2. Each sentence is tokenised (contractions expanded) and cut into *clauses* at
   punctuation and connectives; each clause keeps its connective (``and``, ``which``,
   ``as``, ``so``, ``before``...), because the connective says how the clause relates to
   the attempt: a relative or coordinated clause asserts, a background clause
   (``while``, ``when``, ``before``) sets the scene, a purpose clause (``so``, ``so that``)
   and the complement of a hope, a thought or a speech verb are only intended.
3. In each clause the subject (pronoun, noun phrase, name) and the verb group (modals,
   future, ``be``/``have`` auxiliaries, tense, passive) are found. The subject is *self*
   (I, we, the acting character found in the first clause, their body parts and the
   pronouns that refer to them) or *other* (anyone or anything else, including the
   character's own shot, code or speech once it acts on the world).
4. The clause is judged from that structure with small verb classes:

   * another subject with a finite (non-modal) verb narrates what the DM decides:
     ``other_reaction`` for people and creatures, ``outcome`` for things and events,
     ``future`` when it is predicted (will, going to, about to, and then, soon);
   * a passive or a result state ("the guard is knocked out", "were discovered",
     "is destroyed"), past narration of others, and another's feelings are outcomes or
     reactions;
   * for the character itself: an achievement verb ("defeat", "convince", "repair"), a
     perception or discovery verb with a found object ("spot the sniper", "realize
     that..."), a resultative ("kick the door off its hinges", "bargain him down to
     half"), a causative ("made the fuel line rupture"), a second verb that exploits the
     first ("hack the console and download the codes"), a participle clause of result
     after a comma ("..., knocking him out cold"; any verb of change of state, by class or
     by its causative suffix, and "leaving <them> <state>"), arrival ("lands on the crate",
     "reach the pod"), a completion "just as / seconds before <event>", pre-empting a
     reaction ("before he can turn"), and adjuncts that say how it turned out ("two
     minutes later", "unheard", "without rattling a single chain", "successfully");
   * a trailing ``as`` clause of someone else (a reaction) or of a thing that changes, an
     ``until`` clause that the action brings about, an elided confirmation ("..., and
     they are"), and certainty about others' future ("knowing the crew will ...");
   * hedges make a clause clean: intent verbs and their infinitives (try to, attempt,
     hoping, aiming), modals, purpose and conditional clauses, questions.

:func:`evaluate` measures precision and recall on labelled lines (any checker: see
:mod:`ttrpg.game.judge` for the rules with the model as referee); the repository ships
``tests/data/overreach_corpus.jsonl`` and the independently labelled ``tests/data/overreach/``
parts (hard negatives included on purpose): ``dev`` and ``test``, which the rules were written
against, then ``fresh`` to ``fresh5``, each held out until it was scored. ``fresh5``, never read
by anyone writing rules, is the honest measure: precision 0.90, recall 0.79. Rounds of rules
written from each part's misses moved the next unseen part by less than a point: read-only
sentence structure does not reach every way a writer can state a result.
The word classes live in ``ttrpg/data/overreach_lexicon.json``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable
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


# --------------------------------------------------------------------------- lexicon
#
# Small verb classes. The structure of the clause decides whether a member matters: an
# achievement verb only counts as a finite verb of the acting character, a result verb
# only as a participle clause after the attempt, and so on.

def _ws(text: str) -> frozenset[str]:
    return frozenset(text.split())


# The word lists (the verb lexicon, irregular forms, the verb and noun classes) live in
# ttrpg/data/overreach_lexicon.json, loaded once here; this module holds the rules that read them.
_LEXICON = json.loads((Path(__file__).resolve().parent.parent / "data" / "overreach_lexicon.json")
                      .read_text(encoding="utf-8"))


def _lex(name: str) -> frozenset[str]:
    return frozenset(_LEXICON[name])


# The verb lexicon is wide (common English verbs, not only the game's own): a clause is only read
# when its verb is known, so an unseen verb ("the merchant's breathing steadies", "the chirps
# become speech") must be.
_VERB_BASES = _lex("verb_bases")

_IRREGULAR = {  # base: (past forms, participles)
    base: (" ".join(forms[0]), " ".join(forms[1])) for base, forms in _LEXICON["irregular"].items()
}
_EXTRA_BASES = _ws("be have do overcome outrun know")


#: Two-syllable verbs stressed on the last, which double it like one-syllable ones (set -> setting).
_STRESSED_LAST = _ws("admit commit permit submit omit emit forget regret upset outwit acquit abet beset")


def _inflect(base: str) -> dict[str, str]:
    """form -> tag (base, s, past, pp, ing) for one regular or irregular verb."""
    forms = {base: "base"}
    if base.endswith(("s", "sh", "ch", "x", "z", "o")):
        forms[base + "es"] = "s"
    elif base.endswith("y") and base[-2:-1] not in "aeiou":
        forms[base[:-1] + "ies"] = "s"
    else:
        forms[base + "s"] = "s"
    if base.endswith("ie"):
        ed, ing = base + "d", base[:-2] + "ying"
    elif base.endswith("e"):
        ed, ing = base + "d", (base + "ing" if base.endswith(("ee", "ye", "oe")) else base[:-1] + "ing")
    elif base.endswith("y") and base[-2:-1] not in "aeiou":
        ed, ing = base[:-1] + "ied", base + "ing"
    else:
        ed, ing = base + "ed", base + "ing"
    forms.setdefault(ing, "ing")
    if (len(base) >= 3 and base[-1] in "bdgklmnprtvz" and base[-2] in "aeiou" and base[-3] not in "aeiou"
            and (len(re.findall("[aeiou]+", base)) == 1 or base in _STRESSED_LAST
                 or not base.endswith(("en", "er", "on", "al", "el", "it", "et", "ol")))) \
            or base in ("patrol", "level"):
        forms.setdefault(base + base[-1] + "ing", "ing")
        double_ed = base + base[-1] + "ed"
    else:
        double_ed = None
    if base in _IRREGULAR:
        past, pp = _IRREGULAR[base]
        for f in past.split():
            forms.setdefault(f, "past")
        for f in pp.split():
            forms[f] = "past" if forms.get(f) == "past" else forms.get(f, "pp")
    else:
        forms.setdefault(ed, "past")
        if double_ed:
            forms.setdefault(double_ed, "past")
    return forms


def _build_forms() -> dict[str, tuple[str, str]]:
    """form -> (base, tag). "saw" and "fell" are read as the past of see and fall."""
    table: dict[str, tuple[str, str]] = {}
    for base in sorted(_VERB_BASES | _EXTRA_BASES):
        for form, tag in _inflect(base).items():
            if form not in table or tag == "base":
                table[form] = (base, tag)
    for form in ("am", "is", "are"):
        table[form] = ("be", "s" if form == "is" else "base")
    table["was"], table["were"] = ("be", "past"), ("be", "past")
    table["has"] = ("have", "s")
    return table





_SELF_PRON = _ws("i we")
_OTHER_PRON = _ws("he she they you everyone everybody nobody someone somebody whoever anyone anybody none")
_MAYBE_PRON = _ws("it this that something nothing everything all both each")
_DETS = _ws("the a an this these those my our your his her their its every each both all no some any another "
            "one two three four five several many few whole")
_PLURAL_DETS = _ws("these those both all two three four five several many few")
_POSS_PRON = _ws("my our your his her their its")
_PREPS = _ws("of from in on at with behind near around above below under inside beside across over by into onto "
             "through toward towards against along past after before within without during despite like off up "
             "down out for to instead")
_NP_PREPS = _ws("of from in on at with behind near around above below under inside beside across over along "
                "aboard outside")
_AUX_MODAL = _ws("can could may might must should would shall")
_BE = _ws("am is are was were be been being")
_HAVE = _ws("has have had")
_DO = _ws("do does did")
_ADV_SKIP = _ws("not never just already still also even all both finally suddenly immediately instantly now then "
                "quickly slowly quietly carefully almost nearly again obediently meekly gently really simply only "
                "merely soon once first")
_NOT_ADVERB_LY = _ws("only fly ally belly family holy rely reply apply supply jelly bully rally early ugly lonely "
                     "friendly deadly likely lovely silly curly wily")
_ABBREV = _ws("dr mr mrs ms lt st sgt capt sr jr prof gen col maj cpt cmdr")
_TITLES = _lex("titles")
_BODY = _lex("body")
_EXPRESSION = _lex("expression")
_PERSONS = _lex("persons")
_PLURAL_NOUNS = _ws("people men women children police crew crowd")

# Verb classes (base forms).
_INTENT_V = _lex("intent_v")
_SPEECH = _lex("speech")  # manner of speaking too: "growls that the pirates picked the wrong ship" is speech
_COMPLEMENT = _lex("complement") | _SPEECH
_HEDGE_NOUNS = _lex("hedge_nouns")
_REQUEST = _lex("request")
_HOPE_LIKE = _lex("hope_like")
_PERCEPT = _lex("percept")
_ACHIEVE = _lex("achieve")
_OUT_VERB = re.compile(r"^out-?(?:run|ran|pac|maneuv|manoeuv|fl[yi]|flew|draw|drew|wit|smart|last|gun|climb|"
                       r"shoot|shot|fight|fought|bid|think|thought|star|rac|play|distanc|flank|swim|swam|sprint)")
_CONTEST = _lex("contest")
_EXPLOIT = _lex("exploit")
_ENTER = _lex("enter")
_ENTER_PARTICLES = _ws("inside in into through aboard")
_AS_EVENT = _lex("as_event")
_STRIKE_RESULT = _ws("miss misses hit hits land lands connect connects graze grazes ricochet ricochets glance glances")
# Verbs of change of state done to something (put out, finish, bring down, mend, calm): as a
# participle after the attempt ("..., smothering the flames") they state its result.
_PART_RESULT = _lex("part_result")
_CHANGE_SUFFIX = ("ize", "ise", "ify", "en")  # neutralize, pacify, weaken: causative by their morphology
_NOT_CHANGE = _lex("not_change")


def _change_verb(b: str) -> bool:
    """A verb whose object ends up changed: the class above, or a causative by its suffix."""
    return b in _PART_RESULT or (b.endswith(_CHANGE_SUFFIX) and len(b) > 5 and b not in _NOT_CHANGE)


_EVENT_RESULT = _lex("event_result")
_REACTION = _lex("reaction")
_MENTAL = _lex("mental")
_WAIT = _lex("wait")
_EMOTION = _lex("emotion")
_EVENTIVE_PP = _lex("eventive_pp")
_ATTRIB_REACTION = _lex("attrib_reaction")
_RESULT_ADJ = _lex("result_adj")
_SELF_RESULT_ADJ = _lex("self_result_adj")
_SELF_WILL_BE = _lex("self_will_be")
_STATIVE_PP = _lex("stative_pp")
_WAY_VERBS = _lex("way_verbs")
_FORCE_VERBS = _lex("force_verbs")
_FORCE_OPEN = _lex("force_open")
_RESULT_PARTICLES = {
    "off": _ws("blast shoot knock kick rip tear cut slice blow smash"),
    "open": _FORCE_OPEN,
    "down": _ws("knock take shoot break cut gun mow bring beat wrestle tackle talk bargain haggle"),
    "out": _ws("knock take put stamp snuff"),
    "flat": _ws("knock lay"),
    "apart": _ws("blow tear rip break blast shoot"),
    "loose": _ws("pull wrench pry cut break shake"),
    "free": _ws("pull wrench pry cut break"),
    "away": _ws("wrestle wrench blow"),
    "clear": _ws("steer pull haul drag lift swing yank jerk heave tow guide bank"),  # "steer the barge clear of"
}
_SPREAD = _ws("flying sprawling crashing reeling tumbling spinning")
_GROUND = _ws("ground floor deck dirt wall mat")
_CONTROLS = _lex("controls")

# Clause-level connectives.
_BACKGROUND = _ws("while when whenever because since once though although whereas until till before after as "
                  "moment instant time now")
_HEDGE_INTRO = _ws("if unless whether so-that so lest in-case as-if as-though even-if")
_RELATIVE = _ws("which who whom where whereupon")
_CLOSE_WORDS = _ws("just right moments seconds second instant heartbeat heartbeats breath moment split")
_HEDGE_WORDS = _ws("try tries trying tried attempt attempts attempting attempted want wants wanting wanted hope "
                   "hopes hoping hoped aim aims aiming aimed plan plans planning intend intends intending mean means "
                   "would could might may can should must maybe perhaps possibly probably hopefully wish wishes "
                   "wishing ready if whether unless pretend pretends pretending determined best effort")
_FUTURE_LEAD = _ws("soon tomorrow later")
_LEAD_SKIP = _ws("just then now suddenly finally immediately instantly meanwhile slowly quickly together again "
                 "also still even soon tomorrow later eventually yet so thanks")

# Certainty markers: phrase -> kind.
_MARKERS: list[tuple[tuple[str, ...], Kind, str]] = [
    (tuple(p.split()), kind, reason) for p, kind, reason in [
        ("successfully", "outcome", "asserts the action succeeded"),
        ("effortlessly", "outcome", "asserts the action succeeded"),
        ("easily", "outcome", "asserts the action succeeded"),
        ("flawlessly", "outcome", "asserts the action succeeded"),
        ("perfectly", "outcome", "asserts the action succeeded"),
        ("safely", "outcome", "asserts the action succeeded"),
        ("to safety", "outcome", "asserts the action succeeded"),
        ("undetected", "outcome", "asserts the action succeeded"),
        ("invisible to", "outcome", "asserts the action succeeded"),
        ("unseen", "outcome", "asserts the action succeeded"),
        ("unnoticed", "outcome", "asserts the action succeeded"),
        ("untouched", "outcome", "asserts the action succeeded"),
        ("unharmed", "outcome", "asserts the action succeeded"),
        ("unscathed", "outcome", "asserts the action succeeded"),
        ("without a scratch", "outcome", "asserts the action succeeded"),
        ("without a hitch", "outcome", "asserts the action succeeded"),
        ("with ease", "outcome", "asserts the action succeeded"),
        ("in seconds", "outcome", "asserts the action succeeded"),
        ("in an instant", "outcome", "asserts the action succeeded"),
        ("in record time", "outcome", "asserts the action succeeded"),
        ("on the first try", "outcome", "asserts the action succeeded"),
        ("on my first try", "outcome", "asserts the action succeeded"),
        ("direct hit", "outcome", "describes the result of the action"),
        ("bullseye", "outcome", "describes the result of the action"),
        ("just in time", "outcome", "asserts the action succeeded in time"),
        ("in the nick of time", "outcome", "asserts the action succeeded in time"),
        ("seconds to spare", "outcome", "asserts the action succeeded in time"),
        ("second to spare", "outcome", "asserts the action succeeded in time"),
        ("to spare", "outcome", "asserts the action succeeded in time"),
        ("manage to", "outcome", "asserts the action succeeded"),
        ("manages to", "outcome", "asserts the action succeeded"),
        ("managed to", "outcome", "asserts the action succeeded"),
        ("was able to", "outcome", "asserts the action succeeded"),
        ("were able to", "outcome", "asserts the action succeeded"),
        ("am able to", "outcome", "asserts the action succeeded"),
        ("is able to", "outcome", "asserts the action succeeded"),
        ("are able to", "outcome", "asserts the action succeeded"),
        ("been able to", "outcome", "asserts the action succeeded"),
        ("sure enough", "outcome", "confirms that what was attempted came true"),
        ("within seconds", "outcome", "skips ahead past the outcome"),
        ("within moments", "outcome", "skips ahead past the outcome"),
        ("within minutes", "outcome", "skips ahead past the outcome"),
        ("all the way to", "outcome", "states the movement reached its goal"),
        ("all the way into", "outcome", "states the movement reached its goal"),
        ("all the way through", "outcome", "states the movement reached its goal"),
        ("all the way back to", "outcome", "states the movement reached its goal"),
        ("succeed in", "outcome", "asserts the action succeeded"),
        ("succeeds in", "outcome", "asserts the action succeeded"),
        ("succeeded in", "outcome", "asserts the action succeeded"),
        ("succeeds", "outcome", "asserts the action succeeded"),
        ("succeeded", "outcome", "asserts the action succeeded"),
        *((f"{pull} {it} off", "outcome", "asserts the action succeeded")
          for pull in ("pull", "pulls", "pulled", "pulling") for it in ("it", "this", "that", "the job", "the heist")),
        *((f"{pull} off {a}", "outcome", "asserts the action succeeded")
          for pull in ("pull", "pulls", "pulled", "pulling") for a in ("a", "an")),
        ("make it to", "outcome", "asserts the task is accomplished"),
        ("make it out", "outcome", "asserts the task is accomplished"),
        ("make it through", "outcome", "asserts the task is accomplished"),
        ("make it past", "outcome", "asserts the task is accomplished"),
        ("make it in time", "outcome", "asserts the task is accomplished"),
        *((f"{make} it {where}", "outcome", "asserts the task is accomplished")
          for make in ("make", "makes", "making") for where in ("across", "over", "aboard", "inside", "back")),
        *((f"makes it {where}", "outcome", "asserts the task is accomplished")
          for where in ("to", "out", "through", "past", "in time")),
        ("all the way across", "outcome", "states the movement reached its goal"),
        ("all the way up", "outcome", "states the movement reached its goal"),
        ("all the way down", "outcome", "states the movement reached its goal"),
        ("made it", "outcome", "asserts the task is accomplished"),
        ("clean off", "outcome", "describes the result of the action"),
        ("clean through", "outcome", "describes the result of the action"),
        ("out of danger", "outcome", "describes the result of the action"),
        ("out the other side", "outcome", "states the movement got through"),
        ("harmlessly", "outcome", "states how the attack turned out"),
        ("in vain", "outcome", "states the attempt failed"),
        ("for a fortune", "outcome", "states the deal was made"),
        ("to reveal", "outcome", "states what the action uncovers; the DM reveals that"),
        ("made certain of it", "future", "predicts the future"),
        ("none the wiser", "outcome", "states nobody noticed"),
        ("is the wiser", "outcome", "states nobody noticed"),
        ("out cold", "outcome", "states the result of the action"),
        ("clean out of", "outcome", "states the result of the action"),
        ("long enough for", "outcome", "states the delay worked"),
        ("in stitches", "other_reaction", "states how others react"),
        ("cleanly", "outcome", "asserts the action succeeded"),
        ("there she is", "outcome", "states what the character finds; the DM reveals that"),
        ("there he is", "outcome", "states what the character finds; the DM reveals that"),
        ("ends up", "outcome", "states how the attempt turned out"),
        ("ended up", "outcome", "states how the attempt turned out"),
        ("made sure of it", "future", "predicts the future"),
        ("there it is", "outcome", "states what the character finds; the DM reveals that"),
        ("there they are", "outcome", "states what the character finds; the DM reveals that"),
        ("no luck", "outcome", "states the attempt failed"),
        *((f"{end} up with", "outcome", "states how the attempt turned out")
          for end in ("end", "ends", "ended", "ending")),
        *((f"{turn} out", "outcome", "states what the character finds; the DM reveals that")
          for turn in ("turns", "turned")),
        *((f"off {whose} trail", "outcome", "states the pursuers were shaken off")
          for whose in ("her", "his", "their", "our", "my", "its", "the")),
        ("off the scent", "outcome", "states the pursuers were shaken off"),
        ("out of the air", "outcome", "states the catch succeeded"),
        ("out of midair", "outcome", "states the catch succeeded"),
        ("out of mid-air", "outcome", "states the catch succeeded"),
        ("to the highest bidder", "outcome", "states the deal was made"),
        ("no doubt about it", "future", "predicts the future"),
        ("without a doubt", "future", "predicts the future"),
        ("it's destiny", "future", "predicts the future"),
        ("to no avail", "outcome", "states the attempt failed"),
        ("without success", "outcome", "states the attempt failed"),
        ("just in the nick of time", "outcome", "asserts the action succeeded in time"),
        ("long gone", "future", "predicts the future"),
        ("surely", "future", "predicts the future"),
        ("definitely", "future", "predicts the future"),
        ("certainly", "future", "predicts the future"),
        ("for sure", "future", "predicts the future"),
        ("never see it coming", "future", "predicts the future"),
        ("can not fail", "future", "predicts the future"),
        ("within the hour", "future", "predicts the future"),
        ("within a minute", "future", "predicts the future"),
        ("within the minute", "future", "predicts the future"),
        ("by morning", "future", "predicts the future"),
    ]
]
_MARKER_FIRST: dict[str, list[tuple[tuple[str, ...], Kind, str]]] = {}
for _m in sorted(_MARKERS, key=lambda m: -len(m[0])):
    _MARKER_FIRST.setdefault(_m[0][0], []).append(_m)
_KNOW = _lex("know")
_FIND_V = _ws("find locate spot trace detect pinpoint")
# "I can't find a better plan / a way / the words": no search of the scene, no result
_ABSTRACT_FINDS = _ws("way ways reason words plan plans solution answer excuse time chance better")
_RESPONSE = _ws("answer answers reply replies response responses confession nod yes")
_FOUND_PHRASAL = {"figure": "out", "work": "out", "make": "out", "piece": "together", "suss": "out",
                  "catch": "sight", "sniff": "out", "dig": "up", "track": "down", "hunt": "down", "ferret": "out"}
_STILL_ADJ = _lex("still_adj")
_GENERIC_LABELS = _lex("generic_labels")


_VERB_BASES = _VERB_BASES | _PERCEPT | _ACHIEVE | _CONTEST | _EXPLOIT | _PART_RESULT | _EVENT_RESULT \
    | _REACTION | _INTENT_V | _COMPLEMENT | _WAY_VERBS | _FORCE_VERBS | _ENTER | _AS_EVENT | _ws("cave")
_FORMS = _build_forms()
# Past forms that are also participles (regular -ed and irregulars listed as both).
_PP_OK = ({f for f, (b, t) in _FORMS.items() if t in ("past", "pp") and f.endswith("ed")}
          | {p for ps in _IRREGULAR.values() for p in ps[1].split()})


# --------------------------------------------------------------------------- tokens

class _Tok:
    __slots__ = ("w", "s", "e", "cap", "poss")

    def __init__(self, w: str, s: int, e: int, cap: bool, poss: bool = False):
        self.w, self.s, self.e, self.cap, self.poss = w, s, e, cap, poss

    def __repr__(self) -> str:  # pragma: no cover - debugging aid
        return f"{self.w}{'*' if self.poss else ''}"


_TOKEN_RE = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9'\-]*[A-Za-z0-9])?|[.!?]+|[,;:()*\[\]\u2014\u2013]|(?<=\s)--?(?=\s)")
_NT = {"don't": "do", "doesn't": "does", "didn't": "did", "isn't": "is", "aren't": "are", "wasn't": "was",
       "weren't": "were", "couldn't": "could", "wouldn't": "would", "shouldn't": "should", "hasn't": "has",
       "haven't": "have", "hadn't": "had", "won't": "will", "can't": "can", "mustn't": "must", "ain't": "is",
       "cannot": "can", "needn't": "need", "mightn't": "might"}
_S_IS = _ws("it he she that there here what who where this everyone everything nothing someone somebody nobody "
            "let")


def _tokens(masked: str) -> list[_Tok]:
    out: list[_Tok] = []
    for m in _TOKEN_RE.finditer(masked):
        raw = m.group(0)
        s, e = m.start(), m.end()
        low = raw.lower()
        cap = raw[0].isupper()
        if "'" not in low and low != "cannot":
            out.append(_Tok(low, s, e, cap))
            continue
        if low in _NT:
            out.append(_Tok(_NT[low], s, e, cap))
            out.append(_Tok("not", s, e, False))
            continue
        if low == "i'm":
            out.extend((_Tok("i", s, e, True), _Tok("am", s, e, False)))
            continue
        head, _, tail = low.partition("'")
        if tail in ("ll", "re", "ve", "d"):
            out.append(_Tok(head, s, e, cap))
            out.append(_Tok({"ll": "will", "re": "are", "ve": "have", "d": "would"}[tail], s, e, False))
        elif tail == "s" and head == "let":
            out.extend((_Tok("let", s, e, cap), _Tok("us", s, e, False)))
        elif tail == "s" and head in _S_IS:
            out.extend((_Tok(head, s, e, cap), _Tok("is", s, e, False)))
        elif tail == "s" or tail == "":
            out.append(_Tok(head, s, e, cap, poss=True))
        else:
            out.append(_Tok(low, s, e, cap))
    return out


def _split_sentences(toks: list[_Tok]) -> list[tuple[list[_Tok], str]]:
    """Sentences (tokens, end mark); stage directions in * * or ( ) are sentences of their own."""
    out, cur = [], []
    for i, t in enumerate(toks):
        w = t.w
        if w[0] in ".!?":
            if w == "." and cur and cur[-1].w in _ABBREV:
                continue
            if cur:
                out.append((cur, "?" if "?" in w else w[0]))
            cur = []
        elif w in ("*", "(", ")", "[", "]"):
            if cur:
                out.append((cur, ""))
            cur = []
        else:
            cur.append(t)
    if cur:
        out.append((cur, ""))
    return out


# --------------------------------------------------------------------------- clauses

class _Clause:
    __slots__ = ("toks", "intro", "punct", "close_at", "next_intro")

    def __init__(self, toks, intro, punct, close_at=None):
        self.toks, self.intro, self.punct, self.close_at = toks, intro, punct, close_at
        self.next_intro: str | None = None  # the connective of the following clause ("notice | that ...")


_PUNCT = _ws(", ; : \u2014 \u2013 - --")
_SPLIT = _ws("and but or yet nor then so as while when whenever because since once until till before after if "
             "unless whether though although which who whom where whereupon that whereas lest")


def _finite_ahead(toks: list[_Tok], k: int) -> bool:
    """Whether a finite verb follows within a short noun phrase: "as a shadow slithers out" is a
    clause, "as a distraction" a prepositional phrase."""
    for j in range(k, min(len(toks), k + 5)):
        w = toks[j].w
        if w in _PUNCT or (w in _SPLIT and w != "that"):
            return False
        if j > k and not toks[j].poss and (w in _BE or _FORMS.get(w, ("", ""))[1] in ("s", "past")):
            return True
    return False


def _clauses(toks: list[_Tok]) -> list[_Clause]:
    out: list[_Clause] = []
    cur: list[_Tok] = []
    intro: str | None = None
    punct: str | None = None
    close_at = None
    n = len(toks)
    i = 0

    def flush(new_intro, new_punct, new_close=None):
        nonlocal cur, intro, punct, close_at
        if cur or intro or punct:
            out.append(_Clause(cur, intro, punct, close_at))
        cur, intro, punct, close_at = [], new_intro, new_punct, new_close

    while i < n:
        t = toks[i]
        w = t.w
        nxt = toks[i + 1].w if i + 1 < n else ""
        if w in _PUNCT:
            if (w == "," and len(cur) >= 2 and cur[-2].w in ("a", "an") and nxt and nxt not in _SPLIT
                    and nxt not in _DETS and nxt not in _SELF_PRON and nxt not in _OTHER_PRON
                    and _FORMS.get(nxt, ("", ""))[1] not in ("base", "s", "ing")):
                i += 1  # "a small, isolated planet": a comma between adjectives
                continue
            flush(None, w)
            i += 1
            continue
        if w == "so" and nxt == "much" and i + 2 < n and toks[i + 2].w == "as":
            cur.extend(toks[i:i + 3])  # "nobody so much as glances": an adverb, not "so" + "as"
            i += 3
            continue
        if w in _SPLIT and not t.poss:
            if w in ("and", "but", "or", "yet", "nor") and not cur and intro is None:
                intro = w  # ", and"
                i += 1
                continue
            if w == "then" and not cur and intro in (None, "and"):
                intro = "then"
                i += 1
                continue
            if w == "so":
                if nxt == "that":
                    flush("so-that", None)
                    i += 2
                    continue
                # "so hard that ...": a result clause, not a purpose.
                if any(toks[k].w == "that" for k in range(i + 2, min(n, i + 4))) and nxt not in _DETS:
                    cur.append(t)
                    i += 1
                    continue
                if nxt in ("as",):
                    cur.append(t)
                    i += 1
                    continue
                flush("so-therefore" if (not cur and (punct or intro)) else "so", None)
                i += 1
                continue
            if w == "as":
                if cur and len(cur) >= 2 and cur[-2].w == "as":
                    flush("as-if", None)  # "as far as it goes": a comparison, not an event
                    i += 1
                    continue
                if nxt in ("if", "though"):
                    flush("as-if", None)
                    i += 2
                    continue
                if nxt in ("well", "much", "many", "long", "far") or (cur and cur[-1].w in ("such", "same")) or (
                        nxt in ("a", "an") and not _finite_ahead(toks, i + 2)):
                    cur.append(t)
                    i += 1
                    continue
                if cur and cur[-1].w in ("just", "right", "even"):
                    close = cur.pop()
                    flush("just-as", None, close)
                    i += 1
                    continue
            if w in ("before", "after") and cur:
                k = len(cur)
                while k > 0 and cur[k - 1].w in _CLOSE_WORDS | {"a", "an", "few"}:
                    k -= 1
                if k < len(cur) and any(c.w in _CLOSE_WORDS for c in cur[k:]):
                    close = cur[k]
                    cur = cur[:k]
                    flush("just-" + w, None, close)
                    i += 1
                    continue
            if w == "that" and cur and i >= 2 and toks[i - 2].w == "so":
                flush("result", None)
                i += 1
                continue
            if w == "that" and (nxt in _PREPS or nxt in _PUNCT or nxt == ""):
                cur.append(t)
                i += 1
                continue
            if w == "once" and (nxt in _PUNCT or nxt in ("more", "again", "")):
                cur.append(t)
                i += 1
                continue
            if w in ("before", "after", "until", "till") and nxt in ("anyone", "anybody", "the", "a", "it", "they", "he",
                                                                    "she", "i", "we", "you", "its", "his", "her",
                                                                    "their", "my", "our", "both", "every"):
                flush(w, None)
                i += 1
                continue
            if w in ("before", "after", "until", "till"):
                cur.append(t)  # "before a jump": a preposition
                i += 1
                continue
            if w == "only" and nxt == "to":
                flush("only-to", None)
                i += 2
                continue
            flush(w, None)
            i += 1
            continue
        if w == "only" and nxt == "to":
            flush("only-to", None)
            i += 2
            continue
        if w == "the" and nxt in ("moment", "instant") and i + 2 < n and toks[i + 2].w in _DETS | _SELF_PRON | _OTHER_PRON:
            flush("moment", None)
            i += 2
            continue
        if w == "by" and nxt == "the" and i + 2 < n and toks[i + 2].w == "time":
            flush("time", None)
            i += 3
            continue
        if w in ("in",) and nxt == "case":
            flush("in-case", None)
            i += 2
            continue
        if w == "even" and nxt in ("though", "if"):
            flush("even-if" if nxt == "if" else "though", None)
            i += 2
            continue
        if w == "now" and nxt == "that":
            flush("now", None)
            i += 2
            continue
        cur.append(t)
        i += 1
    flush(None, None)
    out = [c for c in out if c.toks or c.intro]
    for a, b in zip(out, out[1:]):
        a.next_intro = b.intro if b.punct is None else None
        # "find out who hired him", "ask which way": an embedded question, not a relative clause.
        if b.intro in ("who", "which", "whom", "where", "what", "how", "why") and b.punct is None and a.toks and (
                a.toks[-1].w in ("out", "about") or _FORMS.get(a.toks[-1].w, ("",))[0] in _COMPLEMENT | _PERCEPT):
            b.intro = "wh"
    return out


# --------------------------------------------------------------------------- context

class _Ctx:
    __slots__ = ("actor", "gender", "first_person", "found", "text", "first_clause", "clauses")

    def __init__(self, text: str):
        self.text = text
        self.actor: set[str] = set()
        self.gender: str | None = None
        self.first_person = False
        self.found: list[Violation] = []
        self.first_clause = None
        self.clauses: list = []  # the clauses of the sentence being read

    def add(self, kind: Kind, tok_s: int, tok_e: int, reason: str) -> None:
        self.found.append({"kind": kind, "match": self.text[tok_s:tok_e], "start": tok_s, "end": tok_e,
                           "reason": reason})


def _is_name(t: _Tok) -> bool:
    return t.cap and t.w not in _DETS and t.w not in _PREPS and t.w not in _SPLIT and t.w not in _FORMS \
        and t.w not in _SELF_PRON and t.w not in _OTHER_PRON and t.w not in _MAYBE_PRON and t.w not in _LEAD_SKIP \
        and t.w not in ("in", "over", "maybe", "here", "what", "why", "how", "where", "ah", "oh", "um", "well",
                        "good", "nice", "great", "time", "forget", "precision", "steady", "curious", "hopefully", "please", "yes", "no", "okay", "ok", "sorry", "hey",
                        "thanks", "with", "keeping", "having", "while", "perhaps", "let", "lets", "if")


def _find_actor(sentences: list[tuple[list[_Tok], str]], ctx: _Ctx) -> None:
    for toks, _ in sentences:
        for t in toks:
            if t.w in ("i", "we") and not t.poss:
                ctx.first_person = True
    for toks, _ in sentences[:2]:
        # The first proper name that is not the object of a preposition, a verb or a determiner.
        i = 0
        while i < len(toks):
            t = toks[i]
            if (t.w in _SELF_PRON or t.w in ("he", "she", "they")) and not t.poss:
                i = len(toks)
                break
            prev = toks[i - 1] if i else None
            if (_is_name(t) or (t.cap and t.w in _TITLES)) and (
                    prev is None or prev.w in _PUNCT or (prev.w in _SPLIT and prev.w != "that")):
                break
            i += 1
        names = []
        while i < len(toks) and (_is_name(toks[i]) or (names and toks[i].cap and toks[i].w not in _DETS)
                                 or toks[i].w in _TITLES and toks[i].cap):
            names.append(toks[i])
            if toks[i].poss:
                break
            i += 1
        names = [n for n in names if n.w not in _TITLES]
        if names:
            ctx.actor = {n.w for n in names}
            break
        if toks and toks[0].w in _SELF_PRON:
            break
    if not ctx.actor:
        return
    for toks, _ in sentences:
        seen_actor = False
        for t in toks:
            if t.w in ctx.actor:
                seen_actor = True
                continue
            if not seen_actor:
                continue
            if t.w in _PERSONS or (t.w.endswith("s") and t.w[:-1] in _PERSONS) or (_is_name(t) and t.w not in ctx.actor):
                break
            g = {"his": "he", "him": "he", "himself": "he", "her": "she", "herself": "she", "its": "it",
                 "itself": "it", "their": "they", "themself": "they", "themselves": "they"}.get(t.w)
            if g:
                ctx.gender = g
                return


def _pron_is_self(w: str, ctx: _Ctx, verb_base: str | None = None) -> bool:
    """Whether a third-person pronoun (subject or possessive) refers to the acting character."""
    if w in ("i", "we", "me", "us", "my", "our", "myself", "ourselves"):
        return True
    if not ctx.actor:
        return False
    g = {"he": "he", "his": "he", "him": "he", "she": "she", "her": "she", "it": "it", "its": "it",
         "they": "they", "their": "they", "them": "they"}.get(w)
    if g is None:
        return False
    if ctx.gender is not None and g != ctx.gender:
        return False
    if ctx.gender is None and g == "they":
        return False
    if ctx.gender is None and g == "it" and not any(ch.isdigit() for a in ctx.actor for ch in a):
        return False  # "it" is a robot's pronoun ("K-7 braces itself"), never a person's
    if g == "it" and ctx.gender in (None, "it") and verb_base in _SPEECH:
        return True  # only the robot among the things called "it" can ask or say
    if verb_base is not None and (verb_base in _REACTION or verb_base in _EVENT_RESULT):
        return False
    if ctx.first_person and ctx.gender is None:
        return False
    return True


# --------------------------------------------------------------------------- predications

class _Pred:
    __slots__ = ("subj", "subj_i", "animate", "indefinite", "instrument", "v", "aux", "main", "base", "tag",
                 "modal", "future", "about", "able", "past", "passive", "perfect", "prog", "copula", "have_to",
                 "neg", "comp", "plural", "free_rel", "rel")

    def __init__(self):
        self.subj = None          # "self" | "other" | "there" | None (no subject: coordinated VP, participle)
        self.subj_i = 0
        self.animate = False
        self.indefinite = False
        self.instrument = False
        self.v = None             # index of the first verb-group token
        self.aux: list[str] = []
        self.main = None          # index of the main verb (or of the copula / have)
        self.base = None
        self.tag = None
        self.modal = self.future = self.about = self.able = self.past = False
        self.passive = self.perfect = self.prog = self.copula = self.have_to = self.neg = False
        self.comp = 0             # index after the verb group
        self.plural = False
        self.free_rel = False
        self.rel = False          # a relative clause: a verb must follow "which" / "who"


_LINKING = _lex("linking")


def _plural_word(w: str) -> bool:
    return (w.endswith("s") and not w.endswith(("ss", "us", "is", "'s")) and len(w) > 3) or w in _PLURAL_NOUNS


def _verbish(t: _Tok, prev: _Tok | None, plural: bool) -> bool:
    w = t.w
    if t.poss:
        return False
    if w in _AUX_MODAL or w in _BE or w in _HAVE or w in _DO or w == "will":
        return True
    info = _FORMS.get(w)
    if info is None:
        return bool(_OUT_VERB.match(w)) and w.endswith("s")
    tag = info[1]
    if tag in ("s", "past"):
        return True
    if tag == "base":
        return plural or (prev is not None and _plural_word(prev.w))
    return False


def _is_adverb(w: str) -> bool:
    return (w.endswith("ly") and w not in _NOT_ADVERB_LY and len(w) > 4) or w in _ADV_SKIP


_PRE_VERB_ADV = _ws("just only still already never finally suddenly simply merely barely")


def _subject(toks: list[_Tok], i: int, ctx: _Ctx) -> _Pred | None:
    """Parse a subject at ``i`` and the verb group after it; None when there is no subject-verb pair."""
    n = len(toks)
    if i >= n:
        return None
    t = toks[i]
    p = _Pred()
    p.subj_i = i
    w = t.w
    j = i + 1
    if t.poss and (w in ctx.actor or w in _SELF_PRON):
        # "Zix's crew", "Dr. Osei's speech": a body part is the character, anything else acts on the world.
        return _np_subject(toks, i, ctx, p)
    elif w in _SELF_PRON and not t.poss:
        p.subj = "self"
        p.plural = True
    elif w == "there" and i + 1 < n and toks[i + 1].w in _BE:
        p.subj = "there"
    elif w in _OTHER_PRON or w in _MAYBE_PRON:
        a = i + 1  # "it only coughs": an adverb between the pronoun and its verb
        while a + 1 < n and (toks[a].w in _PRE_VERB_ADV or toks[a].w.endswith("ly") and _is_adverb(toks[a].w)) \
                and w not in ("all", "both", "each"):
            a += 1
        if w in _MAYBE_PRON and (a >= n or not _verbish(toks[a], toks[a - 1], w in ("all", "both"))):
            if w in ("all", "both", "each") and i + 2 < n and toks[i + 1].w == "of":
                j = i + 3
            elif w in _DETS and i + 1 < n and toks[i + 1].w not in _PREPS and toks[i + 1].w not in _PUNCT:
                return _np_subject(toks, i, ctx, p)
            else:
                return None
        p.subj = "pron:" + w
        p.animate = w not in ("it", "this", "that", "something", "nothing", "everything")
        if w in ("everyone", "everybody", "nobody", "someone", "somebody", "anyone", "none", "each", "all") \
                and j < n and toks[j].w in ("in", "on", "at", "from", "of", "aboard", "inside"):
            for q in range(j + 1, min(n, j + 6)):
                if _verbish(toks[q], toks[q - 1], False) and toks[q - 1].w not in _DETS:
                    j = q
                    break
        p.plural = w in ("they", "you", "all", "both")
        if w == "whoever":
            p.free_rel = True
    elif w in _DETS or t.poss or _is_name(t) or w.isdigit():
        return _np_subject(toks, i, ctx, p)
    elif _plural_word(w) and w not in _FORMS and i + 1 < n and _FORMS.get(toks[i + 1].w, ("", ""))[1] == "base":
        if w in _BODY:
            return None  # "palms open": the character's own hands
        p.subj = "other"  # a bare plural: "sparks fly"
        p.plural = True
        p.animate = w[:-1] in _PERSONS
    else:
        return None
    return _verb_group(toks, j, p, ctx)


def _np_subject(toks, i, ctx, p):
    n = len(toks)
    t = toks[i]
    w = t.w
    first_det = w in _DETS
    p.indefinite = w in ("a", "an", "another", "some")
    p.plural = w in _PLURAL_DETS
    words = [t]
    possessor = w if (w in _POSS_PRON or t.poss) else None
    prev_kind = "det" if (first_det or t.poss) else "noun"
    last_noun = None if prev_kind == "det" else t
    in_pp = False
    since_det = 0 if prev_kind == "det" else 1
    j = i + 1
    while j < n and j < i + 10:
        u = toks[j]
        if u.w in _NP_PREPS:
            if prev_kind == "noun" and j + 1 < n and (_is_adverb(toks[j + 1].w) or toks[j + 1].w in ("not",)
                                                      or _verbish(toks[j + 1], last_noun, p.plural)):
                j += 1  # "the guards below never notice": an adverb, not a preposition
                continue
            prev_kind = "prep"
            in_pp = True
            j += 1
            continue
        if u.w == "the" and prev_kind == "noun" and last_noun is not None and last_noun.cap and j + 1 < n \
                and toks[j + 1].cap and not in_pp:
            j += 2  # "Gorlak the Patient blinks": an epithet, part of the name
            continue
        if u.w in _DETS or u.w in _POSS_PRON:
            if prev_kind == "noun" and u.w not in ("all", "both", "one", "two", "three", "whole", "few", "many"):
                break  # a new noun phrase: the first one was a fronted adverbial ("after my speech the council")
            prev_kind = "det"
            since_det = 0
            j += 1
            continue
        if u.poss:
            if prev_kind == "noun" and not (u.cap and last_noun is not None and (last_noun.w in _TITLES or (
                    last_noun.cap and len(words) == 1))):  # "Dr. Osei's", "Orla Penhaligon's"
                break
            if not in_pp and possessor is None:
                possessor = u.w
            words.append(u)
            prev_kind = "det"
            j += 1
            continue
        if u.w in ("i", "he", "she", "they", "we", "you"):
            break
        if prev_kind == "noun" and u.w.endswith("ing") and j + 2 < n and toks[j + 1].w not in _DETS \
                and toks[j + 1].w not in _PREPS and toks[j + 1].w not in _PUNCT and toks[j + 1].w not in _SPLIT \
                and toks[j + 1].w not in _POSS_PRON and not toks[j + 1].poss and not _is_adverb(toks[j + 1].w) \
                and _FORMS.get(toks[j + 1].w, ("", ""))[1] not in ("past", "pp", "ing") \
                and _FORMS.get(toks[j + 2].w, ("", ""))[1] in ("s", "past") and toks[j + 2].w not in _PREPS:
            words.append(u)  # "the rogue mining drone falls": an -ing modifier before the head noun
            last_noun = u
            since_det += 1
            j += 1
            continue
        if prev_kind == "noun" and u.w.endswith("ing") and (_FORMS.get(u.w, ("", ""))[1] == "ing" or (
                u.w not in _FORMS and len(u.w) > 5 and u.w not in ("something", "nothing", "everything", "anything",
                                                                   "evening", "morning", "ceiling", "building"))):
            break
        if prev_kind == "noun" and since_det == 1 and last_noun is not None and last_noun.w.endswith(("ing", "ed")) \
                and _FORMS.get(last_noun.w, ("", ""))[1] in ("ing", "past", "pp") and u.w not in _AUX_MODAL \
                and u.w not in ("will", "shall") and words and words[-1] is last_noun and len(words) >= 2 and (
                    j + 1 < n and _verbish(toks[j + 1], u, True)
                    or u.w.endswith("s") and j + 1 < n and toks[j + 1].w in ("of", "on", "in", "inside", "along", "under")):
            words.append(u)  # "my shaking hands": the -ing word was a modifier, this is the head
            last_noun = u
            since_det += 1
            j += 1
            continue
        if prev_kind == "noun":
            if _is_adverb(u.w):
                q = j + 1
                while q < n and q < j + 3 and _is_adverb(toks[q].w):
                    q += 1  # "the guards never even glance": a run of adverbs before the verb
                if q < n and _verbish(toks[q], last_noun, p.plural):
                    j = q
                    continue
            if _verbish(u, last_noun, p.plural):
                # "the pirate guards are": a plural noun that could be a verb, followed by the real verb
                if not (_FORMS.get(u.w, ("", ""))[1] == "s" and u.w not in _BE and u.w not in _HAVE
                        and _FORMS[u.w][0] not in _LINKING
                        and u.w not in _DO and j + 1 < n and toks[j + 1].w not in _DETS
                        and _verbish(toks[j + 1], None, False) and not toks[j + 1].w.endswith("ing")):
                    break
        if u.w == "to" and prev_kind == "noun" and not in_pp and j + 1 < n and (
                toks[j + 1].w in _DETS or toks[j + 1].w in _POSS_PRON) and toks[j + 1].w not in _PLURAL_DETS:
            e = _np_end(toks, j + 1)
            if e < n and _FORMS.get(toks[e].w, ("", ""))[1] in ("s", "past") and toks[e].w not in _PREPS:
                prev_kind = "prep"  # "the door to the speakeasy swings": "to" inside the noun phrase
                in_pp = True
                j += 1
                continue
        if u.w in _SPLIT or u.w in ("to", "for", "into", "onto", "through", "toward", "towards"):
            return _np_only(toks, i, j, ctx, p, words, possessor)
        if not in_pp:
            words.append(u)
        prev_kind = "noun"
        last_noun = u
        since_det += 1
        j += 1
    if last_noun is not None and not in_pp:
        p.plural = p.plural or _plural_word(last_noun.w)
    if j >= n or prev_kind != "noun" or not _verbish(toks[j], last_noun, p.plural) or toks[j].w in _DETS:
        return _np_only(toks, i, j, ctx, p, words, possessor)
    _classify_np(p, words, possessor, ctx)
    return _verb_group(toks, j, p, ctx)


def _np_only(toks, i, j, ctx, p, words, possessor):
    _classify_np(p, words, possessor, ctx)
    p.v = None
    p.comp = j
    return p


def _classify_np(p: _Pred, words: list[_Tok], possessor: str | None, ctx: _Ctx) -> None:
    """Self (the character, its body) or other (anyone, anything, the character's shot or speech)."""
    heads = [u.w for u in words if not u.poss and u.w not in _DETS]
    head = heads[-1] if heads else (words[-1].w if words else "")
    names = {u.w for u in words}
    if ctx.actor and (names & ctx.actor) and not any(u.poss and u.w in ctx.actor for u in words):
        p.subj = "self"
        return
    if possessor is not None and (possessor in ctx.actor or _pron_is_self(possessor, ctx)):
        p.subj = "self" if head in _BODY or head == "character" and possessor in ("my", "our") else "other"
        p.instrument = p.subj == "other"
        return
    if head in _BODY and len(words) == 1:
        p.subj = "self"  # "Gut says go": the character's own gut
        return
    if head in ("player", "character") and not p.indefinite:
        p.subj = "self"
        return
    p.subj = "other"
    base = head[:-1] if head.endswith("s") else head
    p.animate = (head in _PERSONS or base in _PERSONS or any(u.cap for u in words[1:])
                 or (words and _is_name(words[0]) and words[0].w not in ("the",)))
    p.plural = p.plural or _plural_word(head)


def _verb_group(toks: list[_Tok], j: int, p: _Pred, ctx: _Ctx) -> _Pred | None:
    n = len(toks)
    p.v = j
    seen_be = seen_have = False
    first = True
    while j < n:
        u = toks[j]
        w = u.w
        if u.poss:
            break
        if w in ("not", "never"):
            p.neg = True
            j += 1
            continue
        if w == "so" and j + 2 < n and toks[j + 1].w == "much" and toks[j + 2].w == "as":
            j += 3  # "nobody so much as glances at me"
            continue
        if _is_adverb(w) and w not in ("so", "now", "then") or (w in ("now", "then") and first) or (
                w == "now" and j + 1 < n and toks[j + 1].w in ("being", "been")):
            j += 1
            continue
        if w in _AUX_MODAL:
            p.modal = True
            p.aux.append(w)
            j += 1
            first = False
            continue
        if w == "will" or w == "shall":
            p.future = True
            p.aux.append(w)
            j += 1
            first = False
            continue
        if w in _BE:
            if first and w in ("was", "were"):
                p.past = True
            q = j + 1
            while q < n and (_is_adverb(toks[q].w) or toks[q].w in ("not", "all", "both")) and q < j + 3:
                q += 1
            nx = toks[q].w if q < n else ""
            nx2 = toks[q + 1].w if q + 1 < n else ""
            if nx == "going" and nx2 == "to":
                p.future = True
                j = q + 2
                first = False
                continue
            if nx == "about" and nx2 == "to":
                p.about = True
                j = q + 2
                first = False
                continue
            if nx == "able" and nx2 == "to":
                p.able = True
                j = q + 2
                first = False
                continue
            seen_be = True
            p.aux.append(w)
            p.main = j
            j += 1
            first = False
            continue
        if w in _HAVE:
            if first and w == "had":
                p.past = True
            nx = toks[j + 1].w if j + 1 < n else ""
            if nx == "to":
                p.have_to = True
                j += 2
                first = False
                continue
            seen_have = True
            p.aux.append(w)
            p.main = j
            j += 1
            first = False
            continue
        if w in _DO:
            if first and w == "did":
                p.past = True
            p.aux.append(w)
            p.main = j
            j += 1
            first = False
            continue
        if w in ("got", "gotten") and seen_have and not seen_be and not (j + 1 < n and toks[j + 1].w in (
                "through", "past", "away", "free", "clear", "aboard", "across", "inside", "behind", "out")):
            p.main = j
            p.base, p.tag = "have", "s"
            j += 1
            break
        if w in ("get", "gets", "got") and j + 1 < n and toks[j + 1].w in _PP_OK and toks[j + 1].w not in _STATIVE_PP:
            if first and w == "got":
                p.past = True
            seen_be = True
            p.aux.append("be")
            j += 1
            first = False
            continue
        info = _FORMS.get(w)
        if info is None and _OUT_VERB.match(w):
            info = (w[:-1], "s") if w.endswith("s") else (w, "base")
        if info is None and first and (p.subj == "self" or (p.subj or "").startswith("pron:") or p.rel) \
                and w not in _PREPS and w not in _DETS and w not in _SPLIT and w not in _OTHER_PRON \
                and w not in _MAYBE_PRON and w not in _SELF_PRON and not u.cap and len(w) > 2:
            info = (w[:-2], "past") if w.endswith("ed") else ((w[:-1], "s") if w.endswith("s") else (w, "base"))
        if info is None and len(w) > 5 and w.endswith("ed") and (seen_be or seen_have):
            info = (w[:-2], "past")
        if info is None:
            break
        base, tag = info
        if seen_be and (w.endswith("ing")):
            p.prog = True
        elif seen_be and (w in _PP_OK or tag in ("pp", "past")):
            p.passive = True
        elif seen_have and (w in _PP_OK or tag in ("pp", "past")):
            p.perfect = True
        elif seen_be or seen_have:
            break
        elif p.aux and p.aux[-1] in ("do", "does", "did"):
            pass
        elif p.modal or p.future or p.about or p.able or p.have_to:
            pass
        elif tag == "ing" or tag == "pp":
            return None if not p.aux else p
        elif first and tag == "past":
            p.past = True
        elif first and tag == "base" and (p.subj or "").startswith("pron:") and not p.plural:
            return None  # "Nobody move.": a command, not a statement
        elif first and tag == "base" and not (p.plural or p.subj == "self" or (p.subj or "").startswith("pron:")):
            if not (j > 0 and _plural_word(toks[j - 1].w)):
                return None
        p.main = j
        p.base = base
        p.tag = tag
        j += 1
        first = False
        break
    if p.main is None and not (p.modal or p.future or p.about or p.able or p.have_to):
        return None
    if p.base is None and p.main is not None:
        mw = toks[p.main].w
        p.base = _FORMS.get(mw, (mw,))[0]
        if p.base == "be":
            p.copula = True
    p.comp = j
    if p.free_rel:
        # "Whoever is in charge here falls unconscious": the verb after the free relative.
        for k in range(j, min(n, j + 8)):
            info = _FORMS.get(toks[k].w)
            if info and info[1] in ("s", "past") and toks[k].w not in _BE and toks[k].w not in _HAVE:
                p.main, p.base, p.tag, p.copula, p.comp = k, info[0], info[1], False, k + 1
                p.passive = p.perfect = p.prog = False
                break
    return p


# --------------------------------------------------------------------------- judging

def _obj_is_self(toks: list[_Tok], k: int, ctx: _Ctx) -> bool:
    """Whether the object starting at ``k`` belongs to the acting character ("my rifle", "myself")."""
    if k >= len(toks):
        return False
    w = toks[k].w
    if w in ("my", "our", "myself", "ourselves", "himself", "herself", "themself", "themselves", "itself", "me",
             "us"):
        return True
    if w in ("his", "her", "their", "its") and _pron_is_self(w, ctx):
        return True
    if toks[k].poss and w in ctx.actor:
        return True
    return False


def _np_end(toks: list[_Tok], k: int) -> int:
    """Index just after a short object noun phrase starting at ``k``."""
    n = len(toks)
    if k < n and toks[k].w in ("him", "her", "them", "it", "me", "us", "myself", "himself", "herself",
                               "themselves", "itself", "everyone", "all"):
        if toks[k].w == "her" and k + 1 < n and toks[k + 1].w not in _PREPS and toks[k + 1].w not in _PUNCT \
                and toks[k + 1].w not in _FORMS:
            pass
        else:
            return k + 1
    j = k
    steps = 0
    while j < n and steps < 6:
        w = toks[j].w
        if steps > 0 and (w in _PREPS or w in _SPLIT or w in _SPREAD or w in _RESULT_ADJ or w in _RESULT_PARTICLES
                          or w in ("clean",)):
            break
        if steps > 0 and _FORMS.get(w, ("", ""))[1] == "ing" and toks[j - 1].w not in _DETS:
            break
        if steps > 0 and _FORMS.get(w, ("", ""))[1] in ("base", "s") and toks[j - 1].w not in _DETS \
                and not toks[j - 1].poss and w not in ("fire", "light", "lights", "codes", "code"):
            break
        j += 1
        steps += 1
    return j


def _judge_self(toks: list[_Tok], p: _Pred, ctx: _Ctx, c: _Clause, prev_self_base: str | None) -> None:
    """A finite verb of the acting character: achievements, discoveries, results."""
    n = len(toks)
    if p.main is None:
        return
    vt = toks[p.main]
    b = p.base or ""
    k = p.comp
    nxt = toks[k].w if k < n else ""
    if p.modal and p.neg and not p.future and b in _FIND_V and any(a in ("can", "could") for a in p.aux) \
            and k < n and not _obj_is_self(toks, k, ctx) and nxt not in ("a", "any", "out", "where", "what", "how", "why",
                                                                         "who", "if", "whether") \
            or p.modal and p.neg and b in _FIND_V and nxt in ("a", "any") and k + 1 < n and toks[k + 1].w not in (
                _ABSTRACT_FINDS):
        # "..., but can't find a name": the search is stated to have failed
        ctx.add("outcome", toks[p.v].s, vt.e, "states the search failed; the dice and the DM decide that")
        return
    if p.have_to and not p.past:
        return  # "I have to fix it": a need
    if p.future or p.modal or p.about:
        # "I will not be hurt", "we'll be long gone": a prediction about the outcome.
        if (p.base == "be" or p.passive) and p.future:
            for u in toks[p.main:p.main + 3]:
                if u.w in _SELF_WILL_BE:
                    ctx.add("future", vt.s, u.e, "predicts how the action turns out")
                    return
        return
    if p.copula:
        if nxt in _SELF_RESULT_ADJ or (nxt == "in" and k + 1 >= n):
            ctx.add("outcome", vt.s, toks[k].e, "states the result of the action")
        elif not p.prog and _arrived(toks, k):
            ctx.add("outcome", vt.s, toks[k + 1].e, "states the character got there; the dice decide that")
        return
    if p.passive:
        _done_to_self(toks, p, ctx)
        return
    seen = _small_clause(toks, k) if b in ("feel", "hear", "see", "watch", "observe") else None
    if b in ("feel", "hear", "see") and seen and not p.modal and _FORMS[toks[seen].w][0] in _EVENT_RESULT:
        ctx.add("outcome", vt.s, toks[seen].e,
                "narrates what the character perceives happen; the DM decides that")  # "feel the hinges give"
        return
    if b in _MENTAL or b in _INTENT_V:
        return
    if c.intro == "only-to" and (b in _PERCEPT or b in _ACHIEVE):
        ctx.add("outcome", vt.s, vt.e, "states what the character found")
        return
    if _FOUND_PHRASAL.get(b) == nxt and not (b == "make" and k + 1 < n and toks[k + 1].w in ("with", "of")):
        ctx.add("outcome", vt.s, toks[k].e, "states what the character perceives or discovers; the DM reveals that")
        return
    if b in ("win", "earn", "buy") and nxt in ("us", "me", "him", "her", "them") and k + 1 < n \
            and toks[k + 1].w in _DETS | _POSS_PRON:
        ctx.add("outcome", vt.s, toks[k + 1].e, "states what the action won; the dice decide that")  # "win us a week"
        return
    if b == "give" and any(toks[q].w == "the" and toks[q + 1].w == "slip" for q in range(k, min(n - 1, k + 5))) \
            or b == "shrug" and nxt == "off" and k + 1 < n and toks[k + 1].w in _DETS | _POSS_PRON:
        ctx.add("outcome", vt.s, vt.e, "states the action worked; the dice decide that")  # "gives them the slip"
        return
    if _lifts(toks, b, k, ctx):
        ctx.add("outcome", vt.s, toks[_np_end(toks, k) - 1].e, "states the theft succeeded; the dice decide that")
        return
    if b in _GETAWAY and nxt in ("away", "off") and k + 2 < n and toks[k + 1].w == "with" \
            and not _obj_is_self(toks, k + 2, ctx):
        ctx.add("outcome", vt.s, toks[k + 2].e, "states the character got away with it; the dice decide that")
        return
    found = _comes_upon(toks, b, k)
    if found is not None:
        ctx.add("outcome", vt.s, toks[found].e, "states what the character comes upon; the DM reveals that")
        return
    if c.intro in ("and", None, "then") and prev_self_base in _CONTEST and b in _ENTER and nxt in _ENTER_PARTICLES:
        ctx.add("outcome", vt.s, toks[k].e, "a second verb that presupposes the first one worked")
        return
    if p.perfect and not p.have_to and _done_on_object(toks, p.v, k, b, ctx) and (
            any(u.w in ("already", "just") for u in toks[p.v:p.main]) or _by_the_time(ctx, c)):
        # "I've already rewired the turret by the time the patrol rounds the corner"
        ctx.add("outcome", toks[p.v].s, vt.e, "states the task is already done; the dice decide that")
        return
    if b in ("dodge", "evade", "avoid") and nxt in ("every", "all", "each"):
        ctx.add("outcome", vt.s, toks[k].e, "states every attack missed")
        return
    if b in _PERCEPT:
        # Succeeds only with something found: a noun phrase, a pronoun or a clause ("spot the
        # sniper", "realize that ..."); "search for", "see if", "I've seen worse" find nothing.
        if k >= n and c.next_intro in ("that", "where", "who", "how", "why", "what"):
            ctx.add("outcome", vt.s, vt.e, "states what the character perceives or discovers; the DM reveals that")
            return
        if p.perfect and (b not in _FIND_V or any(u.w in _EXPERIENCE for u in toks[p.v:])) or k >= n or nxt in (
                "for", "if", "whether", "to", "around", "about", "worse", "better", "enough", "nothing") \
                or (b == "see" and nxt in ("what", "how", "why")):
            return  # "I've seen worse", "I have found such things before"; "I've found the leak" is a find
        if (nxt == "out" and b != "find") or (b == "find" and _obj_is_self(toks, k, ctx)):
            return
        if b == "trace" and any(u.w in ("back", "toward", "towards", "along", "with") for u in toks[k:k + 5]):
            return  # "trace the wires back toward the detonator": following them, nothing found yet
        found_obj = (nxt in _DETS or nxt in _SELF_PRON or nxt in _OTHER_PRON or nxt in _MAYBE_PRON or toks[k].poss
                     or toks[k].cap or nxt in ("him", "her", "them", "out", "where", "who", "how")
                     or _FORMS.get(nxt, ("", ""))[1] not in ("base", "s", "ing"))
        if found_obj:
            ctx.add("outcome", vt.s, vt.e, "states what the character perceives or discovers; the DM reveals that")
        return
    if _OUT_VERB.match(vt.w):
        ctx.add("outcome", vt.s, vt.e, "states the character outdoes the opposition")
        return
    if b in _TRANSFER and not _obj_is_self(toks, k, ctx) and k < n and any(
            u.w in ("onto", "into", "to") for u in toks[_np_end(toks, k):_np_end(toks, k) + 1]):
        ctx.add("outcome", vt.s, vt.e, "states the data or goods were taken; the dice decide that")
        return
    if _arrives(toks, b, k, ctx):
        ctx.add("outcome", vt.s, toks[max(k, min(_np_end(toks, k), n) - 1)].e if k < n else vt.e,
                "states the character arrived where the attempt was headed; the dice decide that")
        return
    if b in _ACHIEVE:
        if b in ("hit", "strike", "land"):
            if nxt in _CONTROLS or (k + 1 < n and toks[k + 1].w in _CONTROLS and nxt in _DETS | _POSS_PRON) \
                    or nxt in ("up", "out", "for", "on") or _obj_is_self(toks, k, ctx):
                return
            if b == "land" and not (k + 1 < n and toks[k + 1].w in ("blow", "punch", "shot", "hit", "kick", "strike")):
                if not (nxt in ("a", "the") and k + 1 < n and toks[k + 1].w in ("blow", "punch", "shot", "hit", "kick")):
                    return
        elif b == "kill":
            end = _np_end(toks, k)
            if any(toks[q].w in _CONTROLS or toks[q].w in ("lights", "light", "power", "motor", "music", "alarm",
                                                           "running", "signal", "channel")
                   for q in range(k, min(end + 1, n))):
                return
        elif b == "catch" and _catch_idiom(toks, k):
            return
        elif _pinned_against(toks, b, k):
            return
        elif b in ("lose", "free", "save", "crack", "beat", "pin", "escape", "fix", "succeed", "recover", "clear"):
            if b == "clear" and nxt in ("out", "off", "away", "of", "throat"):
                return
            if _obj_is_self(toks, k, ctx) or nxt in ("a", "an", "up", "down", "my", "jokes", "joke", "smile",
                                                       "open", "time", "for", "to", "at", "from", "into"):
                return
            if b == "crack" and nxt not in ("the", "their", "its", "his", "her", "it", "open"):
                return
        elif _obj_is_self(toks, k, ctx) or nxt in _NO_OBJECT:
            return  # "I calm down", "I patch into the comms": no task done to anything
        ctx.add("outcome", vt.s, vt.e, "states the task is accomplished; the dice decide that")
        return
    if c.intro in ("and", None, "then") and prev_self_base in _CONTEST and (
            b in _EXPLOIT or (b in ("pull", "drag", "haul", "fish") and nxt == "out")) and not _obj_is_self(toks, k, ctx):
        ctx.add("outcome", vt.s, vt.e, "a second verb that presupposes the first one worked")
        return
    if b in ("get", "receive", "earn", "draw") and k < n and _np_end(toks, k) > k \
            and toks[min(n, _np_end(toks, k)) - 1].w in _RESPONSE and nxt not in ("no", "my", "our"):
        # the response word heads the phrase: "get a reply", not "get the answer key" or "get my reply ready"
        ctx.add("other_reaction", vt.s, toks[min(n, _np_end(toks, k)) - 1].e,
                "states that someone answered; the DM voices the answer")
        return
    if b in ("watch", "observe") and seen:
        ctx.add("other_reaction", vt.s, toks[seen].e,
                "narrates what the watched person or thing does; the DM decides that")
        return
    _resultative(toks, p.main, k, b, ctx)


_NO_OBJECT = _ws("down into in through to at for with around about")


#: What the scene does to a character, stated in the passive: "I am shot in the shoulder".
_HARM_PP = _ws("shot hit struck stabbed wounded injured knocked thrown flung hurled blown captured spotted detected "
               "noticed discovered grazed stunned blinded crushed buried impaled killed slain dragged rescued freed "
               "saved healed cured revived ejected expelled swept seized arrested cuffed handcuffed")
_PAST_WORDS = _ws("past through aboard")
#: Words that put a completed act in the character's past rather than this scene.
_EXPERIENCE = _ws("before ever never times twice once worse bigger better ago")


def _done_to_self(toks: list[_Tok], p: _Pred, ctx: _Ctx) -> None:
    """A passive of the character: "I am shot in the shoulder", "I get spotted", "is wheeled straight
    past the guards", "I am knocked flat by the blast". A state ("I am armed", "I'm tied to a chair")
    and anything still to come ("I will be fine") are no result."""
    if p.modal or p.future or p.about or p.main is None or any(u.w in _EXPERIENCE for u in toks[p.v:]):
        return  # "I was captured once, years ago": the character's past, not this scene
    pp = toks[p.main].w
    n = len(toks)
    k = p.main + 1
    while k < n and _is_adverb(toks[k].w) or k < n and toks[k].w in ("straight", "right"):
        k += 1
    by_agent = k + 1 < n and toks[k].w == "by" and (toks[k + 1].w in _DETS or toks[k + 1].cap)
    past = k + 1 < n and toks[k].w in _PAST_WORDS and (toks[k + 1].w in _DETS or toks[k + 1].w in _OTHER_PRON)
    if pp in _HARM_PP or (by_agent and pp not in _STATIVE_PP) or past:
        ctx.add("outcome", toks[p.v].s, toks[p.main].e,
                "narrates what happens to the character; the DM and the dice decide that")


#: What a pickpocket takes: "lift the key from her chatelaine", "pinches the noble's purse".
_POCKETABLE = _ws("purse purses wallet wallets key keys keycard keycards ring rings badge card pass papers ledger coin "
                  "coins watch necklace gem gems jewel jewels locket brooch chit credstick")


def _lifts(toks: list[_Tok], b: str, k: int, ctx: _Ctx) -> bool:
    """A theft in one verb: "filch", "pilfer", or "lift / pinch / nick / palm" + something pocketable."""
    n = len(toks)
    if k >= n or _obj_is_self(toks, k, ctx) or toks[k].w in _PREPS:
        return False
    if b in ("filch", "pilfer"):
        return True
    end = _np_end(toks, k)
    return b in ("lift", "pinch", "nick", "palm") and 0 < end <= n and toks[end - 1].w in _POCKETABLE


_GETAWAY = _ws("walk get make slip stroll saunter sneak run drive fly escape ride sail limp")


def _arrived(toks: list[_Tok], k: int) -> bool:
    """"I'm out the door", "I am back aboard", "I'm there a full ten seconds ahead of everyone":
    the character is where the attempt was headed."""
    n = len(toks)
    if k + 1 >= n:
        return False
    w, w2 = toks[k].w, toks[k + 1].w
    if w == "halfway" and w2 in ("down", "up", "across", "through", "to", "there", "out", "home"):
        return True  # "is halfway down the stairs before he notices"
    if any(toks[q].w == "away" for q in range(k + 1, min(n, k + 4))) and (
            w in _NUMBER_WORDS or w in ("a", "far", "well", "miles", "already", "long", "safely")):
        return True  # "I'm three rooftops away"
    return (w in ("out", "through", "past", "across", "over") and w2 in ("the", "that", "those")
            or w == "out" and w2 == "of" and k + 2 < n and toks[k + 2].w in ("the", "a", "that", "sight", "range")
            or w == "back" and w2 in ("aboard", "inside", "on", "at", "home", "in")
            or w == "there" and w2 in ("in", "ahead", "first", "before", "a", "already"))


#: Finds stated as movements. "upon" always finds; "across", "on" and "onto" find only something new
#: ("stumble on a hidden door"), since "come across the room" and "stumble on the stairs" are movements.
_FOUND_PREP = {"come": ("upon", "across"), "stumble": ("upon", "on", "across", "onto"), "happen": ("upon", "on"),
               "chance": ("upon", "on")}
_NEW_THING = _ws("a an some another nothing two three several")


def _comes_upon(toks: list[_Tok], b: str, k: int) -> int | None:
    """A find stated as a movement: "come upon the crashed transport", "turn up a forged pass",
    "follow the oil trail to a hidden hangar". The index of the match's last word, or None."""
    n = len(toks)
    nxt = toks[k].w if k < n else ""
    if nxt in _FOUND_PREP.get(b, ()) and k + 1 < n and (nxt == "upon" or toks[k + 1].w in _NEW_THING):
        return k + 1
    if b == "turn" and nxt == "up" and k + 1 < n and toks[k + 1].w in _NEW_THING:
        return k + 1
    if b in ("follow", "trace", "track", "trail") and k < n and toks[k].w in ("the", "a", "an", "its", "their", "his"):
        # a trail leads to a new thing; following a person ("follow her to a table") is their doing
        for q in range(k + 1, min(n - 2, k + 6)):
            if toks[q].w == "to" and toks[q + 1].w in ("a", "an"):
                return q + 2
    return None


#: Verbs whose completion says nothing of a result: looking, saying, trying, wanting.
_NOT_DONE = _ws("be have do get go come say tell ask try attempt begin start keep use take give make let put see")


def _done_on_object(toks: list[_Tok], v: int, k: int, b: str, ctx: _Ctx) -> bool:
    """Whether the completed verb ``b`` (perfect or "having ...") acted on a thing in the scene:
    "swapped the real crown", "stitched the wound"; not "tried that", "told you", "checked the logs",
    "been here before", "fought bigger men before"."""
    n = len(toks)
    if b in _NOT_DONE or b in _MENTAL or b in _INTENT_V or b in _COMPLEMENT or b in _SEARCH or b in _PERCEPT \
            or b in _HOPE_LIKE or b in _WAIT or b in _EMOTION or k >= n or _obj_is_self(toks, k, ctx):
        return False
    if any(u.w in _EXPERIENCE for u in toks[v:]):
        return False  # experience, not this scene: "I've picked tougher locks before"
    nxt = toks[k]
    return nxt.w in ("the", "this", "that", "these", "those", "his", "her", "their", "its", "it", "them", "him") \
        or nxt.cap and nxt.w not in _SELF_PRON


_KEEPING = _ws("hand hands pocket pockets coat jacket bag pack satchel sleeve grip possession boot belt")


def _in_my_keeping(toks: list[_Tok], p: _Pred, c: _Clause, ctx: _Ctx) -> bool:
    """"By the time the bar has emptied, the ledger is in my coat": the thing is the character's
    now, with the moment it happened skipped over ("by the time", "before", "already")."""
    around = [u.w for u in toks[p.v:p.comp + 4]]
    words = [u.w for u in toks[p.comp:p.comp + 4] if u.w not in ("already", "safely", "now")]
    if words[:1] != ["in"] or len(words) < 3 or words[1] not in ("my", "our") or words[2] not in _KEEPING:
        return False
    return _by_the_time(ctx, c) or c.next_intro in ("before", "just-before") or any(
        w in ("already", "safely", "now") for w in around)


def _by_the_time(ctx: _Ctx, c: _Clause) -> bool:
    """Another clause of the sentence is a "by the time ..." clause: this one states how things
    stand then, the moment it happened skipped over."""
    return any(other is not c and other.intro == "time" for other in ctx.clauses)


def _pinned_against(toks: list[_Tok], b: str, k: int) -> bool:
    """"I pin the courier against the wall": the grapple, not its outcome."""
    return b == "pin" and any(u.w == "against" for u in toks[k:k + 5])


def _catch_idiom(toks: list[_Tok], k: int) -> bool:
    """"catch his eye", "catch my breath", "catch up": catching that grabs nothing thrown or fleeing."""
    return any(toks[q].w in ("eye", "eyes", "attention", "breath", "glimpse", "sight", "gaze", "up", "on", "cold",
                             "wind", "ride", "whiff", "drift") for q in range(k, min(len(toks), _np_end(toks, k) + 1)))


_VEHICLES = _lex("vehicles")
_REACH_NOT = _ws("for out into up over down across behind under toward towards around back in inside into through "
                 "deep high")


_TRANSFER = _lex("transfer")


def _arrives(toks: list[_Tok], b: str, k: int, ctx: _Ctx) -> bool:
    """Arrival ends a movement whose success the dice decide: "lands silently on the crate",
    "land the shuttle on the platform", "sets the shuttle down", "emerges in the captain's
    quarters", "reach the escape pod" (but "reach for the gun", "land a punch" is a hit)."""
    n = len(toks)
    nxt = toks[k].w if k < n else ""
    if b == "land":
        if nxt in ("on", "onto", "in", "inside", "atop", "behind", "beside", "at", "safely", "softly", "silently",
                   "lightly", "gently", "neatly", "squarely", "hard"):
            return True
        return any(toks[q].w in _VEHICLES or (toks[q].cap and toks[q].w not in ctx.actor) for q in range(k, min(n, k + 3)))
    if b == "emerge":
        return nxt not in ("from",) or any(u.w in ("on", "in", "inside", "into", "onto", "later") for u in toks[k + 1:])
    if b == "reach":
        return k < n and nxt not in _REACH_NOT and not _obj_is_self(toks, k, ctx) and not _is_adverb(nxt)
    if b in ("break", "smash", "blast", "punch", "cut", "tear", "crash") and nxt == "through":
        return True  # "we break through the blockade"
    if b == "get" and nxt in ("through", "past", "clear", "away", "free", "aboard", "across", "over"):
        # "I've just gotten through the door"; "I've got through worse / this / it" is a hardship
        after = toks[k + 2].w if k + 2 < n else ""
        return not (k + 1 < n and (toks[k + 1].w in ("worse", "it")
                                   or toks[k + 1].w in ("this", "that") and not after[:1].isalpha()))
    if b in ("set", "touch", "put", "bring") and "down" in {u.w for u in toks[k:k + 4]}:
        return b == "touch" or any(toks[q].w in _VEHICLES for q in range(k, min(n, k + 4)))
    return False


def _small_clause(toks: list[_Tok], k: int) -> int | None:
    """"watch her four arms slowly unfold": object + bare verb, a perceived event (its index)."""
    end = _np_end(toks, k)
    if end <= k:
        return None
    while end < len(toks) and _is_adverb(toks[end].w):
        end += 1
    if end < len(toks) and _FORMS.get(toks[end].w, ("", ""))[1] == "base" and toks[end].w not in _PREPS \
            and toks[end - 1].w not in _DETS:
        return end
    return None


_HOLD_STATE = _lex("hold_state")


#: "scares the mob into silence": a state another is driven into.
_INTO_STATE = _ws("silence compliance retreat line tears laughter panic hiding surrender")
_BACK_AND_FORTH = re.compile(r"\s+(?:and|or)\s+(\w+)")


def _resultative(toks: list[_Tok], vi: int, k: int, b: str, ctx: _Ctx) -> bool:
    """Verb + object + result ("kick the door off its hinges", "bargain him down to half")."""
    n = len(toks)
    vt = toks[vi]
    if k >= n:
        return False
    if toks[k].w == "my" and k + 1 < n and toks[k + 1].w == "way" or toks[k].w in ("our", "his", "her", "their") \
            and k + 1 < n and toks[k + 1].w == "way":
        if b in _WAY_VERBS and k + 2 < n and toks[k + 2].w in ("past", "through", "into", "out", "in", "aboard",
                                                                 "inside", "onto"):
            ctx.add("outcome", vt.s, toks[k + 2].e, "states the character got through; the dice decide that")
            return True
        return False
    # particle before the object: "knock out the sentry", "pry open the crate"
    w0 = toks[k].w
    if w0 in _RESULT_PARTICLES and b in _RESULT_PARTICLES[w0] and k + 1 < n and not _obj_is_self(toks, k + 1, ctx) \
            and toks[k + 1].w not in _PREPS and w0 not in ("away",):
        ctx.add("outcome", vt.s, toks[k].e, "states the result of the action")
        return True
    if _obj_is_self(toks, k, ctx) and k + 1 < n and toks[k + 1].w in ("free", "loose", "clear"):
        ctx.add("outcome", vt.s, toks[k + 1].e, "states the result of the action")  # "setting us free"
        return True
    if _obj_is_self(toks, k, ctx) or w0 in _PREPS and w0 not in ("off",):
        return False
    end = _np_end(toks, k)
    if end >= n or end == k:
        return False
    r = toks[end].w
    r2 = toks[end + 1].w if end + 1 < n else ""
    if (r, r2) in (("back", "to"), ("to", "normal")) and (r2 == "normal" or end + 2 < n and toks[end + 2].w in (
            "normal", "life", "full", "safety")):
        ctx.add("outcome", vt.s, toks[min(end + 2, n - 1)].e, "states the result of the action")  # "back to normal"
        return True
    back = _BACK_AND_FORTH.match(ctx.text, toks[end].e)
    if back and {r, back.group(1).lower()} in ({"open", "shut"}, {"open", "closed"}, {"on", "off"}, {"up", "down"}):
        return False  # "flips a lighter open and shut": a fidget, no state it ends in
    if r in _RESULT_PARTICLES and b in _RESULT_PARTICLES[r] and not (r in ("off", "out", "down") and r2 in ("the", "a")
                                                                      and b not in ("kick", "knock", "blast")):
        if r == "away" and r2 not in ("from",) and b != "blow":
            return False
        ctx.add("outcome", vt.s, toks[end].e, "states the result of the action")
        return True
    if b == "leave" and _leave_state(toks, k) is not None:
        ctx.add("outcome", vt.s, toks[_leave_state(toks, k)].e, "states the state the action leaves its target in")
        return True
    if r in ("out",) and r2 == "cold" or r in ("unconscious", "senseless") or r in _SPREAD and b in ("send", "knock",
                                                                                                     "throw", "punch",
                                                                                                     "kick", "hurl"):
        ctx.add("outcome", vt.s, toks[end].e, "states the result of the action")
        return True
    if r in ("to", "into") and r2 in ("pieces", "submission", "bits", "shreds") or r == "into" and r2 in _INTO_STATE \
            or r == "in" and r2 in ("half", "two"):
        ctx.add("outcome", vt.s, toks[end + 1].e, "states the result of the action")
        return True
    if r == "off" and r2 in ("its", "the", "their", "his", "her") and end + 2 < n and (
            toks[end + 2].w in ("hinges", "hinge", "feet", "mount", "mounts", "track", "tracks", "rails", "frame")
            or b in ("force", "kick", "blast", "tear", "rip", "wrench", "knock", "smash", "pry")):
        ctx.add("outcome", vt.s, toks[end + 2].e, "states the result of the action")
        return True
    if r == "to" and r2 in ("the", "a") and end + 2 < n and toks[end + 2].w in _GROUND and b in _FORCE_VERBS:
        ctx.add("outcome", vt.s, toks[end + 2].e, "states the target is brought down")
        return True
    if r in ("down",) and r2 == "to" and b in ("bargain", "haggle", "talk", "beat", "knock"):
        ctx.add("outcome", vt.s, toks[end].e, "states the negotiation succeeded")
        return True
    if r in ("from", "out") and b in ("wrestle", "wrench", "rip", "tear", "yank", "pry", "snatch", "twist", "prise"):
        ctx.add("outcome", vt.s, toks[end].e, "states the target was taken away")
        return True
    if r == "into" and (r2.endswith("ing") and len(r2) > 5 and r2 not in ("nothing", "something", "anything",
                                                                         "everything", "building", "clearing")
                        or r2 in ("submission", "silence", "compliance")):
        ctx.add("outcome", vt.s, toks[end + 1].e, "states the target was made to act; the dice decide that")
        return True  # "sweet-talk the officer into waiving the fees", "goad him into charging"
    if r == "into" and b in ("turn", "transform", "convert", "reduce", "change"):
        ctx.add("outcome", vt.s, toks[end].e, "states what the target was turned into")
        return True
    if r in ("open", "shut", "closed", "loose", "free", "apart") and b not in _HOLD_STATE:
        ctx.add("outcome", vt.s, toks[end].e, "states the result of the action")
        return True  # "haul the hatch open": any verb + object + the state it ends in
    if r == "into" and b in ("talk", "bluff", "trick", "charm", "con", "coax", "bully", "scare", "bribe"):
        ctx.add("outcome", vt.s, toks[end].e, "states the persuasion worked")
        return True
    if b in ("make", "get", "have") and (r in ("open", "loose", "free", "started", "online", "unstuck")
                                          or (r in _FORMS and _FORMS[r][1] in ("base", "ing")
                                              and r not in ("sure", "ready", "way", "fire"))):
        if toks[k].w in ("sure", "ready", "way", "it", "a", "an", "time", "room", "contact", "dinner"):
            return False
        ctx.add("outcome", vt.s, toks[end].e, "makes something happen as a fact; the dice decide that")
        return True
    return False


_AMBIENT = _lex("ambient")
_INCHOATIVE = _lex("inchoative")
_PREEMPTED = _lex("preempted")


def _judge_other(toks: list[_Tok], p: _Pred, ctx: _Ctx, c: _Clause, flags: set[str],
                 prev_main_base: str | None) -> None:
    """Someone or something other than the character is the subject: the DM's to narrate."""
    n = len(toks)
    intro = c.intro
    vi = p.main if p.main is not None else p.v
    if vi is None:
        return
    vt = toks[vi]
    b = p.base or ""
    k = p.comp
    nxt = toks[k].w if k < n else ""
    future = p.future or p.about or "then" in flags or "future" in flags or intro in ("then",)
    if intro == "before" and p.animate and "intent" not in flags and "fronted" not in flags and not p.future and (
            (p.modal and any(a in ("can", "could") for a in p.aux)) or b in _PERCEPT or b in _PREEMPTED):
        # "drop behind the guard before he can turn around": beating someone's reaction is an outcome.
        ctx.add("outcome", toks[p.v].s, vt.e, "asserts the character acted before anyone could react")
        return
    if p.instrument and p.tag == "past" and c.punct == "," and not p.aux and (k >= n or nxt in (
            "in", "on", "at", "over", "above", "high", "low", "before", "against", "across", "toward", "towards")):
        return  # "..., her rifle raised": the character's own posture, an absolute construction
    if p.subj == "pron:it" and b in ("turn", "seem", "appear") and toks[k:k + 3] and any(
            u.w in _SELF_PRON for u in toks[k:k + 3]):
        return  # "it turns out I am not going to stop": an expletive; the clause is the character's own
    if p.past and b in _REQUEST and nxt in ("me", "us") and k + 1 < n and toks[k + 1].w == "to" \
            and toks[p.subj_i].w in ("my", "our"):
        return  # "my boss told me to give him a tour": the character's own brief, not an outcome
    if p.modal:
        if b == "fail" and p.neg:
            ctx.add("future", toks[p.v].s, vt.e, "claims the plan cannot fail")
        return
    if p.subj == "there":
        if p.past:
            ctx.add("outcome", vt.s, vt.e, "narrates what happened")
        return
    if intro in ("so-that", "so", "if", "unless", "whether", "in-case", "as-if", "lest", "even-if"):
        return
    if intro == "while" and "fronted" not in flags and b in _STRIKE_RESULT and not (p.prog or p.modal or p.future
                                                                                      or p.perfect or p.past):
        # "I sprint for the truck while the sniper's shots miss": how an attack turns out. Other events
        # after "while" ("I run while the building collapses") are the scene the DM set.
        ctx.add("outcome", vt.s, vt.e, "narrates how someone else's action turns out; the DM decides that")
        return
    if intro in (None, "and") and not (p.modal or p.future or p.about) and _by_the_time(ctx, c):
        # "..., and by the time I sit down two of them are wiping their eyes": a skip to the result
        ctx.add("other_reaction" if p.animate else "outcome", vt.s, vt.e, "skips ahead to what happened meanwhile")
        return
    if intro in ("after", "once") and "fronted" in flags and b in _REACTION and b not in ("look", "turn", "follow") \
            and p.animate and not (p.modal or p.future or p.perfect or p.prog):
        # "After the station AI accepts her terms, Okoro uploads the patch": the answer taken for granted
        ctx.add("other_reaction", vt.s, vt.e, "takes another's answer for granted; the DM voices it")
        return
    if intro == "before" and "fronted" not in flags and not (p.modal or p.future or p.about or p.perfect or p.prog) \
            and not p.animate and (nxt in ("open", "loose", "free") or b in ("give", "click", "yield")):
        # "I spin the dial for a tense minute before the safe swings open": the result arrives
        ctx.add("outcome", vt.s, toks[k].e if nxt in ("open", "loose", "free") else vt.e,
                "narrates the result of the action; the dice decide that")
        return
    if intro in ("while", "when", "whenever", "because", "since", "once", "though", "although", "whereas",
                 "before", "after", "moment", "time", "now", "wh"):
        return
    if intro in ("until", "till"):
        if prev_main_base in _WAIT or prev_main_base == "__wait__" or p.instrument:
            return  # "I fire at the drone until my magazine runs dry": the character's own gear
    if intro == "as":
        # A trailing "as" clause says what someone else does meanwhile ("I say as the merchant
        # counts the credits"): the DM's to narrate. A sentence-initial one sets the scene, and a
        # threat closing in ("I duck as the turret swings toward me") is what the character reacts to.
        event = b in _AS_EVENT or p.instrument or p.passive or (
            nxt in ("to", "into") and k + 1 < n and toks[k + 1].w in ("life", "pieces")) or nxt in (
            "open", "shut", "apart", "loose", "off", "out", "dark", "silent")
        approach = any(u.w in ("toward", "towards", "closer", "at", "away") for u in toks[k:k + 6]) or (
            b in ("approach", "advance", "near", "come", "pass", "close", "circle", "patrol", "walk")) or (
            not p.animate and nxt == "up" and b not in _INCHOATIVE
            and not (k + 1 < n and toks[k + 1].w == "in"))  # "as the engines warm up" (not "goes up in flames")
        if not event and ("fronted" in flags or approach or p.prog or b in _MENTAL or b in _WAIT):
            return
        # People react (the DM voices them); things only matter when they change: "as the
        # breathing steadies", "as the bikes lose us" -- not "as the ship lurches" (ambient motion).
        if not event and not p.animate and (b in _AMBIENT or b.endswith("le") and b not in _INCHOATIVE):
            return
    if intro in _RELATIVE and p.past and (p.passive or p.prog or p.perfect or p.copula):
        return  # "the miners who were trapped": the situation as given
    kind: Kind
    if future:
        if p.have_to and not p.future:
            return
        if p.about and not p.future and not p.passive and b not in _AS_EVENT and b not in _EVENT_RESULT:
            return  # "the Raptor is about to blast away": an imminent move, not a foretold result
        ctx.add("future", toks[p.v].s, vt.e, "narrates what will happen; only the DM can")
        return
    if p.have_to:
        return
    if p.free_rel and p.copula:
        return
    if p.copula:
        comp_words = [u.w for u in toks[k:k + 4]]
        if p.past:
            ctx.add("other_reaction" if p.animate else "outcome", vt.s, vt.e, "narrates what happened")
            return
        if p.prog:
            return
        if _in_my_keeping(toks, p, c, ctx):
            ctx.add("outcome", vt.s, toks[min(k + 2, n - 1)].e, "states the character got hold of it; the dice decide that")
            return
        if intro in ("until", "till") and comp_words[:2] == ["nothing", "but"]:
            ctx.add("outcome", vt.s, toks[k + 1].e, "states the result of the action")  # "until it's nothing but scrap"
            return
        if any(w in _EMOTION for w in comp_words[:3]) or comp_words[:2] == ["in", "awe"]:
            ctx.add("other_reaction", vt.s, toks[min(k + 2, n - 1)].e if k < n else vt.e,
                    "states how another character feels, which is the DM's to decide")
            return
        if comp_words and (comp_words[0] in _RESULT_ADJ or (len(comp_words) > 1 and comp_words[0] in (
                "all", "now", "already", "completely", "finally") and comp_words[1] in _RESULT_ADJ)):
            if comp_words[0] in ("out", "down", "over", "in") and len(comp_words) > 1 and comp_words[1] in _DETS:
                return
            ctx.add("outcome", vt.s, toks[k].e, "states the result of the action")
            return
        return
    if p.passive:
        pp = toks[vi].w
        if pp in _STATIVE_PP:
            return
        by_agent = "by" in (nxt, toks[k + 1].w if k + 1 < n else "")
        if p.instrument and not p.past and not by_agent:
            return  # "my blaster is charged": the character's own gear; "my lie is swallowed by the judge" is not
        got = any(a == "be" for a in p.aux) and any(toks[q].w in ("gets", "get", "got") for q in range(p.v, vi))
        if not (p.past or got or pp in _EVENTIVE_PP or "own_object" in flags and not any(
                    toks[q].w in ("still", "already") for q in range(p.v, vi))
                or nxt in ("by", "out", "down", "away", "off", "apart", "aside", "back", "toward", "towards",
                           "through", "into", "clear", "free", "loose", "open", "shut", "unconscious")
                or k + 2 < n and toks[k + 1].w == "by" and (toks[k + 2].w in _DETS or toks[k + 2].cap)
                or _is_adverb(nxt) and nxt not in ("still", "already", "now", "just", "only", "also", "not")):
            return  # "the door is sealed": the situation as it stands
        if p.subj != "other" and not p.subj.startswith("pron:"):
            return
        kind = "other_reaction" if (pp in _EMOTION or b in _EMOTION) else "outcome"
        ctx.add(kind, toks[p.v].s, vt.e, "states the result as a fact (passive); the dice decide that")
        return
    if p.perfect:
        ctx.add("other_reaction" if p.animate and b not in _EVENT_RESULT else "outcome", toks[p.v].s, vt.e,
                "narrates what has happened")
        return
    if p.prog:
        if p.past or any(toks[q].w == "already" for q in range(p.v, vi)):
            # "the artefact is already glowing in Hob's hands": it happened before the dice could say
            ctx.add("other_reaction" if p.animate else "outcome", toks[p.v].s, vt.e, "narrates what happened")
        return
    if b == "have":
        if p.past:
            ctx.add("other_reaction" if p.animate else "outcome", vt.s, vt.e, "narrates what happened")
            return
        if any(u.w in ("look", "expression", "smile", "frown", "grin", "scowl", "tears") for u in toks[k:k + 5]):
            ctx.add("other_reaction", vt.s, vt.e, "states how another character feels")
        return
    if b in _MENTAL and not p.past:
        if b in ("seem", "appear", "look") and any(u.w in _EMOTION for u in toks[k:k + 3]):
            ctx.add("other_reaction", vt.s, vt.e, "states how another character feels")
        return
    if (p.subj or "") in ("pron:nobody", "pron:everyone", "pron:everybody", "pron:anyone", "pron:none") \
            and not p.past and nxt in ("like", "better", "faster", "quite", "as"):
        return  # "Nobody flies like Rex!": a generic boast, not an event
    if p.indefinite and not p.past and b not in _EVENT_RESULT and c is ctx.first_clause:
        return  # "A trader offers a crate...": the scene as given
    if p.tag == "base" and not p.plural and not (p.aux and p.aux[-1] in ("do", "does", "did")) \
            and not (p.subj or "").startswith("pron:") and not (vi > 0 and _plural_word(toks[vi - 1].w)):
        return
    kind = "other_reaction" if (p.animate and b not in _EVENT_RESULT) else "outcome"
    if intro in ("just-as", "just-before", "just-after"):
        kind = "outcome"
    ctx.add(kind, vt.s, vt.e, "narrates what someone or something else does; the DM decides that")


def _markers(toks: list[_Tok], start: int, hedged: bool, ctx: _Ctx) -> None:
    n = len(toks)
    i = start
    hedge_seen = hedged
    if not hedged:
        for j in range(0, start):  # a fronted time skip: "Two hours later we are docking ..."
            if toks[j].w == "later":
                _success_adjunct(toks, j, ctx)
    while i < n:
        w = toks[i].w
        if w in _HEDGE_WORDS or (w in ("will", "going") and i > 0 and toks[i - 1].w in ("i", "we")) \
                or w == "to" and _governed_to(toks, i):
            hedge_seen = True
        cands = _MARKER_FIRST.get(w)
        if cands:
            for words, kind, reason in cands:
                L = len(words)
                if tuple(u.w for u in toks[i:i + L]) != words:
                    continue
                if words == ("perfectly",) and i + 1 < n and toks[i + 1].w in _STILL_ADJ:
                    break
                if words in (("to", "spare"),) and not (any(u.w == "with" for u in toks[max(0, i - 7):i]) and i and (
                        toks[i - 1].w in _SPANS or toks[i - 1].w in ("time", "moments", "inches", "room"))):
                    break  # "with seconds to spare"; not "with three metres of tether to spare"
                if words == ("easily",) and i + 1 < n and toks[i + 1].w in ("within", "in", "the", "visible"):
                    break
                if words[-1] == "out" and words[0].startswith("turn") and (any(
                        u.w in ("how", "if", "whether", "what") for u in toks[max(0, i - 2):i])
                        or any(u.w in _SELF_PRON for u in toks[i + 2:i + 4])):
                    break  # "see how it turns out": an open question; "it turns out I ...": about oneself
                if words == ("to", "reveal") and i + 2 < n and toks[i + 2].w in ("what", "whether", "if", "how", "who",
                                                                                   "where", "why", "which", "nothing"):
                    break  # "to reveal what's inside": what the character means to find out
                if not hedge_seen:
                    ctx.add(kind, toks[i].s, toks[i + L - 1].e, reason)
                i += L - 1
                break
        if not hedge_seen:
            _success_adjunct(toks, i, ctx)
        i += 1


#: Verbs whose "to"-infinitive is asked for, needed or promised, not done: "I order the crew to seal the
#: doors within minutes", "I need to be out within seconds", "I swear to return after three nights".
_GOVERNS_TO = _REQUEST | _INTENT_V | _ws("promise swear vow have get")


def _governed_to(toks: list[_Tok], i: int) -> bool:
    """Is the "to" at ``i`` the infinitive of a request, a need or a promise (up to four words back)?"""
    if i + 1 >= len(toks) or toks[i + 1].w != "be" and _FORMS.get(toks[i + 1].w, ("", ""))[1] != "base":
        return False  # "I got to the roof", "I order the crew to the bridge": no infinitive
    for j in range(i - 1, max(-1, i - 5), -1):
        w = toks[j].w
        if w in _PUNCT:
            return False
        base = _FORMS.get(w, ("",))[0]
        if base in _GOVERNS_TO and (base not in ("have", "get") or j == i - 1):
            return True
    return False


_TIME_UNITS = _lex("time_units")
_NUMBER_WORDS = _ws("one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen "
                    "sixteen seventeen eighteen nineteen twenty thirty forty fifty sixty seventy eighty ninety "
                    "hundred thousand dozen")
_COUNT_WORDS = _NUMBER_WORDS - {"one"} | _ws("several few many")
_TIME_NOUNS = _ws("pause while wait delay silence week weeks month months year years night nights")
_SPANS = _TIME_UNITS | _TIME_NOUNS
_UNNOTICED = _lex("unnoticed")
_MISHAPS = _lex("mishaps")
_VOLUNTARY_ING = _lex("voluntary_ing")


def _success_adjunct(toks: list[_Tok], i: int, ctx: _Ctx) -> None:
    """Adjuncts that state how the attempt turned out rather than how it is made: a time skip
    ("two minutes later"), "un-" + a verb of noticing or stopping ("unheard", "unchallenged"),
    and "without" + an unwanted side effect ("without a bump", "without rattling a single
    chain", "without being seen", "without anyone hearing")."""
    n = len(toks)
    t = toks[i]
    w = t.w
    if w == "within" and i + 2 < n and (toks[i + 1].w in ("a", "an", "half", "quarter") or toks[i + 1].w in _NUMBER_WORDS) \
            and any(u.w in _TIME_UNITS for u in toks[i + 1:i + 4]):
        end = next(q for q in range(i + 1, min(n, i + 4)) if toks[q].w in _TIME_UNITS)
        ctx.add("outcome", t.s, toks[end].e, "skips ahead past the outcome; the DM narrates what happens meanwhile")
        return
    if w == "later" and i > 0 and (toks[i - 1].w in _TIME_UNITS or toks[i - 1].w.isdigit()):
        ctx.add("outcome", toks[i - 1].s, t.e, "skips ahead past the outcome; the DM narrates what happens meanwhile")
        return
    if w == "after" and i + 2 < n and (toks[i + 1].w in _COUNT_WORDS or toks[i + 1].w.isdigit()) and (
            toks[i + 2].w in _TIME_UNITS or toks[i + 2].w in _TIME_NOUNS or i + 3 < n and toks[i + 2].w in (
                "long", "tense", "few", "more", "full", "whole") and toks[i + 3].w in _SPANS):
        end = i + 2 if toks[i + 2].w in _SPANS else i + 3
        ctx.add("outcome", t.s, toks[end].e, "skips ahead past the outcome; the DM narrates what happens meanwhile")
        return
    if w.startswith("un") and len(w) > 5 and not (i + 1 < n and toks[i + 1].w not in _PUNCT and toks[i + 1].w
                                                    not in _PREPS and toks[i + 1].w not in _SPLIT):
        info = _FORMS.get(w[2:])
        if info and info[0] in _UNNOTICED and info[1] in ("past", "pp"):
            ctx.add("outcome", t.s, t.e, "asserts nobody noticed or stopped the character")
        return
    if w != "without" or i + 1 >= n:
        return
    rest = [u.w for u in toks[i + 1:i + 7]]
    first = rest[0]
    side_effect = (
        "single" in rest[:3]
        or (first in ("being", "getting") and len(rest) > 1 and rest[1] in _PP_OK)
        or (first in ("anyone", "anybody", "anything", "them", "him", "her", "the", "a", "any") and any(
            x == "having" or (_FORMS.get(x, ("", ""))[1] == "ing" and x.endswith("ing")) for x in rest[1:5])
            and first not in ("a",))
        or (first.endswith("ing") and _FORMS.get(first, ("", ""))[1] == "ing" and first not in _VOLUNTARY_ING)
        or (first in ("a", "any", "so") and len(rest) > 1 and (rest[1] in _MISHAPS or rest[1].rstrip("s") in _MISHAPS
                                                              or rest[1] == "second" and len(rest) > 2
                                                              and rest[2] in ("glance", "look")))
    )
    if side_effect:
        end = toks[min(n - 1, i + 3)].e
        ctx.add("outcome", t.s, end, "states what did not go wrong; the dice decide that")


def _emotion_fragment(toks: list[_Tok], ctx: _Ctx) -> None:
    """A verbless description of another's face or feelings: "her eyes wide with anger"."""
    n = len(toks)
    for i, t in enumerate(toks):
        if t.w in _EXPRESSION and i > 0:
            owner = toks[i - 1]
            if owner.w in ("his", "her", "their", "its") and not _pron_is_self(owner.w, ctx) or (
                    owner.poss and owner.w not in ctx.actor and owner.w not in _SELF_PRON):
                if i + 1 < n and (toks[i + 1].w in ("wide", "narrow", "narrowed", "blazing", "clouded", "filled",
                                                     "full", "redder", "pale", "shining", "glowing", "brimming",
                                                     "wet", "gleaming", "with", "tight", "soft", "hard")):
                    ctx.add("other_reaction", owner.s, toks[i + 1].e, "describes another character's reaction")
                    return


def _attributive(toks: list[_Tok], ctx: _Ctx) -> None:
    """"The distracted guard": a modifier that presupposes a reaction the DM has not narrated."""
    for i in range(1, len(toks) - 1):
        if toks[i].w in _ATTRIB_REACTION and (toks[i - 1].w in _DETS or toks[i - 1].poss) \
                and toks[i + 1].w not in _PREPS and toks[i + 1].w not in _PUNCT:
            nw = toks[i + 1].w
            if nw in _PERSONS or nw.rstrip("s") in _PERSONS:
                ctx.add("other_reaction", toks[i].s, toks[i].e, "presupposes another character's reaction")
                return


def _hidden_object(toks: list[_Tok], ctx: _Ctx) -> None:
    """"Pulling the hidden data chip out": handling a hidden thing presupposes it was found."""
    for i in range(1, len(toks) - 1):
        if toks[i].w in ("hidden", "secret", "concealed") and toks[i - 1].w == "the":
            before = {u.w for u in toks[max(0, i - 6):i]}
            if before & {"for", "search", "searches", "searching", "look", "looks", "looking", "any", "find", "finds",
                         "scan", "scans", "check", "checks", "if", "whether"}:
                return
            if i >= 2 and (_FORMS.get(toks[i - 2].w, ("", ""))[1] in ("ing", "s", "base", "past")):
                ctx.add("outcome", toks[i].s, toks[i].e, "presupposes the hidden thing was found")
                return


# --------------------------------------------------------------------------- driver

_LABEL = re.compile(r"^\s*[(\[]?\s*([A-Za-z][\w'.\- ]{0,40}?)\s*:\s*(?=\S)")


def _speaker_label(norm: str, masked: str, ctx: _Ctx) -> tuple[str, bool]:
    """Handle a script-style "Name: line". Returns the text to analyse and whether to stop."""
    m = _LABEL.match(norm)
    if not m:
        return masked, False
    label = m.group(1).strip()
    raw_words = label.replace("'s", "").split()
    words = [w.lower().strip(".") for w in raw_words]
    if not words or len(words) > 5:
        return masked, False
    if any(w in _GENERIC_LABELS for w in words) or words[0] in ("in", "one", "two", "three") or words in (["a"], ["q"]):
        # "A: ..." is an answer, as in "Q: ... A: ...", not a character called A
        return " " * m.end() + masked[m.end():], False
    if len(words) == 2 and (words[0] in ("i", "you", "we") or words[0] in ctx.actor) \
            and _FORMS.get(words[1], ("",))[0] in _SPEECH:
        return masked, True  # "You say: ...": the character's own line
    if any(w in _BE or w in _AUX_MODAL or w in _HAVE or w in _DO or _FORMS.get(w, ("", ""))[1] in ("s", "past")
           for w in words):
        return masked, False
    if words[0] in ("the", "a", "an", "his", "her", "their") and words[-1] not in ("player", "character"):
        ctx.add("other_reaction", m.start(1), m.end(1), "writes another character's lines; the DM voices them")
        return masked, True
    if words == ["i"] or all(w[:1].isupper() or w.lower() in ("voice", "unit") for w in raw_words):
        return masked, True  # the character's own script line: speech
    return masked, False


def _mask_quotes(text: str) -> str:
    """Blank out quoted speech (same length), so offsets still refer to the original text."""
    return _QUOTE.sub(lambda m: " " * len(m.group(0)), text)


_QUOTE = re.compile(r"\"[^\"]*\"|“[^”]*”|\"[^\"]*$")
_CONDITIONAL_START = _ws("if unless suppose supposing should")


def find_overreach(text: str) -> list[Violation]:
    """Every place where ``text`` narrates an outcome, another's reaction, or the future."""
    ctx = _Ctx(text)
    norm = text.replace("’", "'").replace("‘", "'")
    masked = _mask_quotes(norm)
    masked, stop = _speaker_label(norm, masked, ctx)
    if stop:
        return _dedupe(sorted(ctx.found, key=lambda v: v["start"]))
    sentences = _split_sentences(_tokens(masked))
    _find_actor(sentences, ctx)
    for toks, end in sentences:
        if end == "?" or not toks:
            continue
        if toks[0].w in _CONDITIONAL_START or (toks[0].w == "what" and len(toks) > 1 and toks[1].w == "if") \
                or (toks[0].w == "in" and len(toks) > 1 and toks[1].w == "case"):
            continue
        _sentence(toks, ctx)
    return _dedupe(sorted(ctx.found, key=lambda v: v["start"]))


def _sentence(toks: list[_Tok], ctx: _Ctx) -> None:
    clauses = _clauses(toks)
    ctx.clauses = clauses
    if ctx.first_clause is None and clauses:
        ctx.first_clause = clauses[0]
    scope = False              # inside a hope / speech / purpose / condition complement
    vp_carry = False           # the previous verb phrase was an infinitive under an intent verb
    main_subj: _Pred | None = None
    prev_self_base: str | None = None
    prev_main_base: str | None = None
    pending_that = False       # "explains to the ambassador that ...": the that-clause is speech
    this_sub = prev_sub = None  # the other subject of this / the previous clause, for "X sputters and dies"
    conditional = {ci for ci in range(len(clauses) - 1) if clauses[ci + 1].intro in ("if", "unless")}
    for ci, c in enumerate(clauses):
        ct = c.toks
        if c.intro == "and" and c.punct is None and ci > 0 and clauses[ci - 1].intro in _SETTING and any(
                later.intro is None for later in clauses[ci + 1:]):
            c.intro = clauses[ci - 1].intro  # "When the fireworks start and every head turns, ...": still the when
        intro = c.intro
        if c.punct == ":" and ci > 0 and not scope and _reading(ct, clauses[ci - 1].toks):
            # "Brix measures the drop: forty-two metres": the reading is the DM's to give
            ctx.add("outcome", ct[0].s, ct[0].e, "states what the character measured; the DM gives that")
        # ---- where does this clause stand?
        i = 0
        flags: set[str] = set()
        while i < len(ct) and (ct[i].w in _LEAD_SKIP or (ct[i].w == "one" and i + 2 < len(ct) and ct[i + 1].w == "by")):
            if ct[i].w in _FUTURE_LEAD:
                flags.add("future")
            if ct[i].w == "then":
                flags.add("then")
            if ct[i].w == "one" and i + 2 < len(ct) and ct[i + 1].w == "by":
                i += 3
                continue
            i += 1
        if ci == 0:
            flags.add("fronted")
        pred = _subject(ct, i, ctx) if i < len(ct) else None
        infinitive = i + 1 < len(ct) and ct[i].w == "to" and _FORMS.get(ct[i + 1].w, ("", ""))[1] == "base"
        if pred is None and i < len(ct) and ct[i].w in _PREPS and not infinitive:
            # A fronted phrase before the subject: "with one more heave the bolt turns".
            for j in range(i + 1, min(len(ct), i + 9)):
                if ct[j].w in _SELF_PRON or ct[j].w in _OTHER_PRON or ct[j].w in _DETS or ct[j].poss:
                    if ct[j - 1].w in _PREPS or ct[j - 1].w in _DETS or ct[j - 1].poss:
                        continue
                    if ct[j - 1].w in _FORMS and not (j >= 2 and (ct[j - 2].w in _DETS or ct[j - 2].w in (
                            "more", "last", "final", "single", "first", "one"))):
                        continue  # "help the crew go in": the object of a verb, not a subject
                    cand = _subject(ct, j, ctx)
                    if cand is not None and cand.v is not None:
                        pred = cand
                        break
        if pred is not None and pred.subj is not None and pred.v is None and pred.comp < len(ct):
            # "After a tense minute I crack the safe", "The next day, I ...": a fronted adverbial.
            cand = _subject(ct, pred.comp, ctx)
            if cand is not None and cand.v is not None and (cand.subj == "self" or ct[pred.comp].w in _DETS
                                                             or ct[pred.comp].w in _OTHER_PRON):
                pred = cand
                i = pred.subj_i
                if intro in ("after", "before", "until", "till", "as") and ci == 0:
                    intro = c.intro = None
                elif intro == "after" and ci > 0 and any(u.w in _TIME_UNITS or u.w in _TIME_NOUNS
                                                         for u in ct[:pred.comp]):
                    # "..., and after a long pause he folds": a time adjunct before the subject, not a clause
                    intro = c.intro = "and"
        if pred is None and i < len(ct) and (intro in ("which", "who", "whom") or (
                intro == "that" and ci > 0 and clauses[ci - 1].toks and _ends_in_noun(clauses[ci - 1].toks)
                and _FORMS.get(ct[i].w, ("", ""))[1] in ("s", "past"))):
            rel = _Pred()
            prev_toks = clauses[ci - 1].toks if ci > 0 else []
            rel.subj = "self" if (prev_toks and prev_toks[-1].w in ctx.actor) else "other"
            rel.animate = intro != "which"
            rel.plural = True
            rel.subj_i = i
            rel.rel = True
            pred = _verb_group(ct, i, rel, ctx)
        explicit = pred is not None and pred.subj is not None
        prev_sub = this_sub
        this_sub = pred if (explicit and pred.v is not None and pred.subj != "self") else None
        if explicit and intro in ("and", "but", "yet") and pred.base in ("be", "do", "have") and pred.main is not None \
                and not (pred.modal or pred.future or pred.about) and all(
                    u.w in ("not", "too", "so", "indeed") for u in ct[pred.main + 1:]) and not hedged_outer(ci, clauses):
            # "..., Zix promises, and they are.": an elided verb phrase confirms the claim came true.
            ctx.add("outcome", ct[pred.subj_i].s, ct[pred.main].e, "confirms that what was claimed came true")
        elif explicit and intro in ("and", "but", "yet") and pred.future and pred.main is None and pred.subj != "self" \
                and pred.comp >= len(ct) and not pred.neg and not hedged_outer(ci, clauses):
            # "'He'll crack by morning,' Moor says, and he will.": the prediction confirmed
            ctx.add("future", ct[pred.subj_i].s, ct[pred.comp - 1].e, "states as certain what will happen")
        if intro in ("but", "yet") and _attempted(clauses[:ci]) and not hedged_outer(ci, clauses):
            _failure_coda(ct, pred if explicit else None, ctx)
        breaker = (c.punct in (";", ":") or (c.punct and intro in (None, "and", "but", "then", "yet", "or",
                                                                   "so-therefore"))
                   or intro in ("but", "then")) and explicit
        if explicit and pred.subj == "self" and intro in ("and", "but", None) and ci > 0 and pred.v is not None:
            breaker = True
        if pred is None and c.punct == "," and intro in (None, "and", "then", "but") and main_subj is not None \
                and main_subj.subj == "self" and i < len(ct) and _agrees(ct[i].w, main_subj, ctx):
            # "I explain that we were late, offer the coin, and watch ...": the next verb of the
            # character ends the reported speech or thought; it is the character's own act again.
            breaker = True
        if breaker:
            scope = False
            pending_that = False
        if c.punct == ";" or c.punct == ":" and explicit:
            vp_carry = False  # "I try to slip in; ten minutes later I am reading": a new statement
        if c.punct == ":" and ci > 0 and clauses[ci - 1].toks and clauses[ci - 1].toks[-1].w in _PLAN_NOUNS:
            scope = True  # "I tell Rex the plan: he distracts the guards ...": the plan, not events
        if intro == "that" and ci > 0 and clauses[ci - 1].toks and clauses[ci - 1].toks[-1].w in _HEDGE_NOUNS:
            scope = True  # "in the hope that ...", "on the off chance that ..."
        if intro in ("that", "where", "whether", "if", "how", "why", "what") and pending_that:
            scope = True
        hedged = scope or intro in _HEDGE_INTRO or ci in conditional or (
            intro in ("which", "who", "whom", "that") and ci > 0 and _search_target(clauses[ci - 1].toks)) or (
            intro in ("who", "what", "where", "whether", "how", "why", "which") and c.punct is None and ci > 0 and any(
                _FORMS.get(u.w, ("",))[0] in _ASK for u in clauses[ci - 1].toks)) or (
            intro == "that" and c.punct is None and ci > 0 and any(
                u.w in ("for", "toward", "towards") for u in clauses[ci - 1].toks[-4:]))
        # "reach for the lever that drops the portcullis": a restrictive clause names the target of the attempt
        if intro == "as" and ci > 0 and clauses[ci - 1].toks and (clauses[ci - 1].intro == "as" and len(
                clauses[ci - 1].toks) <= 2 or len(clauses[ci - 1].toks) >= 2 and clauses[ci - 1].toks[-2].w == "as"):
            hedged = True  # "as fast as her boots allow": a comparison, not an event
        if intro in ("until", "till") and (vp_carry or main_subj is not None and main_subj.subj == "self" and (
                main_subj.modal or main_subj.future)):
            scope = hedged = True  # "I try to calm the beast until it lies down": the aim of the attempt
        if intro in _HEDGE_INTRO:
            scope = True
        if explicit and pred.v is None:
            # A verbless noun phrase: the subject of a verb after an appositive, an absolute
            # construction ("the portcullis rising"), or a fragment.
            nxt_c = clauses[ci + 1] if ci + 1 < len(clauses) else None
            if intro not in _BACKGROUND and intro not in _HEDGE_INTRO and (
                    ci == 0 or (nxt_c is not None and nxt_c.punct in (",", "\u2014", "\u2013", "-", "--")
                                and nxt_c.intro is None)):
                main_subj = pred
            k = pred.comp
            if (not hedged and k < len(ct) and c.punct and pred.subj == "other" and ct[k].w.endswith("ing")
                    and _FORMS.get(ct[k].w, ("", "ing"))[1] == "ing" and intro not in _BACKGROUND
                    and not any(u.w in ("my", "our") for u in ct)):
                ctx.add("other_reaction" if pred.animate else "outcome", ct[pred.subj_i].s, ct[k].e,
                        "narrates what someone or something else does; the DM decides that")
            if not hedged:
                _emotion_fragment(ct, ctx)
                _embedded(ct, i, ctx, hedged or scope)
            _markers(ct, i, hedged, ctx)
            _attributive(ct, ctx)
            continue
        if intro in ("only-to",) and pred is None and i < len(ct):
            info = _FORMS.get(ct[i].w)
            if info and not hedged and (info[0] in _PERCEPT or info[0] in _ACHIEVE):
                ctx.add("outcome", ct[i].s, ct[i].e, "states what the character found")
            continue
        # ---- subjectless clauses: coordinated verb phrase, participle, infinitive, imperative.
        if pred is None:
            prev_c = clauses[ci - 1] if ci > 0 else None
            if intro == "and" and c.punct is None and prev_sub is not None and prev_c is not None \
                    and prev_c.intro in ("as", "just-as", "until", "till", "which", "who", "that"):
                # "as the generator sputters and dies": the second verb shares the subordinate subject.
                c.intro = prev_c.intro
                _subjectless(ct, i, c, ci, ctx, hedged, vp_carry, prev_sub, prev_self_base, inherited=True)
                c.intro = intro
            else:
                _subjectless(ct, i, c, ci, ctx, hedged, vp_carry, main_subj, prev_self_base)
            info = _FORMS.get(ct[i].w) if i < len(ct) else None
            if info is not None:
                b = info[0]
                if info[1] == "ing" and (b in _HOPE_LIKE or b in _INTENT_V or b in _COMPLEMENT and b not in ("check",)):
                    nxt_intro = clauses[ci + 1].intro if ci + 1 < len(clauses) else None
                    if b in _HOPE_LIKE or (b in _COMPLEMENT and b not in _INTENT_V and (
                            b not in _SPEECH or b in _REQUEST or nxt_intro in ("that", "wh", "if", "whether", "where",
                                                                              "how", "what", "who", "why")
                            or _has_clause_after(ct, i + 1, ctx) or i + 1 >= len(ct))):
                        # a hope, a request, or a speech verb followed by its speech opens a scope; a speech
                        # verb with no speech does not ("snapping a photo before anyone notices")
                        scope = True
                if main_subj is not None and main_subj.subj == "self" and info[1] in ("base", "s", "past"):
                    prev_self_base = b
                    if b in _COMPLEMENT and not _has_clause_after(ct, i + 1, ctx):
                        pending_that = True
                    if b in _HOPE_LIKE or (b in _COMPLEMENT and _has_clause_after(ct, i + 1, ctx)):
                        scope = True
                if info[1] in ("base", "s", "past"):
                    vp_carry = vp_carry if (info[1] == "base" and vp_carry) else _infinitive_under_intent(ct, i)
            if i < len(ct) and ct[i].w == "to":
                vp_carry = True
            _markers(ct, i, hedged or (vp_carry and intro in ("and", "then", None)), ctx)
            _attributive(ct, ctx)
            if not hedged:
                _hidden_object(ct, ctx)
            continue
        # ---- a clause with its own subject.
        is_main = intro in (None, "and", "but", "or", "yet", "then", "so-therefore", "result")
        if pred.subj == "self" and pred.main is not None and ct[pred.subj_i].w in _POSS_PRON \
                and pred.subj_i + 1 < len(ct) and ct[pred.subj_i + 1].w in _BODY \
                and _present_participle_past(ct[pred.main].w, pred.tag, c, main_subj):
            continue  # "..., my eyes fixed on the judge": an absolute phrase describing the character
        if pred.subj == "self":
            if pred.v is not None and intro not in _RELATIVE:
                if not hedged and intro not in _BACKGROUND and intro != "that":
                    _judge_self(ct, pred, ctx, c, prev_self_base if intro in ("and", None, "then") else None)
                elif not hedged and intro in ("until", "till") and pred.base in _FIND_V and not pred.modal:
                    _judge_self(ct, pred, ctx, c, None)  # "I sort through the wreckage until I find the chip"
                elif not hedged and pred.main is not None and not (pred.modal or pred.future):
                    if intro in ("as", "while") and "fronted" not in flags:
                        _judge_self(ct, pred, ctx, c, None)  # "... as I take down the hunter": still a fact
                    else:
                        _resultative(ct, pred.main, pred.comp, pred.base or "", ctx)
            elif intro in ("who", "whom") and not hedged:
                _judge_self(ct, pred, ctx, c, None)
            if is_main:
                main_subj = pred
                prev_self_base = pred.base
                prev_main_base = pred.base
            if pred.base in _COMPLEMENT and not pred.passive and not _has_clause_after(ct, pred.comp, ctx):
                pending_that = True
            if not pred.passive and (pred.base in _HOPE_LIKE or (pred.base in _COMPLEMENT
                                                                  and _has_clause_after(ct, pred.comp, ctx))):
                scope = True if not pred.modal or pred.base in _HOPE_LIKE else scope
            vp_carry = _infinitive_under_intent(ct, pred.v or 0) or (pred.future and pred.subj == "self") \
                or pred.modal
        else:
            if not hedged:
                if pred.subj is not None and pred.subj.startswith("pron:") and pred.subj[5:] in (
                        "he", "she", "it", "they") and _pron_is_self(pred.subj[5:], ctx, _effective_base(ct, pred)):
                    pred.subj = "self"
                    if pred.v is not None and (intro not in _BACKGROUND or intro in ("as", "while")
                                               and "fronted" not in flags) and intro not in ("that",):
                        _judge_self(ct, pred, ctx, c, None)
                else:
                    relative_self = intro in ("who",) and ci > 0 and clauses[ci - 1].toks and \
                        clauses[ci - 1].toks[-1].w in ctx.actor
                    if relative_self:
                        pred.subj = "self"
                        _judge_self(ct, pred, ctx, c, None)
                    elif intro in ("just-as", "just-before", "just-after"):
                        if pred.main is not None and not pred.modal and not pred.future and pred.subj != "self" \
                                and not (vp_carry and intro == "just-before"):  # "try to lift off a second before"
                            start = c.close_at.s if c.close_at is not None else ct[pred.main].s
                            ctx.add("outcome", start, ct[pred.main].e,
                                    "states the action beat the event just in time; the dice decide that")
                    else:
                        if vp_carry or (main_subj is not None and main_subj.subj == "self"
                                        and (main_subj.modal or main_subj.future)):
                            flags.add("intent")
                        if intro in ("and", "then") and ci > 0 and main_subj is not None and main_subj.subj == "self" \
                                and pred.v is not None and pred.v > pred.subj_i and pred.subj == "other" \
                                and ct[pred.v - 1].w not in _DETS and len(ct[pred.v - 1].w) > 2 \
                                and any(u.w == ct[pred.v - 1].w for u in clauses[ci - 1].toks):
                            flags.add("own_object")  # "I weld a plate over the breach, and the breach is sealed"
                        _judge_other(ct, pred, ctx, c, flags, prev_main_base)
            if is_main and pred.subj != "self":
                main_subj = pred
            if is_main:
                prev_main_base = pred.base
            vp_carry = False
        if any(_FORMS.get(u.w, ("",))[0] in _WAIT for u in ct) and intro not in ("until", "till"):
            prev_main_base = "__wait__"
        if pred.passive and pred.base in _COMPLEMENT and not (pred.future or pred.modal) and c.next_intro == "that":
            scope = True  # "I was told that the guard sleeps at noon": what was told, not an event
        _markers(ct, i, hedged or (pred.subj == "self" and (pred.modal or pred.future)), ctx)
        _attributive(ct, ctx)
        if not hedged and pred.subj == "self":
            _hidden_object(ct, ctx)
        _embedded(ct, pred.comp if pred.v is not None else i, ctx, hedged or scope)


_PLAN_NOUNS = _lex("plan_nouns")
#: Connectives of a clause that sets the time or condition of another; a clause joined to it by a bare
#: "and" shares it.
_SETTING = _ws("when whenever if unless once while")
_MEASURE = _ws("count measure tally gauge estimate weigh clock time pace sound")


def _reading(ct: list[_Tok], before: list[_Tok]) -> bool:
    """A number after a colon, following a measuring verb with an object: "counts the guards: six"."""
    if not ct or not before:
        return False
    w = ct[0].w
    number = w.isdigit() or all(x in _NUMBER_WORDS for x in w.split("-"))
    return number and any(_FORMS.get(u.w, ("",))[0] in _MEASURE and q + 1 < len(before)
                          and before[q + 1].w in _DETS for q, u in enumerate(before[:4]))


def _agrees(w: str, subj: _Pred, ctx: _Ctx) -> bool:
    """Whether ``w`` is a finite verb that could continue the subject's verb phrase (I offer, Zix offers)."""
    info = _FORMS.get(w)
    if info is None or w in _BE or w in _HAVE or w in _DO or w in _PREPS:
        return False
    first_person = subj.subj_i is not None and subj.plural and not ctx.actor or ctx.first_person and not ctx.actor
    return info[1] == ("base" if first_person else "s") or info[1] == "past"


_SEARCH = _lex("search")


#: "ask the informant who hired the assassins": what follows is the question, not an answer.
_ASK = _ws("ask wonder inquire enquire question")
_ROUTE_NOUNS = _ws("course route path trajectory heading plan")


def _search_target(toks: list[_Tok]) -> bool:
    """"search for anything that looks forged", "scan for anyone who looks out of place": a
    relative clause on what is looked for describes it; nothing has happened."""
    if not toks:
        return False
    if toks[-1].w.startswith(("any", "some")) or any(u.w == "any" for u in toks[-4:]):
        return True
    if toks[-1].w in _ROUTE_NOUNS:
        return True  # "plot a course that skims the atmosphere": the course planned, not flown
    return any(u.w == "for" for u in toks[-4:]) and any(_FORMS.get(u.w, ("",))[0] in _SEARCH for u in toks)


def _ends_in_noun(toks: list[_Tok]) -> bool:
    """"drops a grenade | that collapses ...": "that" after a noun opens a relative clause."""
    last = toks[-1]
    if last.w in _SELF_PRON or last.w in _OTHER_PRON or last.w in _MAYBE_PRON or last.w in _PREPS:
        return False
    if last.w in ("him", "her", "them", "me", "us", "so", "such", "sure", "way", "fact", "news", "idea"):
        return False
    if _search_target(toks):
        return False
    if last.w in _HEDGE_NOUNS:
        return False
    return last.w not in _FORMS or (len(toks) > 1 and (toks[-2].w in _DETS or toks[-2].poss))


_ATTEMPT = _ws("try tries trying tried attempt attempts attempting attempted")
#: Failures that only mean one after an attempt ("no luck" and "to no avail" are markers anywhere).
_NO_LUCK = (("no", "dice"), ("no", "use"), ("no", "good"), ("too", "late"))


def _attempted(before: list[_Clause]) -> bool:
    """Whether the character tried something earlier in the sentence ("I try to pick the lock, ...")."""
    return any(u.w in _ATTEMPT for c in before for u in c.toks) and not any(
        (u.w in _INTENT_V or u.w in _HOPE_LIKE) and u.w not in _ATTEMPT or u.w in _AUX_MODAL
        for c in before for u in c.toks[:3])


def _failure_coda(ct: list[_Tok], pred: _Pred | None, ctx: _Ctx) -> None:
    """"..., but he can't", "..., but no luck", "..., but it's too late": how the attempt ended.

    Only after an attempt: "I'd love to help, but I can't" is the character's refusal, not a result.
    """
    words = [u.w for u in ct]
    if pred is not None and pred.modal and pred.neg and pred.main is None and not pred.future \
            and all(w in ("not", "just", "still", "quite", "really", ".", "!") for w in words[pred.comp:]):
        ctx.add("outcome", ct[pred.subj_i].s, ct[min(pred.comp, len(ct)) - 1].e,
                "states the attempt failed; the dice decide that")
        return
    for q in range(len(words) - 1):
        if (words[q], words[q + 1]) in _NO_LUCK and not (q and words[q - 1] in ("not", "never")):
            ctx.add("outcome", ct[q].s, ct[q + 1].e, "states the attempt failed; the dice decide that")
            return


def _present_participle_past(w: str, tag: str | None, c: _Clause, main_subj: _Pred | None) -> bool:
    """An -ed form after a comma in a present-tense sentence is a participle ("determined not to
    flinch", "my eyes fixed on the judge"), not the past tense of a new action."""
    return tag == "past" and w.endswith("ed") and c.punct == "," and c.intro is None and main_subj is not None \
        and main_subj.tag in ("s", "base") and not main_subj.past


def hedged_outer(ci: int, clauses: list[_Clause]) -> bool:
    """Whether an earlier clause of the sentence opened a condition ("if ..., and they are")."""
    return any(c.intro in _HEDGE_INTRO for c in clauses[:ci])


def _effective_base(ct: list[_Tok], p: _Pred) -> str | None:
    """The verb that carries the meaning: "started to cry" -> cry."""
    if p.base in ("start", "begin", "continue", "keep", "stop") and p.comp < len(ct):
        k = p.comp + (1 if ct[p.comp].w == "to" else 0)
        if k < len(ct) and ct[k].w in _FORMS:
            return _FORMS[ct[k].w][0]
    return p.base


def _has_clause_after(ct: list[_Tok], k: int, ctx: _Ctx) -> bool:
    """Whether a (speech / thought) verb at ``k - 1`` takes a clause: "tell the sentry I'm...",
    or a request: "ask him to shut the mine down"."""
    verb = ct[k - 1].w if 0 < k <= len(ct) else ""
    if _FORMS.get(verb, ("",))[0] in _REQUEST:
        for j in range(k, min(len(ct) - 1, k + 5)):
            if ct[j].w == "to" and _FORMS.get(ct[j + 1].w, ("", ""))[1] == "base":
                return True
    for j in range(k, min(len(ct), k + 7)):
        w = ct[j].w
        if w in _SELF_PRON or w in ("he", "she", "they", "you", "that", "what", "where", "how", "why", "who",
                                    "whether", "if", "it"):
            if w != "it" or (j + 1 < len(ct) and _verbish(ct[j + 1], ct[j], False)):
                return True
        if (w in _DETS or _is_name(ct[j])) and j > k:
            cand = _subject(ct, j, ctx)
            if cand is not None and cand.v is not None:
                return True
    return False


def _infinitive_under_intent(ct: list[_Tok], v: int) -> bool:
    """"tries to disable the alarm": later bare verbs ("then open the vault") stay under the intent."""
    for j in range(v, min(len(ct), v + 4)):
        b = _FORMS.get(ct[j].w, (None,))[0]
        if b in _INTENT_V or ct[j].w in ("trying", "attempting", "best"):
            return True
        nxt = ct[j + 1].w if j + 1 < len(ct) else ""
        if (b == "go" and nxt == "for") or (b == "set" and nxt == "about") or (b == "throw" and nxt.endswith("self")):
            return True
    return False


_INVERSION = _ws("out in down up off through")


def _subjectless(ct, i, c, ci, ctx, hedged, vp_carry, main_subj, prev_self_base, inherited=False):
    """A clause without its own subject: the character's next verb, a participle, an imperative."""
    if i >= len(ct):
        return
    t = ct[i]
    info = _FORMS.get(t.w)
    if not hedged and t.w in _INVERSION and i + 2 < len(ct) and _FORMS.get(ct[i + 1].w, ("", ""))[1] in ("s", "past") \
            and (ct[i + 2].w in _DETS or ct[i + 2].cap):
        # "... and out drops a cold can of fizz", "in walks the captain": an event the DM narrates
        ctx.add("outcome", t.s, ct[i + 1].e, "narrates what happens in the scene; the DM decides that")
        return
    if t.w == "to" or info is None:
        return
    b, tag = info
    if hedged:
        return
    if tag == "ing" and t.w.endswith("ing"):
        _participle(ct, i, b, ctx)
        return
    if tag in ("pp",) or (tag == "past" and c.punct == "," and main_subj is not None and main_subj.v is None
                          and t.w not in _HAVE and (len(ct) - i <= 2 or ct[i + 1].w == "by")):
        return  # appositive participle ("the warlord, moved, releases")
    subj = main_subj
    if subj is None:
        if ci == 0 and tag == "base":
            return  # imperative
        return
    if subj.subj == "self":
        if vp_carry and tag == "base":
            if c.intro == "and" and b in _PERCEPT and b not in ("see", "check", "confirm", "verify") \
                    and _declarative_after(ct, i + 1, ctx):
                # "I try to scan the crate and learn it holds a live bomb": the found fact is asserted
                ctx.add("outcome", t.s, t.e, "states what the character discovers; the DM reveals that")
            return
        if ci == 0:
            return
        if _present_participle_past(t.w, tag, c, subj):
            return  # "I reach for one, determined not to flinch": an -ed participle, not a past tense
        p = _Pred()
        p.subj = "self"
        p.v = p.main = i
        p.base, p.tag = b, tag
        p.comp = i + 1
        if tag == "past" and b in _MENTAL:
            return
        if t.w in _BE:  # "... and is out of the window before the alarm sounds"
            p = _Pred()
            p.subj, p.plural = "self", True
            p = _verb_group(ct, i, p, ctx)
            if p is None or p.main is None:
                return
        _judge_self(ct, p, ctx, c, prev_self_base)
        return
    if subj.subj == "other" or (subj.subj or "").startswith("pron:"):
        if (c.intro in _BACKGROUND or c.intro in _HEDGE_INTRO or c.intro == "that") and not inherited:
            return
        if tag == "base" and not subj.plural and not (subj.subj or "").startswith("pron:"):
            return
        p = _Pred()
        p.subj = "other"
        p.animate = subj.animate
        p.indefinite = subj.indefinite
        p.instrument = subj.instrument
        p.plural = True  # the verb agrees with the subject found earlier: "the Raptor, ..., is about to"
        p = _verb_group(ct, i, p, ctx)
        if p is None or p.main is None and not (p.about or p.future):
            return
        p.plural = subj.plural
        if p.subj == "other" and (subj.subj or "").startswith("pron:") and _pron_is_self(subj.subj[5:], ctx, b):
            return
        _judge_other(ct, p, ctx, c, set(), None)


def _declarative_after(ct: list[_Tok], k: int, ctx: _Ctx) -> bool:
    """A statement follows at ``k`` ("it holds a bomb", "the left door is the safe one"), not a
    question ("whether it holds", "what it holds") or a plain object."""
    if k < len(ct) and ct[k].w == "that" and k + 1 < len(ct) and (ct[k + 1].w in _DETS or ct[k + 1].w in _OTHER_PRON
                                                                    or ct[k + 1].w in _MAYBE_PRON):
        k += 1
    if k >= len(ct) or ct[k].w in ("what", "where", "how", "why", "who", "whether", "if", "which", "when"):
        return False
    cand = _subject(ct, k, ctx)
    return cand is not None and cand.v is not None and cand.main is not None and cand.subj != "self" and not (
        cand.modal or cand.future or cand.about) and cand.tag in ("s", "past", None)


def _participle(ct: list[_Tok], i: int, b: str, ctx: _Ctx) -> None:
    """"..., knocking him out cold" / "Realizing the medic ...": a participle clause of result."""
    n = len(ct)
    t = ct[i]
    k = i + 1
    nxt = ct[k].w if k < n else ""
    if b == "have":
        # "Having already memorized the vault code, ...": a completed success taken for granted.
        while k < n and _is_adverb(ct[k].w):
            k += 1
        info = _FORMS.get(ct[k].w) if k < n else None
        if info and (info[0] in _ACHIEVE or info[0] in _PERCEPT or info[0] in _PART_RESULT or info[0] in _KNOW
                     or info[1] in ("pp", "past") and _done_on_object(ct, i, k + 1, info[0], ctx)):
            # "Having stitched the wound, I move on": the task is taken as done
            ctx.add("outcome", t.s, ct[k].e, "takes a success for granted; the dice decide that")
        return
    if _lifts(ct, b, k, ctx) or b in ("pocket", "snatch", "steal", "swipe") and k < n and not _obj_is_self(ct, k, ctx) \
            and ct[k].w in _DETS | _POSS_PRON:
        ctx.add("outcome", t.s, t.e, "states the theft succeeded; the dice decide that")  # "..., lifting his wallet"
        return
    if _arrives(ct, b, k, ctx):
        ctx.add("outcome", t.s, ct[min(_np_end(ct, k), n) - 1].e if k < n else t.e,
                "states the character arrived where the attempt was headed; the dice decide that")
        return  # "..., reaching the far side with scraped palms"
    if _FOUND_PHRASAL.get(b) == nxt:
        if k + 1 >= n or ct[k + 1].w in ("which", "where", "what", "who", "how", "whether", "if", "why", "when"):
            return  # "..., working out which way the creature went": an open question, still being worked on
        ctx.add("outcome", t.s, ct[k].e, "states what the character perceives or discovers; the DM reveals that")
        return
    if b == "buy" and any(u.w in _TIME_UNITS or u.w == "time" for u in ct[k:k + 5]):
        ctx.add("outcome", t.s, t.e, "a participle clause states the result of the action")
        return  # "..., buying us a few more minutes"
    if b == "know":
        # "knowing the crew will lay down their arms": certainty about another's future.
        for q in range(k + 1, n):
            if ct[q].w == "will" or (ct[q].w == "going" and q + 1 < n and ct[q + 1].w == "to"):
                if ct[q - 1].w not in _SELF_PRON:
                    ctx.add("future", t.s, ct[q].e, "states as certain what others will do")
                return
        return
    if b in _PERCEPT:
        if nxt in ("for", "if", "whether", "to", "around", "out", "about") or k >= n:
            return
        if b == "see" and nxt in ("what", "how", "if"):
            return
        ctx.add("outcome", t.s, t.e, "states what the character perceives or discovers; the DM reveals that")
        return
    if _change_verb(b) or b in _ACHIEVE or b in ("punch",):
        if k >= n or _obj_is_self(ct, k, ctx) or nxt in ("to", "for", "at", "toward", "towards", "into", "on", "back",
                                                        "behind", "down", "low", "up"):
            return
        if b == "punch" and nxt != "holes" or b == "catch" and _catch_idiom(ct, k) or _pinned_against(ct, b, k):
            return
        if b == "ease" and any(u.w in ("toward", "towards", "into", "through", "past", "along", "up", "down", "forward")
                               for u in ct[k:k + 5]):
            return  # "easing the shuttle toward the gap": a careful movement
        if nxt in ("short", "briefly", "once", "twice", "only", "now", "for", "just", "dead") or nxt in (
                "every", "each") and k + 1 < n and (ct[k + 1].w in _SPANS or ct[k + 1].w in ("few", "other", "time")):
            return  # "checking every few seconds"; "blinding every sentry" is a result
        if b == "leave" and _leave_state(ct, k) is not None and not _obj_is_self(ct, k, ctx):
            ctx.add("outcome", t.s, ct[_leave_state(ct, k)].e, "a participle clause states the result of the action")
            return
        if b in ("drop", "leave", "break", "force", "blow") and nxt in (
                "a", "an", "it", "the") and not _resultative_like(ct, k):
            _resultative(ct, i, k, b, ctx)
            return
        if b in ("hit", "strike", "land") and (nxt in _CONTROLS or (k + 1 < n and ct[k + 1].w in _CONTROLS)):
            return
        if b in ("kill",) and any(u.w in _CONTROLS or u.w in ("lights", "power") for u in ct[k:k + 4]):
            return
        ctx.add("outcome", t.s, t.e, "a participle clause states the result of the action")
        return
    if _OUT_VERB.match(t.w):
        ctx.add("outcome", t.s, t.e, "states the character outdoes the opposition")
        return
    _resultative(ct, i, i + 1, b, ctx)


def _leave_state(ct: list[_Tok], k: int) -> int | None:
    """"leaving the raiders blind", "leaves the boarders stranded", "leaving the missiles to
    detonate", "leaves the gang in his dust": leave + object + the state it ends in (index)."""
    end = _np_end(ct, k)
    while end < len(ct) - 1 and ct[end].w == "of":
        end = _np_end(ct, end + 1)  # "leaving a trail of stunned pirates slumped ..."
    if end <= k or end >= len(ct):
        return None
    r = ct[end].w
    r2 = ct[end + 1].w if end + 1 < len(ct) else ""
    if r == "to" and _FORMS.get(r2, ("", ""))[1] == "base":
        return end + 1
    if r == "behind" and ct[end - 1].w == "far":
        return end  # "leave the patrol boats far behind": outrun
    if r.endswith("ing") and _FORMS.get(r, ("", ""))[1] == "ing":
        return end  # "leaving the enforcers choking on her exhaust"
    if r == "in" and end + 2 < len(ct) and ct[end + 2].w in ("dust", "wake", "ruins", "pieces", "shambles", "tatters"):
        return end + 2
    if r in _PUNCT or r in _SPLIT or r in _PREPS:
        return None
    if r in _RESULT_ADJ or r in _EMOTION or r.endswith(("less", "ed")) or _FORMS.get(r, ("", ""))[1] in ("pp", "past"):
        return end
    if r in _FORMS and _FORMS[r][0] in _PART_RESULT:
        return end  # "leaving them blind": an adjective that is also a verb of result
    return None


def _resultative_like(ct: list[_Tok], k: int) -> bool:
    end = _np_end(ct, k)
    if end < len(ct) and ct[end].w in ("apart", "open", "down", "off", "loose", "in"):
        return True
    return end < len(ct) and (ct[end].w in _SPREAD or ct[end].w in ("unconscious", "cold", "dead", "flat", "out",
                                                                     "helpless", "shivering", "stranded", "reeling"))


def _embedded(ct: list[_Tok], k: int, ctx: _Ctx, hedged: bool) -> None:
    """A pronoun subject inside the clause ("the crate they found"): past narration by someone else."""
    if hedged:
        return
    for j in range(max(k, 1), len(ct) - 1):
        w = ct[j].w
        if any(u.w in ("why", "how", "what", "where", "when", "whether", "if") or _FORMS.get(u.w, ("",))[0] in
               _COMPLEMENT for u in ct[:j]):
            return
        if w in ("they", "he", "she") and not ct[j - 1].w in _COMPLEMENT | _PERCEPT and ct[j - 1].w not in _PREPS:
            info = _FORMS.get(ct[j + 1].w)
            prev_info = _FORMS.get(ct[j - 1].w)
            if info and info[1] == "past" and ct[j + 1].w not in ("was", "were", "had") and not (
                    prev_info and prev_info[1] in ("base", "s", "past")) and not _pron_is_self(w, ctx, info[0]):
                ctx.add("other_reaction" if info[0] in _REACTION else "outcome", ct[j].s, ct[j + 1].e,
                        "narrates what someone else did")
                return


def _dedupe(found: list[Violation]) -> list[Violation]:
    """Drop matches that lie inside an earlier, longer one (and exact repeats)."""
    kept: list[Violation] = []
    for v in found:
        if any(k["start"] <= v["start"] and v["end"] <= k["end"] for k in kept):
            continue
        kept = [k for k in kept if not (v["start"] <= k["start"] and k["end"] <= v["end"])]
        kept.append(v)
    return kept


# --------------------------------------------------------------------------- autocorrect support
#
# Autocorrect cuts whole segments; it keeps its own, simpler segmentation (sentences and
# hard boundaries) because a cut must leave readable text, not a parse.

_HARD_BOUNDARY = re.compile(
    r"[;:]|,\s*(?=and then\b)|\s(?=and then\b)|,\s*(?:(?:and|but|then|so|while|as)\b)?|"
    r"\s(?:and|but)\s(?=(?:then\s)?(?:the|a|an|he|she|it|they|we|his|her|their|its|my|our|everyone|nobody|both|all|"
    r"sparks|soon|after|[A-Z])\b)|\bso \w+ that\b",
)
_SENTENCE = re.compile(r"(?<!\bDr)(?<!\bMr)(?<!\bMrs)(?<!\bMs)(?<!\bLt)(?<!\bSt)(?<!\bSgt)(?<!\bCapt)[.!?]+")


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

def load_labelled(path: str | Path) -> list[dict]:
    """The rows of a labelled JSON-lines file, each ``{"text": str, "overreach": bool, ...}``.

    Raises :class:`~ttrpg.exceptions.ConfigError` naming the file and line when it is missing,
    unreadable, not JSON, or a row lacks a string ``text`` or a boolean ``overreach``.
    """
    from ttrpg.exceptions import ConfigError
    from ttrpg.jsonfile import loads

    hint = 'Each line must be a JSON object like {"text": "I try the door.", "overreach": false}.'
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"Cannot read the labelled lines {path}: {exc.__class__.__name__}: {exc}", hint=hint) from None
    rows = []
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            row = loads(line, what="line", source=str(n))
        except ConfigError as exc:  # syntax, nesting depth, huge numbers, duplicate keys: one line, no traceback
            raise ConfigError(f"{path}, line {n}: not JSON ({exc})", hint=exc.hint) from None
        if not (isinstance(row, dict) and isinstance(row.get("text"), str) and isinstance(row.get("overreach"), bool)):
            raise ConfigError(f'{path}, line {n}: needs a string "text" and a true/false "overreach".', hint=hint)
        rows.append(row)
    if not rows:
        raise ConfigError(f"{path} holds no labelled lines.", hint=hint)
    return rows


def evaluate(corpus: str | Path | Iterable[dict], flagged: Callable[[str], bool] | None = None) -> dict:
    """Precision, recall and the confusion counts of :func:`find_overreach` on a corpus.

    The corpus is a JSON-lines file (or its rows) ``{"text", "overreach": bool, "kind"}``; a
    text counts as flagged when at least one violation is found, or when ``flagged(text)`` says
    so (another checker, such as the rules and a referee together: :func:`ttrpg.ops.referee.evaluate_judge`).
    """
    rows = load_labelled(corpus) if isinstance(corpus, (str, Path)) else list(corpus)
    check = flagged or (lambda text: bool(find_overreach(text)))
    tp = fp = fn = tn = 0
    misses: list[dict] = []
    for row in rows:
        hit = bool(check(row["text"]))
        expected = bool(row["overreach"])
        if hit and expected:
            tp += 1
        elif hit:
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

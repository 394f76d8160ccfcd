"""Reading a model's replies back: the ``LABEL: value`` fields of each phase, and the plan
labels the table talk converges on.

The parsers (:func:`parse_intent`, :func:`parse_discussion`, :func:`parse_question`) never
raise: small real models ignore formats, and an unparseable reply must degrade into a usable
one, not into a lost turn.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

from ttrpg.exceptions import ConfigError
from ttrpg.jsonfile import loads
from ttrpg.prompts.builders import one_line

_LABEL_LINE = r"(?im)^[ \t>*_#`\-]*\**[ \t]*({labels})[ \t]*\**[ \t]*[:：=\-–][ \t]*\**"
_LABEL_ANY = r"\b({labels})\b\**[ \t]*[:：]"


def _labelled(text: str, labels: Sequence[str]) -> dict[str, str]:
    """Values of ``LABEL: value`` fields; a value runs until the next label.

    Labels count at the start of a line in any case (``Intent:``, ``**DIRECTIVE:**``) and,
    in upper case only, anywhere (a model that put all fields on one line); lower-case
    "intent:" inside a sentence stays text.
    """
    alt = "|".join(re.escape(label) for label in labels)
    found = list(re.finditer(_LABEL_LINE.format(labels=alt), text))
    found += re.finditer(_LABEL_ANY.format(labels=alt), text)
    matches: list[re.Match[str]] = []
    for m in sorted(found, key=lambda m: (m.start(1), -m.end())):
        if not matches or m.start(1) >= matches[-1].end():
            matches.append(m)
    out: dict[str, str] = {}
    for i, m in enumerate(matches):
        end = matches[i + 1].start() if i + 1 < len(matches) else len(text)
        key = m.group(1).upper()
        value = _clean_value(text[m.end():end])
        if key not in out or not out[key]:
            out[key] = value
    return out


def _clean_value(value: str) -> str:
    value = " ".join(value.replace("**", " ").split())
    value = value.strip(" \"'`*_<>[]")
    return value


def _sentences(text: str) -> list[str]:
    return [s.strip() for s in re.split(r"(?<=[.!?])\s+", " ".join(text.split())) if s.strip()]


def parse_intent(text: str | None) -> dict[str, str]:
    """``{"intent", "directive"}`` from a player-layer reply; never raises.

    Off-format replies fall back to: first sentence as the intent, the rest (or the same text)
    as the directive, so the character always gets something to act on.
    """
    raw = text if isinstance(text, str) else ""
    fields = _labelled(raw, ("INTENT", "DIRECTIVE"))
    intent, directive = fields.get("INTENT", ""), fields.get("DIRECTIVE", "")
    if not intent and not directive:
        sentences = _sentences(raw.strip().strip("\"'"))
        if not sentences:
            return {"intent": "", "directive": ""}
        intent = sentences[0]
        directive = " ".join(sentences[1:]) or sentences[0]
    return {"intent": intent or directive, "directive": directive or intent}


_AGREE = re.compile(r"\b(agree|agreed|yes|aye|support|okay|ok|fine|sounds good|let'?s do it|go with)\b", re.I)
_DISAGREE = re.compile(r"\b(disagree|no|nay|object|against|oppose|rather not|don'?t think so)\b", re.I)


def _vote_word(text: str) -> str | None:
    if _DISAGREE.search(text):
        return "disagree"
    if _AGREE.search(text):
        return "agree"
    return None


def parse_discussion(text: str | None) -> dict[str, str]:
    """``{"say", "proposal", "vote"}`` from a table-talk reply; never raises.

    ``vote`` is always ``"agree"`` or ``"disagree"``. Without a VOTE field it is read from the
    text; failing that, a player who backs no plan of their own counts as ``agree`` (nothing
    to hold out for) and one who proposed something counts as ``disagree`` until they vote.
    A label named in ``VOTE: agree <label>`` fills a missing PROPOSAL.
    """
    raw = text if isinstance(text, str) else ""
    fields = _labelled(raw, ("SAY", "PROPOSAL", "VOTE"))
    say, proposal, vote_text = fields.get("SAY", ""), fields.get("PROPOSAL", ""), fields.get("VOTE", "")
    if not fields:
        say = " ".join(raw.split()).strip("\"'")
    vote = _vote_word(vote_text) if vote_text else None
    if vote == "agree" and not proposal:
        proposal = re.sub(r"^agree[sd]?\b[\s:,\-–—]*((with|on|to)\b)?\s*", "", vote_text, flags=re.I).strip(" \"'.")
    if vote is None:
        vote = _vote_word(say) or ("disagree" if proposal else "agree")
    proposal = " ".join(proposal.split()[:12]).rstrip(".!")
    return {"say": say, "proposal": proposal, "vote": vote}


def parse_question(text: str | None) -> str:
    """The one question from a LASER FEELINGS reply; never raises (may return ``""``)."""
    raw = text if isinstance(text, str) else ""
    q = _labelled(raw, ("QUESTION",)).get("QUESTION", "")
    if not q:
        asked = [s for s in _sentences(raw) if s.endswith("?")]
        q = asked[0] if asked else (_sentences(raw)[0] if _sentences(raw) else "")
    q = q.strip(" \"'")
    if q and not q.endswith("?"):
        q = q.rstrip(".!") + "?"
    return q


def clean_character_text(text: str | None, name: str = "") -> str:
    """A character reply without the wrappers weak models add (``Zix:``, ``ACTION:``, quotes)."""
    raw = " ".join((text if isinstance(text, str) else "").split())
    prefixes = ["ACTION", "REACTION", "RESPONSE", "REPLY", "ANSWER"] + ([re.escape(name)] if name else [])
    raw = re.sub(r"^\**(%s)\**\s*:\s*" % "|".join(prefixes), "", raw, flags=re.I)
    if len(raw) >= 2 and raw[0] == raw[-1] and raw[0] in "\"'":
        raw = raw[1:-1].strip()
    return raw


def plan_label_key(label: str | None) -> str:
    """Normalised plan label: case, punctuation and articles ignored, so "Scan the freighter!"
    and "scan freighter" back the same plan."""
    words = re.findall(r"[a-z0-9']+", (label or "").lower())
    return " ".join(w for w in words if w not in {"the", "a", "an", "its", "their", "our"})


def consensus_label(latest: Sequence[Mapping[str, Any]]) -> str | None:
    """The agreed plan label for one round of parsed replies (one per player), or None.

    Consensus when every player backs the same label, or when every player votes ``agree``
    and at least one label was proposed (the most-backed label, earliest first on a tie).
    """
    if not latest:
        return None
    labels = [one_line(d.get("proposal")) for d in latest]
    keys = [plan_label_key(x) for x in labels]
    if all(keys) and len(set(keys)) == 1:
        return labels[0]
    if all(one_line(d.get("vote")).lower() == "agree" for d in latest) and any(keys):
        counts = Counter(k for k in keys if k)
        best = max(counts.values())
        for label, key in zip(labels, keys):
            if key and counts[key] == best:
                return label
    return None


# --------------------------------------------------------------------------- context window


VERDICT_KINDS = ("outcome", "other_reaction", "future")
_JSON_OBJECT = re.compile(r"\{[^{}]{0,2000}\}")
_VERDICT_FIELD = re.compile(r'"?overreach"?\s*[:=]\s*"?(true|false|yes|no)\b', re.I)
_VERDICT_WORD = re.compile(r"^\W{0,8}(yes|no|true|false|overreach(?:es)?|clean)\b(?![\"']?\s*[:=])", re.I)
_TRUTH = {"true": True, "yes": True, "overreach": True, "overreaches": True,
          "false": False, "no": False, "clean": False}


def _truth(value: Any) -> bool | None:
    if isinstance(value, bool):
        return value
    if isinstance(value, str):
        return _TRUTH.get(value.strip().lower())
    return None


def _verdict(flag: bool, kind: Any = None, reason: Any = None) -> dict[str, Any]:
    if not flag:
        kind = None
    elif kind not in VERDICT_KINDS:
        kind = "outcome"
    return {"overreach": flag, "kind": kind,
            "reason": one_line(reason)[:200] if isinstance(reason, str) else ""}


def parse_verdict(text: str | None) -> dict[str, Any] | None:
    """The referee's verdict ``{"overreach": bool, "kind": str | None, "reason": str}``, or None.

    Reads the first JSON object with an ``overreach`` field, else an ``overreach: true``
    written without JSON, else a reply opening with yes / no / clean / overreach. Anything
    else (prose, a refusal, a cut-off object) is None: the rules' verdict stands. Never raises.

    >>> parse_verdict('Sure! {"overreach": true, "kind": "outcome", "reason": "the door opens"}')
    {'overreach': True, 'kind': 'outcome', 'reason': 'the door opens'}
    """
    if not isinstance(text, str):
        return None
    head = text[:4000]
    for m in _JSON_OBJECT.finditer(head):
        try:
            obj = loads(m.group(0), what="verdict", source="")
        except ConfigError:
            continue
        if isinstance(obj, dict) and "overreach" in obj:
            flag = _truth(obj["overreach"])
            if flag is not None:
                return _verdict(flag, obj.get("kind"), obj.get("reason"))
    m = _VERDICT_FIELD.search(head) or _VERDICT_WORD.search(head)
    if m:
        return _verdict(_TRUTH[m.group(1).lower()])
    return None

"""Party consensus from out-of-character table talk.

Each discussion round every player says something, names the plan they back (a short
label) and votes ``agree`` or ``disagree``. A player supports the round's leading plan (the
label most players back) when they back that label and did not vote ``disagree``. A round is:

* **unanimous**: everyone supports the leading plan;
* **majority**: more than half do (the dissenters are noted);
* **conflicted**: otherwise, and the table talks again.

Agreeing in words while each backing a different plan is not consensus: the labels decide.

After :data:`MAX_ROUNDS` conflicted rounds (or :data:`ttrpg.defaults.DISCUSSION_MAX_S`), a
vote decides: the plan most players last proposed wins.
"""

from __future__ import annotations

from collections import Counter

from ttrpg import defaults
from ttrpg.prompts.parsers import plan_label_key

MAX_ROUNDS = defaults.DISCUSSION_MAX_ROUNDS
MAX_SECONDS = defaults.DISCUSSION_MAX_S


def _label(plan: str) -> str:
    return plan_label_key(plan or "")


def _plan(entries: list[dict]) -> str:
    labels = [_label(e.get("proposal", "")) for e in entries if e.get("proposal")]
    if not labels:
        return ""
    best, _ = Counter(labels).most_common(1)[0]
    return next(e["proposal"] for e in entries if _label(e.get("proposal", "")) == best)


def detect(entries: list[dict], round_no: int) -> dict:
    """Consensus state of one round's entries (``{"player", "proposal", "vote"}``)."""
    n = len(entries)
    plan = _plan(entries)
    key = _label(plan)
    agree = [e["player"] for e in entries
             if _label(e.get("proposal", "")) == key and not str(e.get("vote", "")).lower().startswith("disagree")]
    dissent = [e["player"] for e in entries if e["player"] not in agree]
    if n and len(agree) == n:
        state = "unanimous"
    elif len(agree) * 2 > n:
        state = "majority"
    else:
        state = "conflicted"
    return {"state": state, "plan": plan, "dissent": dissent, "rounds": round_no,
            "agree": len(agree), "players": n}


def vote(talk: list[dict]) -> dict:
    """Decide by vote after the discussion ran out: each player's last proposal counts once."""
    last: dict[str, dict] = {}
    for entry in talk:
        last[entry["player"]] = entry
    counts = Counter(_label(e.get("proposal", "")) for e in last.values())
    winner, votes = counts.most_common(1)[0] if counts else ("", 0)
    plan = next((e["proposal"] for e in last.values() if _label(e.get("proposal", "")) == winner), "")
    dissent = [pid for pid, e in last.items() if _label(e.get("proposal", "")) != winner]
    return {"state": "conflicted", "plan": plan, "dissent": dissent, "decided_by": "vote", "votes": votes,
            "players": len(last), "rounds": max((e["round"] for e in talk), default=0)}

"""A second opinion on narrative overreach: the session's own model referees each action.

Why: the rules of :mod:`ttrpg.game.validation` read sentence structure; they are fast and
deterministic, but on lines nobody tuned them for they score about 0.90 precision and 0.79
recall (``tests/data/overreach/fresh5.jsonl``). The labels of those lines are not the limit: two
more careful readers, labelling blind, agreed with them on 97-99 % of the lines. Telling an
attempt from a narrated result is reading for meaning, which a capable model does: with a
capable model's recorded replies to this referee's prompt, rules and referee together score
0.97 / 0.98 on the same lines (``tests/data/overreach/referee/``).

How: with ``TTRPG_OVERREACH_JUDGE=1`` (never for the offline model) the validation phase
asks the player's model one more question per action, :func:`ttrpg.prompts.builders.overreach_judge_messages`,
as an RQ job like every other model call, and :func:`decide` combines the two verdicts:

* the referee's verdict, when its reply can be read
  (:func:`ttrpg.prompts.parsers.parse_verdict`), is the verdict. The rules' findings are kept
  when both flag the line (their word spans let :func:`~ttrpg.game.validation.autocorrect`
  cut the result after the last attempt); a line only the referee flags gets its reason,
  and goes to the DM for review if it still overreaches after the last attempt;
* an unreadable reply, or a referee job that failed, leaves the rules' verdict, and the
  log says which one decided (``overreach_judged`` events).

A weak model is a poor referee: SmolLM2-135M, the small real model of the tests, gave a
readable verdict on 85 of the 425 held-out lines, right on 40 of them, and with it rules and
referee scored 0.80 / 0.72, below the rules alone. So it stays off by default: turn it on with
a model that follows instructions well, and measure that model on labelled lines first with
``ttrpg overreach score FILE --judge`` (:mod:`ttrpg.ops.referee`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ttrpg.game.validation import Violation

RULES, REFEREE = "rules", "referee"


def decide(found: Sequence[Violation], verdict: dict[str, Any] | None) -> tuple[list[Violation], str]:
    """The findings that count, and who decided: ``(violations, "rules" | "referee")``.

    >>> decide([], {"overreach": True, "kind": "other_reaction", "reason": "the guard nods"})
    ([{'kind': 'other_reaction', 'match': '', 'start': 0, 'end': 0, 'reason': 'the guard nods'}], 'referee')
    """
    if verdict is None:
        return list(found), RULES
    if not verdict["overreach"]:
        return [], REFEREE
    if found:
        return list(found), REFEREE
    return [Violation(kind=verdict["kind"] or "outcome", match="", start=0, end=0,
                      reason=verdict["reason"] or "the referee read a result the GM and the dice decide")], REFEREE


def describe(v: Violation) -> str:
    """One violation as the log and the retry prompt show it: ``kind: matched words`` (or the
    referee's reason, when no words were matched)."""
    return f"{v['kind']}: {v['match'] or v['reason']}"

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
``ttrpg overreach score FILE --judge``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from ttrpg import defaults
from ttrpg.game.validation import Violation, evaluate, find_overreach, load_labelled
from ttrpg.prompts.builders import overreach_judge_messages
from ttrpg.prompts.parsers import parse_verdict

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


def referee(cfg: dict, *, api_key: str | None = None, narration: str = "",
            character_name: str = "the character") -> Callable[[str], dict[str, Any]]:
    """A checker that asks the model of ``cfg`` directly (no RQ) and combines its verdict with
    the rules: ``check(text) -> {"flagged", "decided_by", "verdict", "reply", "rules"}``.

    For measuring a model as a referee on labelled lines; sessions ask through their workers.
    A model call that fails raises (:class:`~ttrpg.exceptions.LLMError`): a measurement with
    holes in it would not say what it claims.
    """
    from ttrpg.llm.client import complete  # openai is loaded only by those who measure

    def check(text: str) -> dict[str, Any]:
        found = find_overreach(text)
        reply = complete(cfg, overreach_judge_messages(text, narration, character_name), api_key=api_key,
                         max_tokens=defaults.JUDGE_MAX_TOKENS)["text"]
        verdict = parse_verdict(reply)
        violations, decided_by = decide(found, verdict)
        return {"flagged": bool(violations), "decided_by": decided_by, "verdict": verdict, "reply": reply,
                "rules": bool(found)}

    return check


def evaluate_judge(corpus_path: str | Path, cfg: dict, *, api_key: str | None = None,
                   limit: int | None = None, on_line: Callable[[int, dict], None] | None = None) -> dict:
    """Precision and recall of the rules with the referee on a labelled corpus (see
    :func:`ttrpg.game.validation.evaluate`), and how often the referee's reply was readable.

    ``limit`` scores the first lines only; ``on_line(i, outcome)`` sees each line's outcome.
    Returns the figures of ``evaluate`` plus ``lines``, ``unreadable`` (replies the rules had to
    decide) and ``rules`` (the rules alone on the same lines).
    """
    rows = load_labelled(corpus_path)[:limit or None]
    check = referee(cfg, api_key=api_key)
    outcomes: dict[str, dict] = {}

    def flagged(text: str) -> bool:
        outcome = outcomes.get(text) or check(text)
        outcomes[text] = outcome
        if on_line is not None:
            on_line(len(outcomes), outcome)
        return outcome["flagged"]

    combined = evaluate(rows, flagged)
    rules = evaluate(rows, lambda text: outcomes[text]["rules"])
    combined.update(lines=len(rows), unreadable=sum(1 for o in outcomes.values() if o["decided_by"] == RULES),
                    rules={k: rules[k] for k in ("precision", "recall", "tp", "fp", "fn", "tn")})
    return combined

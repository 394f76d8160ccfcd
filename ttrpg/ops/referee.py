"""Measuring a model as overreach referee on labelled lines: ``ttrpg overreach score --judge``.

Asks the model directly through :func:`ttrpg.llm.client.complete` (no RQ, no session), with the
same prompt, parser and combination a session uses (:mod:`ttrpg.game.judge`), so a researcher
can see what a model adds to the rules before a study. Example::

    cfg = make_config("gpt-4o-mini", settings=get_settings(), overreach_judge=True)
    figures = evaluate_judge("tests/data/overreach/fresh5.jsonl", cfg, api_key=settings.openai_api_key)
    figures["precision"], figures["recall"], figures["rules"]["recall"], figures["unreadable"]
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from ttrpg import defaults
from ttrpg.game.judge import RULES, decide
from ttrpg.game.validation import evaluate, find_overreach, load_labelled
from ttrpg.prompts.builders import overreach_judge_messages
from ttrpg.prompts.parsers import parse_verdict


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

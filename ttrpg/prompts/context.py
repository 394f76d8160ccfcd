"""Fitting a prompt into a model's context window, and the token estimates that measure it.

Estimates, not a tokenizer: about four characters per token for English and BPE tokenizers,
which is what every compatible server is close to, without loading one tokenizer per model.
:func:`fit_to_context` reads the ``## Section`` blocks that :mod:`ttrpg.prompts.builders`
writes, and cuts the least important first.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

#: Sections whose oldest lines :func:`fit_to_context` may fold into an "Earlier: ..." line.
_FOLDABLE = ("Recent events", "What you remember", "Table talk")
#: Sections :func:`fit_to_context` never cuts (the latest narration, the task itself).
_PROTECTED = ("GM narration", "Directive from", "What happened", "Your reply", "The roll")


def estimate_text_tokens(text: str) -> int:
    """Rough token count of a text: about four characters per token (English, BPE tokenizers)."""
    return (len(text or "") + 3) // 4


def estimate_tokens(messages: Sequence[Mapping[str, Any]]) -> int:
    """Rough token count of a chat request (content plus a few tokens of framing per message)."""
    return sum(estimate_text_tokens(_content(m)) + 4 for m in messages) + 2


def _content(message: Mapping[str, Any]) -> str:
    content = message.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(str(p.get("text", "")) for p in content if isinstance(p, Mapping))
    return "" if content is None else str(content)


_HEADER = re.compile(r"(?m)^## (.+)$")
_ITEM_CHARS = 300
_SUMMARY_CHARS = 300


def split_sections(content: str) -> list[list[str]]:
    """``[[title, body], ...]`` of a user message built here; text before the first ``## `` header
    has title ``""``. Used by :func:`fit_to_context` and by the offline model to read prompts."""
    parts: list[list[str]] = []
    matches = list(_HEADER.finditer(content))
    if not matches:
        return [["", content]]
    if matches[0].start() > 0:
        parts.append(["", content[:matches[0].start()].rstrip("\n")])
    for i, m in enumerate(matches):
        end = matches[i + 1].start() if i + 1 < len(matches) else len(content)
        parts.append([m.group(1), content[m.end():end].strip("\n")])
    return parts


def _join_sections(parts: list[list[str]]) -> str:
    return "\n\n".join((f"## {t}\n{b}" if t else b) for t, b in parts)


def _gist(line: str, words: int = 10) -> str:
    w = line.split()
    return " ".join(w[:words]) + ("..." if len(w) > words else "")


def _fold_oldest(body: str, keep: int) -> str | None:
    """Fold one more of the oldest ``- `` lines into the ``- Earlier: ...`` summary line.

    Returns the new body, or None when only ``keep`` ordinary lines are left.
    """
    lines = body.split("\n")
    summary = lines[0][len("- Earlier: "):] if lines and lines[0].startswith("- Earlier: ") else None
    items = lines[1:] if summary is not None else lines
    items = [i for i in items if i.strip()]
    if len(items) <= keep:
        return None
    oldest = items.pop(0)
    gist = _gist(oldest[2:] if oldest.startswith("- ") else oldest)
    merged = f"{summary}; {gist}" if summary else gist
    if len(merged) > _SUMMARY_CHARS:  # keep how it began and what was folded last
        head = _SUMMARY_CHARS // 3
        tail = merged[-(_SUMMARY_CHARS - head - 5):]
        merged = merged[:head].rsplit(" ", 1)[0] + " ... " + tail.split(" ", 1)[-1]
    return "\n".join([f"- Earlier: {merged}"] + items)


def _truncate_items(body: str, limit: int) -> str:
    out = []
    for line in body.split("\n"):
        out.append(line if len(line) <= limit else line[: limit - 3].rstrip() + "...")
    return "\n".join(out)


def fit_to_context(messages: Sequence[Mapping[str, Any]], context_window: int,
                   reserve: int) -> tuple[list[dict[str, str]], bool]:
    """Shrink a request so that it fits the model's context window; returns ``(messages, shrank)``.

    The budget is 80 % of ``context_window`` minus ``reserve`` (the tokens kept for the reply):
    token counts are estimates (:func:`estimate_tokens`), and a 400 from the server would cost
    the turn, so we aim well under the limit. When over budget, in this order, until it fits:

    1. drop older turns of a multi-message chat (system messages and the last message stay);
    2. fold the oldest lines of "Recent events", then memories, then table talk, into one
       ``- Earlier: ...`` summary line (the last two lines of each stay);
    3. cut long lines in the unprotected sections to 300 characters;
    4. fold those sections down to their last line;
    5. as a last resort cut the start of the narration (its end is the latest).

    The system prompt (the character sheet and the rules of the task) is never touched. The
    input is not modified.
    """
    msgs: list[dict[str, str]] = [{"role": str(m.get("role", "user")), "content": _content(m)} for m in messages]
    budget = max(int(context_window * 0.8) - max(0, reserve), context_window // 4, 64)
    if estimate_tokens(msgs) <= budget:
        return msgs, False

    def fits() -> bool:
        return estimate_tokens(msgs) <= budget

    # 1. older turns of a longer chat
    while not fits():
        middle = [i for i, m in enumerate(msgs[:-1]) if m["role"] != "system"]
        if not middle:
            break
        msgs.pop(middle[0])

    target = max((i for i, m in enumerate(msgs) if m["role"] != "system"), default=None)
    if target is None:
        return msgs, True
    parts = split_sections(msgs[target]["content"])

    def commit() -> None:
        msgs[target]["content"] = _join_sections(parts)

    def titled(prefixes: Sequence[str]) -> list[list[str]]:
        return [p for p in parts if p[0].startswith(tuple(prefixes))]

    # 2. fold oldest lines of the foldable sections, history first
    for prefix in _FOLDABLE:
        for part in titled([prefix]):
            while not fits():
                folded = _fold_oldest(part[1], keep=2)
                if folded is None:
                    break
                part[1] = folded
                commit()
    # 3. cut long lines outside protected sections
    if not fits():
        for part in parts:
            if part[0] and not part[0].startswith(_PROTECTED):
                part[1] = _truncate_items(part[1], _ITEM_CHARS)
        commit()
    # 4. fold down to the last line
    for prefix in _FOLDABLE:
        for part in titled([prefix]):
            while not fits():
                folded = _fold_oldest(part[1], keep=1)
                if folded is None:
                    break
                part[1] = folded
                commit()
    # 5. the narration keeps its end
    if not fits():
        for part in titled(["GM narration"]):
            excess_chars = (estimate_tokens(msgs) - budget) * 4 + 16
            if excess_chars < len(part[1]):
                part[1] = "..." + part[1][excess_chars + 3:]
            commit()
    return msgs, True

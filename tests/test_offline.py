"""ttrpg.offline: the offline model, always exercised through the real openai SDK.

Only the transport is ours; client, request building, error classes and parsing are the
SDK's, exactly as in real play.
"""

from __future__ import annotations

import json
import time

import httpx
import openai
import pytest

from tests.test_prompts import HISTORY, NARRATION, REX, SHIP, WHISPER, ZIX
from ttrpg.llm.client import OFFLINE_BASE_URL, complete
from ttrpg.llm.config import LLMConfig, make_config
from ttrpg.offline import hashing, reader, voice
from ttrpg.offline.transport import OfflineTransport
from ttrpg.prompts.builders import (
    character_action_messages,
    character_reaction_messages,
    discussion_messages,
    laser_feelings_question_messages,
    player_intent_messages,
)
from ttrpg.prompts.parsers import (
    consensus_label,
    parse_discussion,
    parse_intent,
    parse_question,
)


def _cfg(**kw) -> LLMConfig:
    kw.setdefault("offline", True)
    kw.setdefault("backoff_base", 0.001)
    return make_config(**kw)


def _raw_client(cfg) -> tuple[openai.OpenAI, OfflineTransport]:
    """An SDK client without our retries, to see exactly what the transport answers."""
    transport = OfflineTransport(cfg)
    client = openai.OpenAI(api_key="x", base_url=OFFLINE_BASE_URL, max_retries=0,
                           http_client=httpx.Client(transport=transport))
    return client, transport


def _action(entry, directive="", seed=0, attempt=1, faults=None):
    msgs = character_action_messages(entry, SHIP, NARRATION, directive, [], HISTORY, attempt,
                                             ["it narrated an outcome"] if attempt > 1 else [])
    return complete(_cfg(seed=seed, faults=faults or {}), msgs)["text"]


def test_reply_is_openai_shaped_json():
    transport = OfflineTransport(_cfg())
    msgs = character_action_messages(ZIX, SHIP, NARRATION, "Scan the freighter", [], [], 1, [])
    request = httpx.Request("POST", OFFLINE_BASE_URL + "/chat/completions",
                            json={"model": "anything", "messages": msgs, "max_tokens": 300})
    response = transport.handle_request(request)
    assert response.status_code == 200
    body = json.loads(response.read())
    assert body["object"] == "chat.completion" and body["model"] == "ttrpg-offline"
    assert body["id"].startswith("chatcmpl-") and isinstance(body["created"], int)
    choice = body["choices"][0]
    assert choice["message"]["role"] == "assistant" and choice["message"]["content"]
    assert choice["finish_reason"] == "stop"
    usage = body["usage"]
    assert usage["prompt_tokens"] > 50 and usage["completion_tokens"] > 3
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]


def test_models_endpoint_through_the_sdk():
    client, _ = _raw_client(_cfg())
    assert [m.id for m in client.models.list()] == ["ttrpg-offline"]


def test_same_seed_same_text_other_seed_other_text():
    a = [_action(ZIX, seed=s) for s in range(6)]
    b = [_action(ZIX, seed=s) for s in range(6)]
    assert a == b
    assert len(set(a)) > 1, "the seed must vary the words"


def test_replies_use_character_names_and_narration_nouns():
    for entry in (ZIX, REX):
        name = entry["character"]["name"]
        for seed in range(5):
            text = _action(entry, seed=seed)
            assert name in text
            assert any(noun in text for noun in ("Galvin", "derelict freighter", "distress beacon",
                                                 "cargo bay", "smuggler", "open channel")), text


def test_different_characters_have_different_voices():
    """Same prompt, same seed, two characters: different words, in each one's register."""
    lasers_words = voice._LASERS["manner"] + voice._LASERS["openers"] + voice._LASERS["try"][2:]
    feelings_words = voice._FEELINGS["manner"] + voice._FEELINGS["openers"] + voice._FEELINGS["try"][1:]
    zix = [_action(ZIX, seed=s) for s in range(10)]
    rex = [_action(REX, seed=s) for s in range(10)]
    assert all(z != r for z, r in zip(zix, rex))
    assert sum(any(w in t for w in lasers_words) for t in zix) >= 7
    assert sum(any(w in t for w in feelings_words) for t in rex) >= 7
    assert not any(w in t for t in zix for w in voice._FEELINGS["manner"])
    assert not any(w in t for t in rex for w in voice._LASERS["manner"])
    # speech patterns: Zix's catchphrase, Rex's way of addressing people, their mannerisms
    assert any("Fascinating." in t for t in zix)
    assert any("Nobody flies like Rex!" in t or ", pal" in t for t in rex)
    assert any("tilts her head" in t for t in zix) and any("spins a coin" in t for t in rex)


def test_action_follows_the_directive_in_first_person():
    text = _action(ZIX, directive="Scan the derelict freighter with your quantum scanner for life signs.")
    assert "I " in text and "scan the derelict freighter with my quantum scanner for life signs" in text
    third = dict(ZIX, character=dict(ZIX["character"], speech_patterns=["Refers to herself in the third person"]))
    text = _action(third, directive="Scan the derelict freighter with your quantum scanner.")
    assert "Zix tries to" in text or "Zix attempts to" in text or "Zix carefully tries to" in text \
        or "Zix sets about" in text, text
    assert "with their quantum scanner" in text


def test_player_layer_replies_parse_and_keep_secrets():
    for entry in (ZIX, REX):
        for seed in range(4):
            msgs = player_intent_messages(entry, SHIP, NARRATION, ["Galvin cheated us once"], [WHISPER],
                                                  HISTORY, [])
            text = complete(_cfg(seed=seed), msgs)["text"]
            parsed = parse_intent(text)
            assert text.startswith("INTENT: ") and "\nDIRECTIVE: " in text
            assert parsed["intent"] and parsed["directive"]
            assert entry["character"]["name"] in parsed["intent"]
            assert "reactor" not in text.lower(), "a whisper must not be repeated, not even in the intent"
            # the directive then drives the character, whose prompt holds no secret
            action_msgs = character_action_messages(entry, SHIP, NARRATION, parsed["directive"], [],
                                                            HISTORY, 1, [])
            assert WHISPER not in "".join(m["content"] for m in action_msgs)
            action = complete(_cfg(seed=seed), action_msgs)["text"]
            assert parsed["directive"].rstrip(".")[1:20].lower() in action.lower()


def test_reaction_and_question():
    for seed in range(4):
        outcome = "The scan works, but the freighter's alarms start blaring and Galvin notices you."
        msgs = character_reaction_messages(REX, SHIP, NARRATION, outcome, [], HISTORY)
        text = complete(_cfg(seed=seed), msgs)["text"]
        assert "Rex Calloway" in text and " I try" not in text and " I attempt" not in text
        q = parse_question(complete(_cfg(seed=seed), laser_feelings_question_messages(
            ZIX, SHIP, NARRATION, "Zix rolled LASER FEELINGS while scanning the derelict freighter"))["text"])
        assert q.endswith("?") and len(q) > 10


@pytest.mark.parametrize("named", [True, False], ids=["by-name", "by-seat"])
def test_offline_table_reaches_consensus(named):
    """Offline players converge within the discussion round limit for most seeds, whether the
    table talk names speakers or only gives their player ids (as the turn phases do)."""
    reached = 0
    for seed in range(10):
        talk: list[dict] = []
        for round_no in range(1, 6):
            latest = []
            for entry in (ZIX, REX):
                msgs = discussion_messages(entry, SHIP, NARRATION, [], [], HISTORY, talk, round_no)
                parsed = parse_discussion(complete(_cfg(seed=seed), msgs)["text"])
                assert parsed["proposal"] and parsed["say"]
                parsed.update(round=round_no, player=entry["id"])
                if named:
                    parsed["name"] = entry["player"]["name"]
                talk.append(parsed)
                latest.append(parsed)
            if consensus_label(latest):
                reached += 1
                break
    assert reached >= 8


def test_transient_faults_through_the_sdk():
    msgs = [{"role": "user", "content": "hello"}]
    client, _ = _raw_client(_cfg(faults={"rate_limit": 1.0}))
    with pytest.raises(openai.RateLimitError) as err:
        client.chat.completions.create(model="m", messages=msgs)
    assert err.value.response.headers["retry-after"] == "1"
    client, _ = _raw_client(_cfg(faults={"server_error": 1.0}))
    with pytest.raises(openai.InternalServerError) as err:
        client.chat.completions.create(model="m", messages=msgs)
    assert err.value.status_code in (500, 502, 503)
    client, _ = _raw_client(_cfg(faults={"timeout": 1.0}))
    with pytest.raises(openai.APITimeoutError):
        client.chat.completions.create(model="m", messages=msgs)


def test_faults_are_seeded_per_attempt_and_reproducible():
    msgs = character_action_messages(ZIX, SHIP, NARRATION, "Scan it", [], [], 1, [])
    cfg = _cfg(seed=3, faults={"rate_limit": 0.3, "server_error": 0.3, "timeout": 0.2})

    def run() -> list:
        client, transport = _raw_client(cfg)
        for _ in range(12):
            try:
                client.chat.completions.create(model="m", messages=msgs)
            except (openai.RateLimitError, openai.InternalServerError, openai.APITimeoutError):
                pass
        return transport.calls

    first, second = run(), run()
    assert first == second
    assert [c["attempt_index"] for c in first] == list(range(12))
    kinds = {c["fault"] for c in first}
    assert None in kinds and len(kinds) >= 3, "a mix of failures and successes"
    other = _cfg(seed=4, faults=cfg["faults"])
    client, transport = _raw_client(other)
    for _ in range(12):
        try:
            client.chat.completions.create(model="m", messages=msgs)
        except openai.APIError:
            pass
    assert [c["fault"] for c in transport.calls] != [c["fault"] for c in first]


def test_overreach_narrates_an_outcome_and_stricter_attempts_come_back_cleaner():
    markers = ("falls unconscious", "successfully", "is destroyed", "succeeds", "works perfectly")
    first = [_action(ZIX, seed=s, faults={"overreach": 1.0}) for s in range(8)]
    assert all(any(m in t for m in markers) for t in first)
    third = [_action(ZIX, seed=s, attempt=3, faults={"overreach": 1.0}) for s in range(16)]
    clean = [t for t in third if not any(m in t for m in markers)]
    assert clean and len(clean) < len(third), "attempt 3 halves the rate twice: some clean, some not"
    # overreach only touches character actions
    msgs = player_intent_messages(ZIX, SHIP, NARRATION, [], [], [], [])
    text = complete(_cfg(faults={"overreach": 1.0}), msgs)["text"]
    assert not any(m in text for m in markers)
    clean_text = _action(ZIX, seed=0)
    assert not any(m in clean_text for m in markers)


def test_latency_is_honoured():
    msgs = [{"role": "user", "content": "hello"}]
    started = time.monotonic()
    reply = complete(_cfg(latency_ms=150), msgs)
    assert time.monotonic() - started >= 0.15
    assert reply["latency_ms"] >= 150


def test_unknown_fault_kind_is_refused():
    with pytest.raises(ValueError):
        OfflineTransport({"faults": {"meteor": 0.5}})
    with pytest.raises(ValueError):
        make_config(offline=True, faults={"rate_limit": 2})


def test_context_window_is_enforced_like_llama_cpp():
    client, _ = _raw_client(_cfg(context_window=50))
    msgs = character_action_messages(ZIX, SHIP, NARRATION, "Scan it", [], [], 1, [])
    with pytest.raises(openai.BadRequestError) as err:
        client.chat.completions.create(model="m", messages=msgs)
    assert err.value.body["type"] == "exceed_context_size_error"


def test_narration_nouns():
    names, things = reader.narration_nouns(NARRATION, exclude=["The Raptor", "Zix"])
    assert names == ["Galvin"]
    assert things[:3] == ["the derelict freighter", "the distress beacon", "the cargo bay"]
    assert "the smuggler" in things
    assert not any("Raptor" in t for t in names + things)
    assert reader.narration_nouns("") == ([], [])


def test_foreign_prompts_still_get_an_answer():
    """A prompt not built by ttrpg.prompts gets a character-style action, not an error."""
    reply = complete(_cfg(), [{"role": "user", "content": "Captain Mora points at the broken airlock."}])
    assert "the broken airlock" in reply["text"] or "Mora" in reply["text"], reply["text"]


def test_stable_hash_is_stable():
    assert hashing.stable_hash("a", 1, [2, 3]) == hashing.stable_hash("a", 1, [2, 3])
    assert hashing.stable_hash("a", 1) != hashing.stable_hash("a", 2)
    assert hashing.stable_hash("x") == 0xCD65EA2C2AD99E94  # sha256 of '["x"]', first 8 bytes

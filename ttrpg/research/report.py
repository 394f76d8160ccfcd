"""The numbers of a session, from its events alone: per phase the machine time and the DM's
time to answer, model calls and latency, retries, validation, tokens per turn, consensus, dice
(:func:`report`); the same for people as (label, value) pairs and table rows, and as a
self-contained HTML page with SVG charts (:func:`report_html`)."""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from datetime import datetime

from ttrpg.console import one_line
from ttrpg.research.charts import svg_bar_chart
from ttrpg.research.export import session_events
from ttrpg.research.schema import PHASES
from ttrpg.research.stats import percentile
from ttrpg.research.transcript import html_text
from ttrpg.vocabulary import QUESTIONS, phase_label


def _ts(e: dict) -> datetime:
    return datetime.fromisoformat(e["timestamp"])


def _counts(values, sort: bool = False) -> dict[str, int]:
    """How many of each value, keyed by the value as text (JSON object keys are strings)."""
    counts = Counter(values)
    items = sorted(counts.items(), key=lambda kv: (str(type(kv[0])), kv[0])) if sort else counts.items()
    return {str(k): n for k, n in items}


def _r(x, nd=1):
    return None if x is None else round(x, nd)


def question_kind(kind) -> str:
    """The DM question a ``dm_input`` kind answers (``dice_override`` is the dice question)."""
    return "dice" if kind == "dice_override" else str(kind)


def dm_phase(e: dict) -> str:
    """The phase a DM answer belongs to (:data:`ttrpg.vocabulary.QUESTIONS`); an intervention
    belongs to the phase that failed when its event names it, else to none."""
    kind = question_kind(e.get("kind"))
    if kind in QUESTIONS and QUESTIONS[kind][1]:
        return QUESTIONS[kind][1]
    return e.get("phase") if isinstance(e.get("phase"), str) and e.get("phase") in PHASES else ""


def wait_ms(e: dict) -> float | None:
    v = e.get("wait_ms")
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v < 0:
        return None
    return float(v)


def _dm_stats(answers: list[dict]) -> dict:
    """The DM's time over some answers: how many, how many were timed (logs from before
    ``wait_ms`` have none: their time is None, shown as n/a), total, p50, p95 and max."""
    waits = [w for w in (wait_ms(d) for d in answers) if w is not None]
    return {"answers": len(answers), "timed": len(waits), "total_ms": _r(sum(waits)) if waits else None,
            "p50_ms": _r(percentile(waits, 0.5)), "p95_ms": _r(percentile(waits, 0.95)),
            "max_ms": _r(max(waits, default=None))}


def _unique(evts: list[dict]) -> list[dict]:
    """Events counted once per event id: two rolls of one player in one turn have two ids
    (``turn:player:index``) and count twice; the same event read twice counts once."""
    seen, out = set(), []
    for e in evts:
        key = e.get("event_id")
        if key is None:
            out.append(e)
        elif key not in seen:
            seen.add(key)
            out.append(e)
    return out


def report_from_events(evts: list[dict]) -> dict:
    """The numbers of one session's log (see :func:`report`)."""
    by_type: dict[str, list[dict]] = defaultdict(list)
    for e in evts:
        by_type[e["event_type"]].append(e)
    start = (by_type.get("session_started") or [{}])[0]
    end = (by_type.get("session_ended") or [None])[0]

    # phases: started/completed pairs share their event id (turn:phase:attempt); that is
    # machine time: the DM answers in ask nodes, between work phases, not inside them
    started = {e["event_id"]: e for e in by_type["phase_started"]}
    durations: dict[str, list[float]] = defaultdict(list)
    for e in by_type["phase_completed"]:
        s = started.get(e["event_id"])
        if s:
            durations[e["phase"]].append((_ts(e) - _ts(s)).total_seconds() * 1000)
    dm_answers = _unique(by_type["dm_input"])
    dm_by_phase: dict[str, list[dict]] = defaultdict(list)
    for d in dm_answers:
        if dm_phase(d):
            dm_by_phase[dm_phase(d)].append(d)
    order = {p: i for i, p in enumerate(PHASES)}
    phases = {}
    for p in sorted(set(durations) | set(dm_by_phase), key=lambda p: (order.get(p, 99), str(p))):
        ds = durations.get(p, [])
        phases[p] = {"label": phase_label(p), "count": len(ds), "p50_ms": _r(percentile(ds, 0.5)),
                     "p95_ms": _r(percentile(ds, 0.95)), "max_ms": _r(max(ds, default=None)),
                     "total_ms": _r(sum(ds)) if ds else None, "dm": _dm_stats(dm_by_phase.get(p, []))}
    dm_time = dict(_dm_stats(dm_answers), by_kind={
        k: _dm_stats([d for d in dm_answers if question_kind(d.get("kind")) == k])
        for k in dict.fromkeys(question_kind(d.get("kind")) for d in dm_answers)})
    machine_time = {"total_ms": _r(sum(sum(ds) for ds in durations.values())) if durations else None,
                    "phase_runs": sum(len(ds) for ds in durations.values())}

    calls = by_type["llm_call"]
    latencies = [float(c["latency_ms"]) for c in calls if c.get("latency_ms") is not None]
    llm = {"calls": len(calls), "ok": sum(c.get("outcome") == "ok" for c in calls),
           "errors": sum(c.get("outcome") != "ok" for c in calls),
           "errors_by_class": _counts(c.get("error_class") or "unknown" for c in calls if c.get("outcome") != "ok"),
           "repeated_executions": sum(not str(c["event_id"]).endswith(":x1") for c in calls),
           "latency_p50_ms": _r(percentile(latencies, 0.5)), "latency_p95_ms": _r(percentile(latencies, 0.95)),
           "prompt_tokens": sum(int(c.get("prompt_tokens") or 0) for c in calls),
           "completion_tokens": sum(int(c.get("completion_tokens") or 0) for c in calls),
           "by_player": _counts((c.get("player_id") for c in calls), sort=True),
           "models": _counts(c.get("model") for c in calls),
           "worker_processes": len({c["worker_pid"] for c in calls if c.get("worker_pid") is not None})}

    retries = by_type["llm_retry"]
    retry = {"total": len(retries), "by_error_class": _counts(r.get("error_class") for r in retries),
             "wait_s_total": round(sum(float(r.get("wait_s") or 0) for r in retries), 3)}

    # validation: first answers = (turn, player) with an ok action-v1 call; failed = validation_failed attempt 1
    first = {(c["turn_number"], c.get("player_id")) for c in calls
             if c.get("phase") == "action-v1" and c.get("outcome") == "ok"}
    first_failed = {(v["turn_number"], v.get("player_id")) for v in by_type["validation_failed"]
                    if v.get("attempt") == 1}
    corrected = by_type["validation_autocorrected"]
    validation = {"first_attempt_actions": len(first), "first_attempt_failures": len(first_failed),
                  "first_attempt_failure_rate": round(len(first_failed) / len(first), 4) if first else None,
                  "failures_total": len(by_type["validation_failed"]),
                  "failures_by_round": _counts((v.get("attempt") for v in by_type["validation_failed"]), sort=True),
                  "autocorrections": len(corrected),
                  "needs_review": sum(bool(c.get("needs_review")) for c in corrected),
                  "referee": _referee_counts(by_type["overreach_judged"])}

    per_turn: dict[int, dict] = {}
    for t in by_type["turn_completed"]:
        per_turn.setdefault(t["turn_number"], {"turn": t["turn_number"], "llm_calls": 0, "prompt_tokens": 0,
                                               "completion_tokens": 0})
    for c in calls:
        row = per_turn.setdefault(c["turn_number"], {"turn": c["turn_number"], "llm_calls": 0, "prompt_tokens": 0,
                                                     "completion_tokens": 0})
        row["llm_calls"] += 1
        row["prompt_tokens"] += int(c.get("prompt_tokens") or 0)
        row["completion_tokens"] += int(c.get("completion_tokens") or 0)
    tokens_per_turn = [dict(r, total_tokens=r["prompt_tokens"] + r["completion_tokens"])
                       for _, r in sorted(per_turn.items())]

    finals = [c for c in by_type["consensus"] if c.get("final")]
    consensus = {"decisions": len(finals), "outcomes": _counts(c.get("state") for c in finals),
                 "decided_by_vote": sum(c.get("decided_by") == "vote" for c in finals),
                 "rounds": _counts((c.get("round") for c in finals), sort=True),
                 "rounds_total": len([c for c in by_type["consensus"] if c.get("decided_by") != "vote"])}

    completed = by_type["turn_completed"]
    rolls = _unique(by_type["dice_roll"])
    duration = (_ts(end) - _ts(start)).total_seconds() if end and start.get("timestamp") else None
    return {
        "session_id": start.get("session_id") or (evts[0]["session_id"] if evts else None),
        "campaign_id": start.get("campaign_id") or (evts[0].get("campaign_id") if evts else None),
        "model": start.get("model"), "players": start.get("players") or [],
        "started_at": start.get("timestamp"), "ended_at": end["timestamp"] if end else None,
        "duration_s": _r(duration, 3), "ended": end is not None,
        "events": len(evts), "events_by_type": _counts((e["event_type"] for e in evts), sort=True),
        "turns": {"completed": len(completed), "ended_early": sum(bool(t.get("ended_early")) for t in completed),
                  "resumes": len(by_type["session_resumed"])},
        "phases": phases, "machine_time": machine_time, "dm_time": dm_time,
        "failures": {"phase_failed": len(by_type["phase_failed"]),
                     "by_phase": _counts(f.get("phase") for f in by_type["phase_failed"]),
                     "rollbacks": len(by_type["rollback"]),
                     "interventions": _counts(i.get("choice") for i in by_type["dm_intervention"])},
        "jobs": {"enqueued": len(by_type["job_enqueued"]), "reattached": len(by_type["job_reattached"])},
        "llm": llm, "retries": retry, "validation": validation, "tokens_per_turn": tokens_per_turn,
        "consensus": consensus,
        "dice": {"rolls": len(rolls), "bands": _counts(r.get("band") for r in rolls),
                 "laser_feelings": sum(bool(r.get("laser_feelings")) for r in rolls),
                 "overridden": sum(bool(r.get("overridden")) for r in rolls),
                 "by_player": _counts((r.get("player_id") for r in rolls), sort=True),
                 "by_turn": _counts((r.get("turn_number") for r in rolls), sort=True),
                 "most_by_one_player_in_a_turn": max(Counter((r.get("turn_number"), str(r.get("player_id")))
                                                             for r in rolls).values(), default=0)},
    }


def report(redis, session_id: str) -> dict:
    """Numbers of a session, from its events: turns, per phase the machine time (p50/p95,
    from ``phase_started``/``phase_completed`` pairs) and the DM's time to answer (``wait_ms``
    of the ``dm_input`` events of the phase's questions; None where the log has none), LLM
    calls and latency, retries by error class,
    first-attempt validation failure rate, auto-corrections, tokens per turn (every
    ``llm_call``, table talk included), consensus outcomes, dice."""
    return report_from_events(session_events(redis, session_id))


def _kv_table(pairs: list[tuple[str, object]]) -> str:
    e = html_text
    return "<table>" + "".join(f"<tr><th>{e(k)}</th><td>{e(v)}</td></tr>" for k, v in pairs) + "</table>"


def ms_text(ms) -> str:
    """Milliseconds for people: ``n/a`` when unknown (a log without the figure)."""
    return "n/a" if ms is None else f"{ms:g}"


def s_text(ms) -> str:
    """Milliseconds as seconds for people, ``n/a`` when unknown."""
    return "n/a" if ms is None else f"{ms / 1000:.1f} s"


def time_rows(rep: dict) -> list[dict]:
    """Per phase, for tables: its label, machine runs and times, and the DM's answers and time
    (``n/a`` where the log does not say how long the DM took)."""
    rows = []
    for p, d in rep["phases"].items():
        dm = d.get("dm") or {}
        ran = bool(d["count"])  # no run: the DM answered, no work was logged for the phase
        rows.append({"phase": p, "label": d.get("label") or phase_label(p), "runs": str(d["count"]),
                     "p50": ms_text(d["p50_ms"]) if ran else "-", "p95": ms_text(d["p95_ms"]) if ran else "-",
                     "max": ms_text(d["max_ms"]) if ran else "-",
                     "machine_total": ms_text(d.get("total_ms")) if ran else "-",
                     "dm_answers": str(dm.get("answers", 0)),
                     "dm_total": ms_text(dm.get("total_ms")) if dm.get("answers") else "-",
                     "dm_p50": ms_text(dm.get("p50_ms")) if dm.get("answers") else "-"})
    return rows


def report_summary(rep: dict) -> list[tuple[str, str]]:
    """The report's headline figures as (label, value) pairs, values cleaned and on one line."""
    llm, val, ret = rep["llm"], rep["validation"], rep["retries"]
    ref = val.get("referee") or {"verdicts": 0}
    rate = val["first_attempt_failure_rate"]
    dm, machine = rep.get("dm_time") or {}, rep.get("machine_time") or {}
    dm_note = ""
    if dm.get("answers") and dm.get("timed", 0) < dm["answers"]:
        dm_note = f" ({dm['timed']} of {dm['answers']} answers timed)"
    pairs = [
        ("session", rep["session_id"]), ("campaign", rep["campaign_id"]), ("model", rep["model"]),
        ("players", ", ".join(map(str, rep["players"]))), ("started", rep["started_at"]),
        ("duration", f"{rep['duration_s']} s" if rep["duration_s"] is not None else "(not ended)"),
        ("machine time (phases)", s_text(machine.get("total_ms"))),
        ("DM time (answering)", s_text(dm.get("total_ms")) + dm_note
         + (f", p50 {ms_text(dm.get('p50_ms'))} ms per answer" if dm.get("p50_ms") is not None else "")),
        ("turns completed", rep["turns"]["completed"]), ("turns ended early", rep["turns"]["ended_early"]),
        ("resumes", rep["turns"]["resumes"]), ("events", rep["events"]),
        ("LLM calls", f"{llm['calls']} ({llm['ok']} ok, {llm['errors']} error)"),
        ("LLM latency p50 / p95", f"{ms_text(llm['latency_p50_ms'])} / {ms_text(llm['latency_p95_ms'])} ms"),
        ("tokens", f"{llm['prompt_tokens']} prompt + {llm['completion_tokens']} completion"),
        ("retries", f"{ret['total']}" + (" (" + ", ".join(f"{k} {v}" for k, v in ret["by_error_class"].items())
                                         + ")" if ret["by_error_class"] else "")),
        ("phase failures / rollbacks", f"{rep['failures']['phase_failed']} / {rep['failures']['rollbacks']}"),
        ("first-attempt validation failures", f"{val['first_attempt_failures']} of {val['first_attempt_actions']}"
         + (f" ({rate:.1%})" if rate is not None else "")),
        ("auto-corrections", f"{val['autocorrections']} ({val['needs_review']} needed review)"),
        *([("overreach referee", f"{ref['verdicts']} verdicts: {ref['flagged_what_rules_passed']} flagged what the "
            f"rules passed, {ref['cleared_what_rules_flagged']} cleared what they flagged, "
            f"{ref['decided_by_rules']} unreadable or failed (the rules decided)")] if ref["verdicts"] else []),
        ("consensus", ", ".join(f"{k} {v}" for k, v in rep["consensus"]["outcomes"].items()) or "-"),
        ("dice", f"{rep['dice']['rolls']} rolls, {rep['dice']['laser_feelings']} LASER FEELINGS"),
    ]
    return [(k, one_line("-" if v is None else v)) for k, v in pairs]


def _referee_counts(judged: list[dict]) -> dict:
    """How the model's verdicts (``overreach_judged``, TTRPG_OVERREACH_JUDGE on) met the rules'."""
    read = [j for j in judged if j.get("decided_by") == "referee"]
    return {"verdicts": len(judged), "decided_by_referee": len(read),
            "decided_by_rules": len(judged) - len(read),
            "flagged_what_rules_passed": sum(1 for j in read if j.get("verdict") and not j.get("rules")),
            "cleared_what_rules_flagged": sum(1 for j in read if not j.get("verdict") and j.get("rules"))}


def report_html(rep: dict) -> str:
    """A self-contained page (inline CSS and SVG, no scripts, no external assets) of a report."""
    e = html_text
    llm, val, ret, con = rep["llm"], rep["validation"], rep["retries"], rep["consensus"]
    rows = time_rows(rep)
    charts = [
        svg_bar_chart("Phase duration, machine time (ms)",
                      [(d.get("label") or p, [d["p50_ms"], d["p95_ms"]]) for p, d in rep["phases"].items()
                       if d["count"]], ["p50", "p95"], " ms"),
        svg_bar_chart("Time per phase: machine and DM (total ms)",
                      [(d.get("label") or p, [d.get("total_ms"), (d.get("dm") or {}).get("total_ms")])
                       for p, d in rep["phases"].items()], ["machine", "DM"], " ms"),
        svg_bar_chart("Tokens per turn", [(f"turn {t['turn']}", [t["prompt_tokens"], t["completion_tokens"]])
                                          for t in rep["tokens_per_turn"]], ["prompt", "completion"]),
        svg_bar_chart("LLM calls per player", [(str(p), [n]) for p, n in llm["by_player"].items()], ["calls"]),
        svg_bar_chart("Retries by error class", [(str(k), [v]) for k, v in ret["by_error_class"].items()],
                      ["retries"]),
        svg_bar_chart("Consensus outcomes", [(str(k), [v]) for k, v in con["outcomes"].items()], ["turns"]),
        svg_bar_chart("Validation failures by round",
                      [(f"round {k}", [v]) for k, v in val["failures_by_round"].items()], ["failures"]),
    ]
    css = ("body{font-family:system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem;color:#222}"
           "table{border-collapse:collapse;margin:1rem 0}th,td{border:1px solid #ddd;padding:.25rem .6rem;"
           "text-align:left}th{background:#f5f5f5;font-weight:600}svg{display:block;margin:1.5rem 0;"
           "font-size:12px}svg .title{font-size:14px;font-weight:600}svg .val{fill:#555}.empty{color:#888}"
           ".note{color:#555}")
    head = ("<tr><th>phase</th><th>runs</th><th>machine p50 ms</th><th>machine p95 ms</th><th>machine max ms</th>"
            "<th>machine total ms</th><th>DM answers</th><th>DM total ms</th><th>DM p50 ms</th></tr>")
    return "\n".join([
        "<!DOCTYPE html>", "<html lang=\"en\"><head><meta charset=\"utf-8\">",
        f"<title>Report: session {e(rep['session_id'])}</title>", f"<style>{css}</style></head><body>",
        f"<h1>Session {e(rep['session_id'])}</h1>", _kv_table(report_summary(rep)), "<h2>Charts</h2>", *charts,
        "<h2>Phases</h2>",
        "<p class=\"note\">Machine time: from each phase's start to its end. DM time: how long the DM took to "
        "answer the questions of that phase (n/a: the log does not say).</p>",
        "<table>" + head
        + "".join(f"<tr><td title=\"{e(r['phase'])}\">{e(r['label'])}</td><td>{e(r['runs'])}</td>"
                  f"<td>{e(r['p50'])}</td><td>{e(r['p95'])}</td><td>{e(r['max'])}</td><td>{e(r['machine_total'])}</td>"
                  f"<td>{e(r['dm_answers'])}</td><td>{e(r['dm_total'])}</td><td>{e(r['dm_p50'])}</td></tr>"
                  for r in rows) + "</table>",
        "<h2>Events</h2>", _kv_table(list(rep["events_by_type"].items())),
        "</body></html>", ""])

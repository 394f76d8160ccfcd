"""A batch's report: one row per condition, each figure the mean over its seeds with a 95 %
bootstrap interval (``ttrpg batch report``), as JSON, CSV or an HTML page with SVG charts.

Per session, the figures come from its event log: :func:`ttrpg.research.report.report_from_events`
(validation, retries, latency, consensus, dice, interventions) plus tokens by layer and by job
phase, read from the ``llm_call`` events. Only completed sessions count; the row says how
many of the condition's sessions that is. Rates and shares are per session first (a seed is
one replicate), then averaged: a condition's interval is over seeds, not over turns.
"""

from __future__ import annotations

import re
from collections import defaultdict

from ttrpg import defaults
from ttrpg.batch import record
from ttrpg.research.stats import summarize

#: Job phases of the player layer (out of character); the rest is the character layer.
PLAYER_PHASES = ("discussion", "intent")


def phase_family(phase: str) -> str:
    """``discussion-r2`` -> ``discussion``, ``action-v3`` -> ``action``, ``lf-question`` stays."""
    return re.sub(r"-[rv]\d+$", "", str(phase or "unknown"))


def layer_of(phase: str) -> str:
    return "player" if phase_family(phase) in PLAYER_PHASES else "character"


def session_figures(evts: list[dict]) -> dict[str, float | None]:
    """The figures of one session, flat: ``name -> value`` (None when the log has none)."""
    from ttrpg.research.report import report_from_events

    rep = report_from_events(evts)
    turns = rep["turns"]["completed"] or 0
    per_turn = (lambda x: x / turns) if turns else (lambda x: None)
    out: dict[str, float | None] = {"turns_completed": float(turns)}
    val = rep["validation"]
    out["validation.first_attempt_failure_rate"] = val["first_attempt_failure_rate"]
    actions = val["first_attempt_actions"]
    kinds: dict[str, int] = defaultdict(int)
    for e in evts:
        if e["event_type"] == "validation_failed":
            for v in e.get("violations") or []:
                kinds[str(v).partition(":")[0].strip() or "unknown"] += 1
    out["validation.failures_per_action.all"] = (val["failures_total"] / actions) if actions else None
    for kind, n in kinds.items():
        out[f"validation.failures_per_action.{kind}"] = (n / actions) if actions else None
    out["retries_per_turn.all"] = per_turn(rep["retries"]["total"])
    for cause, n in rep["retries"]["by_error_class"].items():
        out[f"retries_per_turn.{cause}"] = per_turn(n)
    layers: dict[str, int] = defaultdict(int)
    phases: dict[str, int] = defaultdict(int)
    for e in evts:
        if e["event_type"] == "llm_call":
            tokens = int(e.get("prompt_tokens") or 0) + int(e.get("completion_tokens") or 0)
            layers[layer_of(e.get("phase"))] += tokens
            phases[phase_family(e.get("phase"))] += tokens
    for layer in ("player", "character"):
        out[f"tokens_per_turn.layer.{layer}"] = per_turn(layers.get(layer, 0))
    for phase, n in phases.items():
        out[f"tokens_per_turn.phase.{phase}"] = per_turn(n)
    out["latency_ms.p50"] = rep["llm"]["latency_p50_ms"]
    out["latency_ms.p95"] = rep["llm"]["latency_p95_ms"]
    decisions = rep["consensus"]["decisions"]
    for state, n in rep["consensus"]["outcomes"].items():
        out[f"consensus_share.{state}"] = n / decisions if decisions else None
    rolls = rep["dice"]["rolls"]
    for band, n in rep["dice"]["bands"].items():
        out[f"dice_share.{band}"] = n / rolls if rolls else None
    out["dice.laser_feelings_per_roll"] = rep["dice"]["laser_feelings"] / rolls if rolls else None
    interventions = rep["failures"]["interventions"]
    out["dm_interventions.all"] = float(sum(interventions.values()))
    for choice, n in interventions.items():
        out[f"dm_interventions.{choice}"] = float(n)
    out["phase_failures"] = float(rep["failures"]["phase_failed"])
    out["duplicated_llm_calls"] = float(rep["llm"]["repeated_executions"])
    return out


#: Figures that are counts or shares: a session without the key had none of it (0), not "unknown".
_ZERO_FILLED = ("validation.failures_per_action.", "retries_per_turn.", "tokens_per_turn.", "consensus_share.",
                "dice_share.", "dm_interventions.")


def _value(figures: dict, name: str):
    """A session's figure; a count or share it lacks is 0 when it has others of the same group
    (no retries of that cause), None when it has none (no rolls at all: no dice shares)."""
    if name in figures:
        return figures[name]
    prefix = next((p for p in _ZERO_FILLED if name.startswith(p)), None)
    if prefix is None:
        return None
    if prefix in ("consensus_share.", "dice_share."):
        return 0.0 if any(k.startswith(prefix) for k in figures) else None
    return 0.0


def condition_rows(per_session: dict[str, dict], batch: dict, sessions: dict[str, dict], completed: set[str],
                   *, resamples: int = defaults.BOOTSTRAP_RESAMPLES, seed: int = defaults.BOOTSTRAP_SEED) -> list[dict]:
    """One row per condition: its description, how many sessions it has and completed, and
    every figure as ``{"mean", "lo", "hi", "n"}`` over the completed sessions (the seeds)."""
    rows = []
    for cond in batch.get("conditions") or []:
        ci = cond["index"]
        sids = [sid for sid in batch["sessions"] if (sessions.get(sid) or {}).get("condition") == ci]
        done = [sid for sid in sids if sid in completed and sid in per_session]
        names = sorted({k for sid in done for k in per_session[sid]})
        metrics = {}
        for name in names:
            values = [_value(per_session[sid], name) for sid in done]
            metrics[name] = {k: (round(v, 4) if isinstance(v, float) else v)
                             for k, v in summarize(values, resamples=resamples, seed=seed).items()}
        rows.append({"condition": {k: cond.get(k) for k in ("index", "label", "model", "party", "prompt_version",
                                                            "dm", "dm_model", "latency_ms", "faults")},
                     "label": cond.get("label"), "seeds": [sessions[s]["seed"] for s in done],
                     "sessions": len(sids), "completed": len(done), "metrics": metrics})
    return rows


def batch_report(redis, batch_id: str) -> dict:
    """The report of a batch (see the module docstring) as plain JSON."""
    from ttrpg.batch.status import session_states
    from ttrpg.research.export import session_events

    batch = record.load_batch(redis, batch_id)
    sessions = record.session_records(redis, batch_id)
    states = session_states(redis, batch)
    completed = {sid for sid, s in states.items() if s["state"] == "done"}
    per_session = {sid: session_figures(session_events(redis, sid)) for sid in completed}
    return {"batch_id": batch_id, "sessions": len(batch["sessions"]), "completed": len(completed),
            "interval": {"confidence": 0.95, "method": "percentile bootstrap over seeds",
                         "resamples": defaults.BOOTSTRAP_RESAMPLES, "seed": defaults.BOOTSTRAP_SEED},
            "prompt_version_in_code": batch.get("prompt_version_in_code"),
            "prompt_versions_note": batch.get("prompt_versions_note"),
            "conditions": condition_rows(per_session, batch, sessions, completed)}


def _fmt(m: dict | None) -> str:
    if not m or m.get("mean") is None:
        return "-"
    return f"{m['mean']:.4g} [{m['lo']:.4g}, {m['hi']:.4g}]"


def report_csv(rep: dict) -> str:
    """One line per condition: its fields, then ``<figure>``, ``<figure>_lo``, ``<figure>_hi`` columns."""
    import csv
    import io

    from ttrpg.research.export import csv_cell

    names = sorted({n for row in rep["conditions"] for n in row["metrics"]})
    cols = [f"condition_{k}" for k in ("index", "label", "model", "party", "prompt_version", "dm", "dm_model",
                                       "latency_ms", "faults")] + ["sessions", "completed", "seeds"]
    cols += [c for n in names for c in (n, f"{n}_lo", f"{n}_hi")]
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(cols)
    for row in rep["conditions"]:
        flat = {**{f"condition_{k}": v for k, v in row["condition"].items()}, "sessions": row["sessions"],
                "completed": row["completed"], "seeds": " ".join(map(str, row["seeds"]))}
        for n in names:
            m = row["metrics"].get(n) or {}
            flat[n], flat[f"{n}_lo"], flat[f"{n}_hi"] = m.get("mean"), m.get("lo"), m.get("hi")
        writer.writerow([csv_cell(flat.get(c)) for c in cols])
    return buf.getvalue()


#: Charts of the HTML page: (title, figure prefix).
_CHARTS = (("Validation failures per action, by violation kind", "validation.failures_per_action."),
           ("First-attempt validation failure rate", "validation.first_attempt_failure_rate"),
           ("Retries per turn, by cause", "retries_per_turn."),
           ("Tokens per turn, by layer", "tokens_per_turn.layer."),
           ("Tokens per turn, by job phase", "tokens_per_turn.phase."),
           ("Model latency (ms)", "latency_ms."),
           ("Consensus states (share of decisions)", "consensus_share."),
           ("Dice outcomes (share of rolls)", "dice_share."),
           ("DM interventions per session", "dm_interventions."))


def report_html(rep: dict) -> str:
    """A self-contained page (inline CSS and SVG, no scripts): the table and one chart per figure group."""
    from ttrpg.research.charts import svg_bar_chart
    from ttrpg.research.transcript import html_text as e

    rows = rep["conditions"]
    names = sorted({n for row in rows for n in row["metrics"]})
    parts = ["<!DOCTYPE html>", "<html lang=\"en\"><head><meta charset=\"utf-8\">",
             f"<title>Batch {e(rep['batch_id'])}</title>",
             "<style>body{font-family:system-ui,sans-serif;margin:2rem;color:#222}table{border-collapse:collapse;"
             "margin:1rem 0;font-size:13px}th,td{border:1px solid #ddd;padding:.2rem .5rem;text-align:left}"
             "th{background:#f5f5f5}svg{display:block;margin:1.5rem 0;font-size:12px}svg .title{font-size:14px;"
             "font-weight:600}svg .val{fill:#555}.note{color:#555}</style></head><body>",
             f"<h1>Batch {e(rep['batch_id'])}</h1>",
             f"<p class=\"note\">{e(rep['completed'])} of {e(rep['sessions'])} sessions completed. Each figure: the "
             f"mean over a condition's seeds [95 % percentile bootstrap interval, {e(rep['interval']['resamples'])} "
             f"resamples]. Prompt versions are labels ({e(rep.get('prompt_versions_note') or '')}; prompts in code: "
             f"v{e(rep.get('prompt_version_in_code') or '?')}).</p>",
             "<h2>Charts</h2>"]
    for title, prefix in _CHARTS:
        for n in [n for n in names if n == prefix or n.startswith(prefix)]:
            data = [(r["label"] or str(r["condition"]["index"]),
                     [(r["metrics"].get(n) or {}).get(k) for k in ("mean", "lo", "hi")]) for r in rows]
            label = n[len(prefix):] if n.startswith(prefix) and n != prefix else ""
            parts.append(svg_bar_chart(f"{title}: {label}" if label else title, data, ["mean", "95% lo", "95% hi"]))
    parts.append("<h2>Figures</h2><table><tr><th>figure</th>"
                 + "".join(f"<th>{e(r['label'])} ({e(r['completed'])}/{e(r['sessions'])})</th>" for r in rows) + "</tr>")
    for n in names:
        parts.append(f"<tr><td>{e(n)}</td>" + "".join(f"<td>{e(_fmt(r['metrics'].get(n)))}</td>" for r in rows)
                     + "</tr>")
    parts += ["</table>", "</body></html>", ""]
    return "\n".join(parts)

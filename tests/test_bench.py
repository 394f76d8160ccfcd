"""``ttrpg bench --quick`` and ``ttrpg drill`` run for real and report every figure.

No wall-clock thresholds here: the figures are checked for shape and sanity (positive,
ordered percentiles); the README quotes a full run.
"""

from __future__ import annotations

import json

from tests.conftest import run_cli


def test_bench_quick_reports_every_figure():
    result = run_cli("bench", "--quick", "--json", timeout=900)
    assert result.returncode == 0, result.stderr[-2000:]
    f = json.loads(result.stdout)
    assert f["cli_startup"]["median"] > 0
    assert set(f["dispatch"]) == {"forkserver", "warm", "spawn", "fork", "simple"}
    for d in [*f["dispatch"].values(), *f["back_to_back"].values()]:
        assert 0 < d["p10_ms"] <= d["median_ms"] <= d["p90_ms"]
        assert d["idle_memory"]["pss_kb"] > 0  # memory per idle worker, every class
    assert f["dispatch"]["warm"]["horse_rss_kb"] > 0
    assert set(f["dispatch"]["forkserver"]["idle_memory"]["processes"]) == {"worker", "template", "ready"}
    b2b = f["back_to_back"]["forkserver"]
    assert b2b["back_to_back"] and b2b["distinct_processes"] == b2b["n"]  # never two jobs in one process
    assert f["back_to_back"]["simple"]["distinct_processes"] == 1
    for size in ("2_players", "4_players"):
        row = f["turn"][size]
        assert set(row) == {"forkserver", "simple"}
        assert all(r["turn_ms"]["median"] > 0 for r in row.values())
        assert row["simple"]["ratio_to_simple"] == 1.0 and row["forkserver"]["ratio_to_simple"] > 0
    fan = f["fanout"]
    assert fan["players"] == 4 and fan["wall_ms"]["median"] >= fan["latency_ms"]
    assert f["checkpoint_put"]["p50"] > 0 and f["checkpoint_put"]["p99"] >= f["checkpoint_put"]["p50"]
    turns = f["turn_overhead"]
    assert turns["early_turns_ms"]["median"] > 0 and turns["late_turns_ms"]["median"] > 0
    assert turns["checkpoint_storage_bytes"]["turn_3"] > 0
    assert set(f["resume"]) >= {"unit", "turn_3"}
    assert f["memory_query"] is None or f["memory_query"]["median_ms"] > 0
    assert f["overreach_check"]["lines"] == 50 and 0 < f["overreach_check"]["median"] <= f["overreach_check"]["p90"]


def test_drill_runs_one_trial_of_each_kind_and_loses_nothing():
    result = run_cli("drill", "--trials", "4", "--json", timeout=1200)
    out = json.loads(result.stdout)
    assert {r["kind"] for r in out["results"]} == {"dm_kill", "worker_kill", "redis_restart", "llm_faults"}
    failures = [r for r in out["results"] if not r.get("passed") and "skipped" not in r]
    assert not failures, failures
    assert out["turns_lost"] == 0 and out["duplicated_llm_calls"] == 0
    assert result.returncode == 0
    faults = next(r for r in out["results"] if r["kind"] == "llm_faults")
    assert faults["llm_retries"] > 0  # the faults really happened and were retried


def test_the_compared_classes_play_alternating_sessions_whose_turns_are_pooled(redis_client):
    from ttrpg.ops.bench import turns_per_class

    seen = []
    figures = turns_per_class(("forkserver", "simple"), party_sizes=(2,), turns=3, rounds=2, progress=seen.append)
    row = figures["2_players"]
    assert [r["sessions"] for r in row.values()] == [2, 2]
    assert all(r["turn_ms"]["n"] == 4 for r in row.values())  # 2 sessions x (3 turns - the first)
    classes = [m.split(", ")[2].split()[0] for m in seen]
    assert classes == ["forkserver", "simple", "forkserver", "simple"]
    assert row["simple"]["ratio_to_simple"] == 1.0 and row["forkserver"]["ratio_to_simple"] > 0

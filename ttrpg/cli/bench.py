"""``ttrpg bench`` and ``ttrpg drill``: measure speed, prove that nothing is lost."""

from __future__ import annotations

import typer

from ttrpg.console import cell, err, out, print_json

# ttrpg.ops and rich are imported inside the commands: they load the fleet, langgraph and Redis,
# which `ttrpg --help` must not (tests/test_cli.py checks).


def bench(
    json_out: bool = typer.Option(False, "--json", help="Print the figures as JSON on stdout."),
    quick: bool = typer.Option(False, "--quick", help="Fewer repetitions, two worker classes for the turn, a short session (about two minutes)."),
) -> None:
    """Measure start-up, job dispatch per worker class (idle and back-to-back), the zero-latency turn
    per worker class, fan-out, checkpoints, turn overhead, resume, the overreach check, memory queries."""
    from ttrpg.ops import bench as lib

    with err().status("benchmarking...") as status:
        figures = lib.run(quick=quick, progress=lambda msg: status.update(f"benchmarking: {msg}"))
    if json_out:
        print_json(figures)
        return
    out().print(render(figures))


class _Cells:
    """A rich Table whose rows are cleaned text, never markup (figures may carry names and
    messages from the Redis or a model server)."""

    def __init__(self, table):
        self.table = table

    def add_row(self, *values) -> None:
        self.table.add_row(*(cell(v) for v in values))


def render(f: dict):
    from rich.table import Table

    table = Table(title="ttrpg bench" + (" (quick)" if f.get("quick") else ""))
    for col in ("figure", "median", "spread", "note"):
        table.add_column(col)
    t = _Cells(table)
    s = f["cli_startup"]
    t.add_row("CLI start-up (--help)", f"{s['median']} ms", f"p10 {s['p10']} / p90 {s['p90']}", f"n={s['n']}")
    for cls, d in f["dispatch"].items():
        memory = d.get("idle_memory") or {}
        note = f"idle worker holds {memory.get('pss_kb', 0) / 1024:.0f} MB (PSS)"
        if d.get("horse_ready_ms"):
            note += f"; next horse ready after {d['horse_ready_ms']:.0f} ms"
        t.add_row(f"dispatch: {cls}", f"{d['median_ms']} ms", f"p10 {d['p10_ms']} / p90 {d['p90_ms']}", note)
    for cls, d in f.get("back_to_back", {}).items():
        t.add_row(f"back-to-back dispatch: {cls}", f"{d['median_ms']} ms", f"p10 {d['p10_ms']} / p90 {d['p90_ms']}",
                  f"{d['distinct_processes']} processes for {d['n']} jobs")
    for size, row in f.get("turn", {}).items():
        for cls, d in row.items():
            ratio = f"{d['ratio_to_simple']}x simple" if d.get("ratio_to_simple") else ""
            t.add_row(f"zero-latency turn, {d['players']} players: {cls}", f"{d['turn_ms']['median']:.0f} ms",
                      f"p10 {d['turn_ms']['p10']:.0f} / p90 {d['turn_ms']['p90']:.0f}", ratio)
    fo = f["fanout"]
    t.add_row(f"fan-out {fo['players']}x{fo['latency_ms']} ms", f"{fo['wall_ms']['median']} ms",
              f"p10 {fo['wall_ms']['p10']} / p90 {fo['wall_ms']['p90']}",
              f"{fo['ratio_to_ideal']}x ideal, {fo['ratio_to_sequential']}x sequential")
    c = f["checkpoint_put"]
    t.add_row("checkpoint write", f"{c['p50']} ms", f"p99 {c['p99']}", f"n={c['n']}")
    to = f["turn_overhead"]
    t.add_row("turn overhead, first turns", f"{to['early_turns_ms']['median']} ms",
              f"p10 {to['early_turns_ms']['p10']} / p90 {to['early_turns_ms']['p90']}", f"{to['players']} players")
    t.add_row(f"turn overhead, turns up to {to['turns']}", f"{to['late_turns_ms']['median']} ms",
              f"p10 {to['late_turns_ms']['p10']} / p90 {to['late_turns_ms']['p90']}",
              f"ratio {to['ratio_late_to_early']}")
    for k, v in to["checkpoint_storage_bytes"].items():
        t.add_row(f"checkpoint storage at {k.replace('_', ' ')}", f"{v / 1024:.0f} KiB", "", "pruned each turn")
    r = f["resume"]
    for k, v in r.items():
        if k != "unit":
            t.add_row(f"resume at {k.replace('_', ' ')}", f"{v} ms", "", "")
    o = f.get("overreach_check")
    if o:
        t.add_row("overreach check, one character action", f"{o['median']} ms", f"p90 {o['p90']}",
                  f"{o['lines']} offline-model lines")
    m = f.get("memory_query")
    if m:
        t.add_row(f"memory query ({m.get('memories', m.get('n'))} memories)", f"{m['median_ms']} ms",
                  f"p95 {m['p95_ms']}", "")
    return table


def drill(
    trials: int = typer.Option(20, "--trials", help="Number of fault trials."),
    seed: int = typer.Option(1, "--seed", help="Seed for the fault schedule and the demo sessions."),
    turns: int = typer.Option(2, "--turns", help="Turns per drill session."),
    json_out: bool = typer.Option(False, "--json", help="Print the results as JSON on stdout."),
) -> None:
    """Play seeded sessions while killing the DM, workers and Redis, and injecting LLM faults."""
    from ttrpg.ops import drill as lib

    with err().status("drilling...") as status:
        result = lib.run(trials=trials, seed=seed, turns=turns, progress=lambda m: status.update(m))
    if json_out:
        print_json(result)
    else:
        out().print(render_drill(result))
    ran = result["trials"] - result["skipped"]
    if result["passed"] != ran:
        raise typer.Exit(1)


def render_drill(result: dict):
    """The drill's results as a table; a failed trial's error (the tail of a process's stderr,
    which may quote a model server) is shown cleaned, never as markup."""
    from rich.table import Table

    table = Table(title=f"ttrpg drill: {result['passed']}/{result['trials'] - result['skipped']} passed, "
                        f"{result['turns_lost']} turns lost, {result['duplicated_llm_calls']} duplicated LLM calls")
    for col in ("kind", "seed", "detail", "passed", "turns lost", "dup calls", "retries"):
        table.add_column(col, overflow="fold")
    t = _Cells(table)
    for r in result["results"]:
        detail = r.get("detail") or r.get("skipped", "")
        if r.get("error"):
            detail = f"{detail}: {r['error']}" if detail else r["error"]
        t.add_row(r["kind"], r["seed"], detail, r.get("passed", "-"), r.get("turns_lost", ""),
                  r.get("duplicated_llm_calls", ""), r.get("llm_retries", ""))
    return table

"""``ttrpg overreach``: score the overreach check on labelled lines, with or without a referee."""

from __future__ import annotations

# Library imports are deferred into the command: `ttrpg --help` must not import langgraph,
# openai, rq or redis (a second or more of start-up); see ttrpg/cli/__init__.py.
from pathlib import Path
from typing import Optional

import typer

app = typer.Typer(help="The check that keeps AI characters from narrating outcomes: measure it on your own lines.",
                  no_args_is_help=True, rich_markup_mode=None)


@app.command()
def score(
    corpus: Path = typer.Argument(..., help='Labelled lines: JSON lines like {"text": "I try the door.", '
                                            '"overreach": false}.'),
    judge: bool = typer.Option(False, "--judge", help="Also ask a model to referee each line, as a session does with "
                                                      "TTRPG_OVERREACH_JUDGE on (model: --model or TTRPG_MODEL; "
                                                      "server: OPENAI_BASE_URL; key: OPENAI_API_KEY)."),
    model: Optional[str] = typer.Option(None, "--model", help="The referee's model (default: TTRPG_MODEL)."),
    limit: Optional[int] = typer.Option(None, "--limit", min=1, help="Score only the first N lines."),
    errors: bool = typer.Option(False, "--errors", help="List every line scored wrong."),
    json_out: bool = typer.Option(False, "--json", help="Print the figures as JSON on stdout."),
) -> None:
    """Precision and recall of the overreach check on labelled lines (exit 0; 2 on a bad file).

    Without --judge: the rules alone, in well under a second per thousand lines. With --judge:
    the rules and the model's verdict combined as in a session, one model call per line.
    """
    from ttrpg.console import err, out, print_json, text
    from ttrpg.game import validation

    if judge:
        from ttrpg.llm.config import make_config
        from ttrpg.ops.referee import evaluate_judge
        from ttrpg.settings import get_settings

        settings = get_settings()
        cfg = make_config(model, settings=settings, overreach_judge=True)
        with err().status("refereeing...") as status:
            figures = evaluate_judge(corpus, cfg, api_key=settings.openai_api_key, limit=limit,
                                     on_line=lambda i, _: status.update(f"refereeing: {i} lines done"))
    else:
        figures = validation.evaluate(validation.load_labelled(corpus)[:limit or None])
    if json_out:
        print_json(figures)
        return
    console = out()
    lines = figures["tp"] + figures["fp"] + figures["fn"] + figures["tn"]
    console.print(text(f"{lines} lines: precision {figures['precision']:.3f}, recall {figures['recall']:.3f} "
                       f"(tp {figures['tp']}, fp {figures['fp']}, fn {figures['fn']}, tn {figures['tn']})"))
    if judge:
        rules = figures["rules"]
        console.print(text(f"rules alone: precision {rules['precision']:.3f}, recall {rules['recall']:.3f}; "
                           f"the referee's reply could not be read on {figures['unreadable']} lines "
                           "(the rules decided those)"))
    if errors:
        for e in figures["errors"]:
            console.print(text(f"{e['error']}: {e['text']}"))

"""What researchers do with a session's event log: export it, read the story, measure it, watch it.

Everything here reads the session's Redis Stream (:mod:`ttrpg.research.events`) only, so it
works on any machine that reaches the session's Redis, during or after play. Exports keep every
text exactly as logged; everything made for people (transcripts, the report, ``watch``) shows
it as text, never as markup.

* :mod:`ttrpg.research.events`: writing and reading the log (Redis Stream + JSONL mirror);
* :mod:`ttrpg.research.schema`: every event type and its fields (generates docs/events.md);
* :mod:`ttrpg.research.export`: a known session's events, a campaign's sessions, JSONL/CSV export;
* :mod:`ttrpg.research.transcript`: the story, turn by turn, as Markdown or HTML
  (``md_text``/``html_text`` escape untrusted text);
* :mod:`ttrpg.research.report`: the numbers of a session, as a dict, table rows or an HTML page;
* :mod:`ttrpg.research.charts`: SVG bar charts for the report page;
* :mod:`ttrpg.research.stats`: ``percentile``, used by every figure ttrpg reports;
* :mod:`ttrpg.research.watch`: following a session's events live.
"""

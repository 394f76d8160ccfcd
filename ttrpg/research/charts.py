"""Charts for report pages: horizontal bar charts as inline SVG (no scripts, no assets)."""

from __future__ import annotations

from ttrpg.research.transcript import html_text

_COLORS = ("#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#76b7b2", "#edc948")


def svg_bar_chart(title: str, rows: list[tuple[str, list[float]]], series: list[str], unit: str = "") -> str:
    """A horizontal bar chart as inline SVG: one group of bars per row, one bar per series."""
    e = html_text
    if not rows:
        return f"<p class=\"empty\">{e(title)}: no data.</p>"
    label_w, bar_w, bar_h, gap = 170, 360, 14, 8
    group_h = bar_h * len(series) + gap
    legend_h = 22 if len(series) > 1 else 0
    height = 28 + legend_h + group_h * len(rows)
    top = max((v for _, vals in rows for v in vals if v is not None), default=0) or 1
    out = [f"<svg role=\"img\" aria-label=\"{e(title)}\" width=\"{label_w + bar_w + 90}\" height=\"{height}\" "
           f"viewBox=\"0 0 {label_w + bar_w + 90} {height}\">",
           f"<text x=\"0\" y=\"16\" class=\"title\">{e(title)}</text>"]
    if legend_h:
        x = label_w
        for i, name in enumerate(series):
            out.append(f"<rect x=\"{x}\" y=\"26\" width=\"10\" height=\"10\" fill=\"{_COLORS[i % len(_COLORS)]}\"/>"
                       f"<text x=\"{x + 14}\" y=\"35\">{e(name)}</text>")
            x += 14 + 8 * len(name) + 16
    y = 28 + legend_h
    for label, vals in rows:
        out.append(f"<text x=\"{label_w - 6}\" y=\"{y + bar_h * len(series) / 2 + 4:.0f}\" "
                   f"text-anchor=\"end\">{e(label)}</text>")
        for i, v in enumerate(vals):
            v = v or 0
            w = max(1.0, bar_w * v / top) if v else 0
            out.append(f"<rect x=\"{label_w}\" y=\"{y}\" width=\"{w:.1f}\" height=\"{bar_h - 2}\" "
                       f"fill=\"{_COLORS[i % len(_COLORS)]}\"><title>{e(series[i])}: {v:g}{e(unit)}</title></rect>"
                       f"<text x=\"{label_w + w + 4:.1f}\" y=\"{y + bar_h - 4}\" class=\"val\">{v:g}{e(unit)}</text>")
            y += bar_h
        y += gap
    out.append("</svg>")
    return "".join(out)

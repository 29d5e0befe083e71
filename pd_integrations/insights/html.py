"""The report as one self-contained HTML file with inline SVG charts.

Nothing in the page loads anything: no script, no font, no image, and a
Content-Security-Policy of ``default-src 'none'`` makes sure of it, so the file opens
offline and can be attached to a ticket. Every text from PagerDuty is escaped.
"""

from __future__ import annotations

from collections.abc import Sequence
from html import escape
from typing import Any

from .render import duration

__all__ = ["render_html", "svg_bars", "svg_hbars", "svg_lines"]

_W, _H, _PAD = 640, 180, 32
_STYLE = """
body{font:14px/1.4 system-ui,sans-serif;margin:24px;color:#1b1f24;background:#fff}
h1{font-size:20px}h2{font-size:16px;margin-top:28px}
table{border-collapse:collapse;margin:8px 0}
td,th{padding:4px 10px;border-bottom:1px solid #ddd;text-align:right}
td:first-child,th:first-child{text-align:left}.meta{color:#555}
.charts{display:flex;flex-wrap:wrap;gap:24px}figure{margin:0}figcaption{font-weight:600}
svg text{font:11px system-ui,sans-serif;fill:#444}.bar{fill:#3b82f6}.mtta{stroke:#f59e0b}
.mttr{stroke:#8b5cf6}
.noise{fill:#ef4444}.line{fill:none;stroke-width:2}
"""


def _scale(values: Sequence[float | None]) -> float:
    largest = max((v for v in values if v is not None), default=0.0)
    return largest if largest > 0 else 1.0


def svg_bars(labels: Sequence[str], values: Sequence[float], title: str) -> str:
    """Vertical bars, one per label, with the first and last label under the axis."""
    top = _scale(values)
    step = (_W - 2 * _PAD) / max(len(values), 1)
    bars = []
    for i, (label, value) in enumerate(zip(labels, values, strict=True)):
        height = (_H - 2 * _PAD) * value / top
        x, y = _PAD + i * step, _H - _PAD - height
        bars.append(
            f'<rect class="bar" x="{x:.1f}" y="{y:.1f}" width="{max(step - 2, 1):.1f}" '
            f'height="{height:.1f}"><title>{escape(label)}: {value:g}</title></rect>'
        )
    axis = _axis(labels, f"{top:g}")
    return _svg(title, "".join(bars) + axis)


def svg_lines(labels: Sequence[str], series: dict[str, Sequence[float | None]], title: str) -> str:
    """One line per series (its name is its CSS class); gaps where a value is missing."""
    top = _scale([v for values in series.values() for v in values])
    step = (_W - 2 * _PAD) / max(len(labels) - 1, 1)
    paths = []
    for name, values in series.items():
        points: list[str] = []
        path: list[str] = []
        for i, value in enumerate(values):
            if value is None:
                if points:
                    path.append("M" + " L".join(points))
                points = []
                continue
            x = _PAD + i * step
            y = _H - _PAD - (_H - 2 * _PAD) * value / top
            points.append(f"{x:.1f},{y:.1f}")
        if points:
            path.append("M" + " L".join(points))
        if path:
            paths.append(f'<path class="line {escape(name)}" d="{" ".join(path)}"/>')
    legend = "".join(
        f'<text x="{_PAD + 90 * i}" y="14" class="{escape(name)}">— {escape(name.upper())}</text>'
        for i, name in enumerate(series)
    )
    return _svg(title, "".join(paths) + legend + _axis(labels, duration(top)))


def svg_hbars(labels: Sequence[str], values: Sequence[float], title: str) -> str:
    """Horizontal bars, the largest first, a label on each."""
    top = _scale(values)
    row = 22
    height = max(len(values), 1) * row + 10
    body = []
    for i, (label, value) in enumerate(zip(labels, values, strict=True)):
        width = (_W - 300) * value / top
        y = 5 + i * row
        body.append(
            f'<text x="0" y="{y + 14}">{escape(label[:38])}</text>'
            f'<rect class="noise" x="250" y="{y}" width="{width:.1f}" height="{row - 6}"/>'
            f'<text x="{254 + width:.1f}" y="{y + 14}">{value:g}</text>'
        )
    return (
        f'<svg role="img" aria-label="{escape(title)}" width="{_W}" height="{height}" '
        f'viewBox="0 0 {_W} {height}" xmlns="http://www.w3.org/2000/svg">{"".join(body)}</svg>'
    )


def _axis(labels: Sequence[str], top: str) -> str:
    if not labels:
        return ""
    base = _H - _PAD
    return (
        f'<line x1="{_PAD}" y1="{base}" x2="{_W - _PAD}" y2="{base}" stroke="#999"/>'
        f'<text x="{_PAD}" y="{base + 16}">{escape(labels[0])}</text>'
        f'<text x="{_W - _PAD}" y="{base + 16}" text-anchor="end">{escape(labels[-1])}</text>'
        f'<text x="2" y="{_PAD - 4}">{escape(top)}</text>'
    )


def _svg(title: str, body: str) -> str:
    return (
        f'<svg role="img" aria-label="{escape(title)}" width="{_W}" height="{_H}" '
        f'viewBox="0 0 {_W} {_H}" xmlns="http://www.w3.org/2000/svg">{body}</svg>'
    )


def _figure(caption: str, svg: str) -> str:
    return f"<figure><figcaption>{escape(caption)}</figcaption>{svg}</figure>"


def _rows(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    head = "".join(f"<th>{escape(h)}</th>" for h in header)
    body = "".join(
        "<tr>" + "".join(f"<td>{escape(str(cell))}</td>" for cell in row) + "</tr>" for row in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _cells(row: dict[str, Any]) -> list[object]:
    noise = row["noise"]
    return [
        row["incidents"],
        row["triggers"],
        duration(row["mtta"]["median_seconds"]),
        duration(row["mtta"]["p90_seconds"]),
        duration(row["mttr"]["median_seconds"]),
        duration(row["mttr"]["p90_seconds"]),
        noise["unacknowledged"],
        noise["flapping"],
        noise["out_of_hours"],
    ]


_HEADER = (
    "incidents",
    "triggers",
    "MTTA median",
    "MTTA p90",
    "MTTR median",
    "MTTR p90",
    "no ack",
    "flapping",
    "out of hours",
)


def charts(report: dict[str, Any]) -> str:
    """The three charts of a report, as HTML ``<figure>`` elements."""
    days = report["days"]
    labels = [d["date"] for d in days]
    noisy = [a for a in report["alerts"] if a["noise_score"]][:10]
    return "".join(
        [
            _figure(
                "Incidents per day",
                svg_bars(labels, [d["incidents"] for d in days], "Incidents per day"),
            ),
            _figure(
                "MTTA and MTTR (daily median)",
                svg_lines(
                    labels,
                    {
                        "mtta": [d["mtta_median_seconds"] for d in days],
                        "mttr": [d["mttr_median_seconds"] for d in days],
                    },
                    "MTTA and MTTR per day",
                ),
            ),
            _figure(
                "Noisiest alerts (noise candidates)",
                svg_hbars(
                    [a["title"] or a["key"] for a in noisy],
                    [a["noise_score"] for a in noisy],
                    "Noisiest alerts",
                ),
            ),
        ]
    )


def render_html(report: dict[str, Any]) -> str:
    window = report["window"]
    totals = report["totals"]
    noisy = [a for a in report["alerts"] if a["noise_score"]][:10]
    sla = [(s["name"], s["sla"]) for s in report["services"] if s["sla"] is not None]
    parts = [
        '<!doctype html><html lang="en"><head><meta charset="utf-8">',
        '<meta http-equiv="Content-Security-Policy" content="default-src \'none\'; '
        "style-src 'unsafe-inline'\">",
        f"<title>PagerDuty insights {escape(window['since'][:10])} to "
        f"{escape(window['until'][:10])}</title><style>{_STYLE}</style></head><body>",
        f'<h1>PagerDuty insights</h1><p class="meta">Incidents created from '
        f"{escape(window['since'])} to {escape(window['until'])}; generated "
        f"{escape(report['generated_at'])}.</p>",
        _rows(("", *_HEADER), [("all services", *_cells(totals))]),
        f'<div class="charts">{charts(report)}</div>',
        "<h2>Services</h2>",
        _rows(("service", *_HEADER), [(s["name"], *_cells(s)) for s in report["services"]]),
    ]
    if noisy:
        parts += [
            "<h2>Noisiest alerts</h2>",
            _rows(
                ("alert", *_HEADER, "suggestion"),
                [(a["title"] or a["key"], *_cells(a), a["suggestion"]) for a in noisy],
            ),
        ]
    if sla:
        parts += [
            "<h2>SLA (time to resolve)</h2>",
            _rows(
                ("service", "target", "within", "breached", "share within"),
                [
                    (
                        name,
                        duration(s["target_seconds"]),
                        s["within"],
                        s["breached"],
                        "-" if s["share_within"] is None else f"{s['share_within'] * 100:.1f}%",
                    )
                    for name, s in sla
                ],
            ),
        ]
    parts.append("</body></html>\n")
    return "".join(parts)

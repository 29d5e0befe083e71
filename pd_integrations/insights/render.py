"""The report as text (a readable table) or JSON (the stable schema, sorted keys)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

__all__ = ["duration", "render_json", "render_text"]

TITLE_WIDTH = 48


def duration(seconds: float | None) -> str:
    """``None`` as ``-``, else the largest two units (``1h05m``, ``3m20s``, ``12s``)."""
    if seconds is None:
        return "-"
    whole = round(seconds)
    days, rest = divmod(whole, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d{hours:02d}h"
    if hours:
        return f"{hours}h{minutes:02d}m"
    if minutes:
        return f"{minutes}m{secs:02d}s"
    return f"{secs}s"


def _share(value: float | None) -> str:
    return "-" if value is None else f"{value * 100:.1f}%"


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    everything = [list(header), *[list(row) for row in rows]]
    widths = [max(len(row[i]) for row in everything) for i in range(len(header))]
    lines = [
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in everything
    ]
    lines.insert(1, "  ".join("-" * width for width in widths))
    return lines


def _clip(text: str, width: int = TITLE_WIDTH) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def _figures(row: dict[str, Any]) -> list[str]:
    noise = row["noise"]
    return [
        str(row["incidents"]),
        str(row["triggers"]),
        duration(row["mtta"]["median_seconds"]),
        duration(row["mtta"]["p90_seconds"]),
        duration(row["mttr"]["median_seconds"]),
        duration(row["mttr"]["p90_seconds"]),
        str(noise["unacknowledged"]),
        str(noise["flapping"]),
        str(noise["out_of_hours"]),
    ]


_FIGURE_HEADER = (
    "incidents",
    "triggers",
    "MTTA med",
    "p90",
    "MTTR med",
    "p90",
    "no ack",
    "flap",
    "night",
)


def render_text(report: dict[str, Any], *, alerts: int = 10) -> str:
    """A few tables: totals, services, the noisiest alerts with a suggestion each, SLA."""
    window = report["window"]
    lines = [f"PagerDuty insights {window['since']} .. {window['until']}", ""]
    lines += _table(("", *_FIGURE_HEADER), [("all services", *_figures(report["totals"]))])
    lines.append("")
    if report["services"]:
        lines += _table(
            ("service", *_FIGURE_HEADER),
            [(_clip(s["name"], 32), *_figures(s)) for s in report["services"]],
        )
        lines.append("")
    noisy = [a for a in report["alerts"] if a["noise_score"]][:alerts]
    if noisy:
        lines.append("Noisiest alerts")
        lines += _table(
            ("alert", *_FIGURE_HEADER),
            [(_clip(a["title"] or a["key"]), *_figures(a)) for a in noisy],
        )
        lines.append("")
        lines.append("Suggestions")
        lines += [f"- {_clip(a['title'] or a['key'])}: {a['suggestion']}" for a in noisy]
        lines.append("")
    sla_rows = [(s["name"], s["sla"]) for s in report["services"] if s["sla"] is not None]
    if sla_rows:
        lines.append("SLA (time to resolve)")
        lines += _table(
            ("service", "target", "within", "breached", "share within"),
            [
                (
                    _clip(name, 32),
                    duration(sla["target_seconds"]),
                    str(sla["within"]),
                    str(sla["breached"]),
                    _share(sla["share_within"]),
                )
                for name, sla in sla_rows
            ],
        )
        lines.append("")
    if not report["totals"]["incidents"]:
        lines.append("No incidents in this window.")
    return "\n".join(lines).rstrip() + "\n"


def render_json(report: dict[str, Any]) -> str:
    return json.dumps(report, indent=2, sort_keys=True, ensure_ascii=False) + "\n"

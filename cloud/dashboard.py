"""Server-rendered operator dashboard: jobs, rounds, traffic, durations and reported accuracy."""

from __future__ import annotations

from html import escape

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from cloud.db import DeviceReport, Job, Round


def _chart(points: list[tuple[int, float | None]], bars: list[tuple[int, int]], width=640, height=200) -> str:
    """An inline SVG: participants as bars, mean reported accuracy as a line (0..1)."""
    if not bars:
        return "<p>No rounds yet.</p>"
    n = len(bars)
    step = width / n
    top = max(c for _, c in bars) or 1
    parts = [f'<svg width="{width}" height="{height + 20}" role="img" aria-label="rounds chart">']
    for i, (number, count) in enumerate(bars):
        h = height * count / top
        parts.append(f'<rect x="{i * step + 2:.1f}" y="{height - h:.1f}" width="{max(step - 4, 1):.1f}" '
                     f'height="{h:.1f}" fill="#9ecae1"><title>round {number}: {count} devices</title></rect>')
    line = [(i * step + step / 2, height * (1 - acc)) for i, (_, acc) in enumerate(points) if acc is not None]
    if line:
        parts.append('<polyline fill="none" stroke="#d62728" stroke-width="2" points="'
                     + " ".join(f"{x:.1f},{y:.1f}" for x, y in line) + '"/>')
    parts.append(f'<text x="0" y="{height + 15}" font-size="11">bars: devices per round (max {top}); '
                 'red line: mean accuracy devices reported (0-1)</text></svg>')
    return "".join(parts)


def render(db: Session) -> str:
    sections = []
    for job in db.scalars(select(Job).order_by(Job.created_at)).all():
        rounds = db.scalars(select(Round).where(Round.job_id == job.id).order_by(Round.id)).all()
        accuracy = dict(db.execute(
            select(DeviceReport.round_id, func.avg(DeviceReport.accuracy))
            .join(Round, Round.id == DeviceReport.round_id).where(Round.job_id == job.id)
            .group_by(DeviceReport.round_id)).all())
        rows = []
        for r in rounds:
            end = r.published_at or r.closed_at
            duration = f"{(end - r.opened_at).total_seconds():.1f}" if end else ""
            acc = accuracy.get(r.id)
            rows.append(
                f"<tr><td>{r.number}</td><td>{escape(r.status)}</td><td>v{r.model_version}</td>"
                f"<td>{r.contributors}</td><td>{r.bytes_in}</td><td>{r.bytes_out}</td><td>{duration}</td>"
                f"<td>{'' if acc is None else f'{acc:.3f}'}</td><td>{escape(r.error or '')}</td></tr>")
        chart = _chart([(r.number, accuracy.get(r.id)) for r in rounds], [(r.number, r.contributors) for r in rounds])
        sections.append(
            f"<h2>{escape(job.name)} <small>({escape(job.id)}, {escape(job.status)}, model v{job.current_version})</small></h2>"
            f"{chart}<table><tr><th>round</th><th>status</th><th>model</th><th>devices</th><th>bytes in</th>"
            f"<th>bytes out</th><th>seconds</th><th>reported accuracy</th><th>note</th></tr>{''.join(rows)}</table>")
    body = "".join(sections) or "<p>No jobs yet.</p>"
    return (
        "<!doctype html><html><head><meta charset='utf-8'><title>FedWear dashboard</title>"
        "<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}"
        "td,th{border:1px solid #ccc;padding:2px 8px;text-align:right}</style></head>"
        f"<body><h1>FedWear aggregation service</h1>{body}</body></html>"
    )

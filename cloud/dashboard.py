"""The operator dashboard: server-rendered HTML, refreshed by a small script that polls the admin API.

`/dashboard` lists the jobs; `/dashboard?job=ID` shows one: its open round's
progress, accuracy and devices-per-round charts, round history (paginated),
devices and tokens, model versions and events. A banner shows the health of
the database and the key service.
"""

from __future__ import annotations

import math
from html import escape

from sqlalchemy.orm import Session

from cloud import overview
from cloud.db import Job

PER_PAGE = 20
WIDTH, HEIGHT, LEFT, BOTTOM, TOP, RIGHT = 540, 230, 56, 44, 26, 16

STYLE = """
body{font-family:system-ui,sans-serif;margin:0;color:#222;background:#f6f7f9}
header{background:#1f3a5f;color:#fff;padding:10px 24px}header a{color:#fff}header .muted{color:#c9d3e0}
main{padding:12px 24px}section{background:#fff;border:1px solid #dde;border-radius:6px;padding:10px 16px;margin:12px 0}
h1{font-size:20px;margin:0}h2{font-size:16px;margin:4px 0 8px}
table{border-collapse:collapse;font-size:13px}td,th{border-bottom:1px solid #e4e4ea;padding:3px 10px;text-align:left}
th{background:#f0f1f5}.num{text-align:right}.muted{color:#777}
#health{padding:6px 24px;font-size:14px}#health.ok{background:#e3f4e6}#health.bad{background:#fbe0df}
#health.unknown{background:#eee}.bar{position:relative;width:320px;height:18px;background:#eef;border:1px solid #99b}
.fill{height:100%;background:#4a7fc1}.min{position:absolute;top:-3px;bottom:-3px;width:2px;background:#c33}
.charts{display:flex;flex-wrap:wrap;gap:16px}.status-running{color:#176}.status-aborted,.status-failed{color:#b22}
.empty{padding:30px;color:#777;border:1px dashed #ccd;width:480px;text-align:center}
"""

SCRIPT = """
const root = document.querySelector('main');
const jobId = root.dataset.job;
function countdown() {
  document.querySelectorAll('[data-deadline]').forEach(el => {
    const s = Math.max(0, Math.round((Date.parse(el.dataset.deadline) - Date.now()) / 1000));
    el.textContent = s > 0 ? `${Math.floor(s / 60)} min ${s % 60} s left` : 'deadline passed';
  });
}
async function health() {
  const banner = document.getElementById('health');
  try {
    const body = await (await fetch('/healthz')).json();
    const ok = body.database === 'ok' && body.keyservice === 'ok';
    banner.className = ok ? 'ok' : 'bad';
    banner.textContent = `database: ${body.database} · key service: ${body.keyservice}`;
  } catch (e) { banner.className = 'bad'; banner.textContent = 'aggregation service unreachable'; }
}
async function poll() {
  try {
    const body = await (await fetch('/admin/jobs')).json();
    const jobs = jobId ? body.jobs.filter(j => j.id === jobId) : body.jobs;
    const signature = JSON.stringify(jobs.map(j => [j.id, j.status, j.rounds_published, j.rounds_failed,
      j.devices, j.open_round && [j.open_round.number, j.open_round.status, j.open_round.contributors,
      j.open_round.extensions]]));
    if (root.dataset.signature && signature !== root.dataset.signature) {
      const page = new DOMParser().parseFromString(await (await fetch(location.href)).text(), 'text/html');
      root.innerHTML = page.querySelector('main').innerHTML;
      countdown();
    }
    root.dataset.signature = signature;
    document.getElementById('updated').textContent = 'updated ' + new Date().toLocaleTimeString();
  } catch (e) { document.getElementById('updated').textContent = 'update failed: ' + e; }
}
countdown(); health(); poll();
setInterval(countdown, 1000); setInterval(health, 5000); setInterval(poll, 2000);
"""


def _ticks(top: float, count: int = 4, whole: bool = False) -> list[float]:
    """Round tick values from 0 to at least `top` (whole numbers only when `whole`)."""
    if top <= 0:
        return [0.0, 1.0]
    step = 10 ** math.floor(math.log10(top / count))
    step = next(s * step for s in (1, 2, 2.5, 5, 10) if top / (s * step) <= count)
    if whole:
        step = max(1, math.ceil(step))
    return [i * step for i in range(int(math.ceil(top / step - 1e-9)) + 1)]


def chart(title: str, points: list[tuple[int, float]], y_label: str, y_top: float | None = None,
          bars: bool = False, fmt: str = "{:g}", element_id: str = "") -> str:
    """An SVG chart of (round number, value) with labelled axes; a message instead when there is no point.

    Bars are counts (whole-number ticks); otherwise a line through the points, each drawn."""
    if not points:
        return f'<div class="empty" id="{element_id}">{escape(title)}: no data yet</div>'
    rounds = [r for r, _ in points]
    first, last = min(rounds), max(rounds)
    y_ticks = _ticks(y_top if y_top is not None else max(v for _, v in points), whole=bars)
    top = y_ticks[-1]
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    span = max(last - first, 1)
    slot = plot_w / (span + 1)

    def x(r: int) -> float:
        return LEFT + slot / 2 + (r - first) * (plot_w - slot) / span if last > first else LEFT + plot_w / 2

    def y(v: float) -> float:
        return TOP + plot_h * (1 - v / top)

    parts = [f'<svg id="{element_id}" width="{WIDTH}" height="{HEIGHT}" role="img" aria-label="{escape(title)}">',
             f'<text x="{LEFT}" y="14" font-size="13" font-weight="bold">{escape(title)}</text>',
             f'<line x1="{LEFT}" y1="{TOP + plot_h}" x2="{LEFT + plot_w}" y2="{TOP + plot_h}" stroke="#333"/>',
             f'<line x1="{LEFT}" y1="{TOP}" x2="{LEFT}" y2="{TOP + plot_h}" stroke="#333"/>']
    for v in y_ticks:
        parts.append(f'<line x1="{LEFT - 4}" y1="{y(v):.1f}" x2="{LEFT + plot_w}" y2="{y(v):.1f}" stroke="#e5e5e5"/>'
                     f'<text x="{LEFT - 7}" y="{y(v) + 4:.1f}" font-size="11" text-anchor="end">{fmt.format(v)}</text>')
    for r in sorted(set(_int_ticks(first, last))):
        parts.append(f'<line x1="{x(r):.1f}" y1="{TOP + plot_h}" x2="{x(r):.1f}" y2="{TOP + plot_h + 4}" stroke="#333"/>'
                     f'<text x="{x(r):.1f}" y="{TOP + plot_h + 16}" font-size="11" text-anchor="middle">{r}</text>')
    parts.append(f'<text x="{LEFT + plot_w / 2}" y="{HEIGHT - 6}" font-size="12" text-anchor="middle">round</text>'
                 f'<text transform="translate(13,{TOP + plot_h / 2}) rotate(-90)" font-size="12" '
                 f'text-anchor="middle">{escape(y_label)}</text>')
    if bars:
        width = max(min(slot * 0.7, 40), 2)
        parts += [f'<rect class="point" x="{x(r) - width / 2:.1f}" y="{y(v):.1f}" width="{width:.1f}" '
                  f'height="{TOP + plot_h - y(v):.1f}" fill="#4a7fc1"><title>round {r}: {fmt.format(v)}</title></rect>'
                  for r, v in points]
    else:
        if len(points) > 1:
            parts.append('<polyline fill="none" stroke="#d62728" stroke-width="2" points="'
                         + " ".join(f"{x(r):.1f},{y(v):.1f}" for r, v in points) + '"/>')
        parts += [f'<circle class="point" cx="{x(r):.1f}" cy="{y(v):.1f}" r="3.5" fill="#d62728">'
                  f'<title>round {r}: {fmt.format(v)}</title></circle>' for r, v in points]
    return "".join(parts) + "</svg>"


def _int_ticks(first: int, last: int, count: int = 8) -> list[int]:
    step = max(1, math.ceil((last - first + 1) / count))
    return list(range(first, last + 1, step))


def _when(text: str | None) -> str:
    return "-" if text is None else escape(text.replace("T", " ")[:19])


def _table(headers: list[str], rows: list[list[str]], empty: str, element_id: str) -> str:
    if not rows:
        return f'<p class="muted" id="{element_id}">{escape(empty)}</p>'
    head = "".join(f"<th>{escape(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{cell}</td>" for cell in row) + "</tr>" for row in rows)
    return f'<table id="{element_id}"><tr>{head}</tr>{body}</table>'


def _progress(p: dict | None) -> str:
    if p is None:
        return "<p>No round yet.</p>"
    head = f"<p>Round {p['number']}: <b>{escape(p['status'])}</b>, model v{p['model_version']}"
    if p["status"] != "open":
        return head + (f" ({escape(p['error'])})" if p["error"] else "") + "</p>"
    scale = p["max_devices"]
    return (head + f", opened {_when(p['opened_at'])} UTC</p>"
            f'<div class="bar" title="contributors"><div class="fill" style="width:{100 * p["contributors"] / scale:.1f}%">'
            f'</div><div class="min" style="left:{100 * p["min_devices"] / scale:.1f}%" title="minimum"></div></div>'
            f'<p id="contributors">{p["contributors"]} contributors; minimum {p["min_devices"]}, '
            f'maximum {p["max_devices"]} (the round closes at the maximum, or at the deadline with the minimum)</p>'
            f'<p>Deadline {_when(p["deadline"])} UTC: <b data-deadline="{escape(p["deadline"])}">'
            f'{p["seconds_left"]:.0f} s left</b>; extensions {p["extensions"]} of {p["max_extensions"]}</p>')


def _jobs_page(db: Session) -> str:
    rows = []
    for j in overview.jobs(db):
        p = j["open_round"]
        progress = "-" if p is None else (f"round {p['number']} {escape(p['status'])}: "
                                          f"{p['contributors']} of {p['min_devices']}-{p['max_devices']}")
        rows.append([f'<a href="?job={escape(j["id"])}">{escape(j["name"])}</a> <span class="muted">{escape(j["id"])}</span>',
                     f'<span class="status-{escape(j["status"])}">{escape(j["status"])}</span> '
                     f'<span class="muted">{escape(j["status_reason"])}</span>',
                     f"v{j['model_version']}", f'{j["rounds_published"]}', f'{j["rounds_failed"]}', progress,
                     f'{j["devices"]}', _when(j["created_at"])])
    table = _table(["job", "status", "model", "rounds published", "failed", "open round", "devices", "created (UTC)"],
                   rows, "No jobs yet: create one with `python -m cloud admin create-job`.", "jobs")
    return f'<main data-job=""><section><h2>Jobs</h2>{table}</section></main>'


def _pager(job: Job, page: dict) -> str:
    links = []
    for number in range(1, page["pages"] + 1):
        if number == page["page"]:
            links.append(f"<b>{number}</b>")
        elif number <= 2 or number > page["pages"] - 2 or abs(number - page["page"]) <= 2:
            links.append(f'<a href="?job={escape(job.id)}&page={number}">{number}</a>')
        elif links[-1] != "…":
            links.append("…")
    rounds = "1 round" if page["total"] == 1 else f'{page["total"]} rounds'
    return f'<p class="pager">{rounds}, newest first; page {" ".join(links)}</p>'


def _privacy(budget: dict | None) -> str:
    """The job's differential-privacy line: epsilon spent so far and at the end, at its delta."""
    if budget is None:
        return '<p id="privacy" class="muted">No differential privacy: published models are not noised.</p>'
    return (f'<p id="privacy">Differential privacy: epsilon <b>{budget["epsilon"]:.2f}</b> spent over '
            f'{budget["released_rounds"]} released rounds ({budget["epsilon_planned"]:.2f} after all rounds) at '
            f'delta {budget["delta"]:g}; clip norm {budget["clip_norm"]:g}, noise multiplier '
            f'{budget["noise_multiplier"]:.3g}, as long as min_devices devices per round are honest.</p>')


def _job_page(db: Session, job: Job, page_number: int) -> str:
    brief = overview.job_brief(db, job)
    series = overview.chart_series(db, job)
    accuracy = [(s["number"], s["accuracy"]) for s in series if s["accuracy"] is not None]
    devices = [(s["number"], s["contributors"]) for s in series]
    devices = devices if any(count for _, count in devices) else []
    page = overview.rounds_page(db, job, min(page_number, 1_000_000), PER_PAGE)
    history = _table(
        ["round", "status", "model", "devices", "opened (UTC)", "deadline", "ext.", "closed", "published",
         "seconds", "reported accuracy", "note"],
        [[str(r["number"]), escape(r["status"]), f"v{r['model_version']}", str(r["contributors"]), _when(r["opened_at"]),
          _when(r["deadline"]), str(r["extensions"]), _when(r["closed_at"]), _when(r["published_at"]),
          "" if r["seconds"] is None else f"{r['seconds']:.1f}",
          "" if r["reported_accuracy"] is None else f"{r['reported_accuracy']:.3f}", escape(r["error"] or "")]
         for r in page["rounds"]], "No rounds yet.", "history")
    device_table = _table(
        ["device", "name", "enrolled (UTC)", "last seen", "rounds contributed", "revoked"],
        [[escape(d["id"]), escape(d["name"]), _when(d["enrolled_at"]), _when(d["last_seen"]),
          str(d["rounds_contributed"]), "revoked" if d["revoked"] else ""] for d in overview.devices(db, job)],
        "No devices enrolled yet.", "devices")
    token_table = _table(
        ["token", "uses", "expires (UTC)", "state"],
        [[escape(t["id"]), f"{t['uses']} of {t['max_uses'] or 'unlimited'}", _when(t["expires_at"]),
          "revoked" if t["revoked"] else "expired" if t["expired"] else "valid"] for t in overview.tokens(db, job)],
        "No enrolment tokens.", "tokens")
    version_table = _table(
        ["version", "from round", "published (UTC)", "weights"],
        [[f"v{v['version']}", "-" if v["round"] is None else str(v["round"]), _when(v["created_at"]),
          f'<a href="/admin/jobs/{escape(job.id)}/weights/{v["version"]}">download</a> '
          f'<span class="muted">sha256 {v["weights_sha256"][:12]}</span>'] for v in overview.versions(db, job)],
        "No model versions.", "versions")
    events = "".join(f"<li>{_when(e['at'])} <b>{escape(e['kind'])}</b>"
                     + (f" (round {e['round']})" if e["round"] else "")
                     + (f": {escape(e['reason'])}" if e["reason"] else "") + "</li>" for e in overview.events(db, job))
    return (
        f'<main data-job="{escape(job.id)}"><p><a href="?">all jobs</a></p>'
        f'<section><h2>{escape(job.name)} <span class="muted">{escape(job.id)}</span></h2>'
        f'<p id="job-status">Status: <b class="status-{escape(job.status)}">{escape(job.status)}</b>'
        f'{" (" + escape(brief["status_reason"]) + ")" if brief["status_reason"] else ""}; model v{job.current_version}; {brief["rounds_published"]} of '
        f'{job.config["rounds"]} rounds published, {brief["rounds_failed"]} failed, {brief["rounds_extended"]} '
        f'extended; {brief["devices"]} devices</p>{_privacy(overview.privacy(db, job))}</section>'
        f'<section id="progress"><h2>Current round</h2>{_progress(brief["open_round"])}</section>'
        f'<section><h2>Rounds</h2><div class="charts">'
        + chart("Mean accuracy reported by devices", accuracy, "accuracy (fraction correct)", 1.0,
                fmt="{:.2f}", element_id="accuracy-chart")
        + chart("Devices per round", devices, "devices contributing", bars=True, element_id="devices-chart")
        + f'</div>{_pager(job, page)}{history}</section>'
        f'<section><h2>Devices</h2>{device_table}<h2>Enrolment tokens</h2>{token_table}</section>'
        f'<section><h2>Model versions</h2>{version_table}</section>'
        f'<section><h2>Events</h2><ul id="events">{events}</ul></section></main>')


def render(db: Session, args) -> str:
    """The page for the query arguments: `job` (one job) and `page` (of its round history)."""
    job_id = args.get("job", "")
    job = db.get(Job, job_id) if job_id else None
    page = args.get("page", "1")
    if job_id and job is None:
        main = f'<main data-job=""><section><p>No job {escape(job_id)}. <a href="?">All jobs</a></p></section></main>'
    elif job is not None:
        main = _job_page(db, job, int(page) if page.isdigit() and int(page) > 0 else 1)
    else:
        main = _jobs_page(db)
    return (
        "<!doctype html><html><head><meta charset='utf-8'><title>FedWear dashboard</title>"
        f"<style>{STYLE}</style></head><body><header><h1><a href='/dashboard'>FedWear</a> aggregation service</h1>"
        "<span id='updated' class='muted'></span></header><div id='health' class='unknown'>checking health…</div>"
        f"{main}<script>{SCRIPT}</script></body></html>"
    )

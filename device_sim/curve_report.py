"""The label-efficiency curve's outputs: curve.json, curve.md (the table) and curve.png."""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

POINTS = ("k0", "k1", "k2", "k3", "kall")
LINES = (("personalised", "personalised (k)", "tab:green"), ("personal_head", "personal head alone (k)", "tab:olive"),
         ("local_only", "local-only (k)", "tab:grey"), ("global", "global", "tab:blue"))


def _cell(summary: dict, model: str) -> str:
    value = summary.get(model)
    if value is None:
        return "-"
    low, high = summary["ci95"][model]
    return f"{value:.3f} [{low:.3f}, {high:.3f}]"


def _gain(summary: dict, name: str) -> str:
    if name not in summary:
        return "-"
    low, high = summary["ci95"][name]
    return f"{100 * summary[name]:+.1f} [{100 * low:+.1f}, {100 * high:+.1f}]"


def table(curve: dict) -> str:
    """The markdown table: accuracy with 95% intervals over subjects, gains in points, shares of runs."""
    lines = ["| labelled executions | local-only | personalised | personal head alone | global "
             "| pers. - local (pts) | pers. - global (pts) | runs > 2 / > 5 pts below global |",
             "|---|---|---|---|---|---|---|---|"]
    rows = [(f"new wearer, k = {p[1:]}", curve["new_wearer"][p]) for p in POINTS if p in curve["new_wearer"]]
    rows.append(("within-subject, all", curve["within"]["all"]))
    for name, s in rows:
        shares = (f"{100 * s['worse_than_global_2pts']:.0f}% / {100 * s['worse_than_global_5pts']:.0f}%"
                  if "worse_than_global_2pts" in s else "-")
        lines.append(f"| {name} | {_cell(s, 'local_only')} | {_cell(s, 'personalised')} | {_cell(s, 'personal_head')} "
                     f"| {_cell(s, 'global')} | {_gain(s, 'personalised_minus_local_only')} "
                     f"| {_gain(s, 'personalised_minus_global')} | {shares} |")
    within = curve["within"]["all"]
    lines += ["", f"Within-subject centralised: {_cell(within, 'centralised')}; global - centralised "
              f"{_gain(within, 'global_minus_centralised')} points."]
    return "\n".join(lines) + "\n"


def plot(curve: dict, path: Path) -> None:
    """Accuracy against labelled executions, with 95% bands; decoded solid, without decoding dashed."""
    fig, ax = plt.subplots(figsize=(8, 4.8))
    for variant, style, alpha in ((curve, "-", 1.0), (curve["without_decoding"], "--", 0.5)):
        nw = variant["new_wearer"]
        for model, label, colour in LINES:
            xs = [i for i, p in enumerate(POINTS) if p in nw and (model == "global" or model in nw[p])
                  and (p != "k0" or model == "global")]
            if not xs:
                continue
            points = [POINTS[i] for i in xs]
            ys = [nw[p][model] for p in points]
            if model == "global":
                xs, ys, points = [0, len(POINTS) - 1], [nw["k0"]["global"]] * 2, ["k0", "k0"]
            ax.plot(xs, ys, style, marker="o", color=colour, alpha=alpha,
                    label=f"{label}{'' if variant is curve else ', no decoding'}")
            if variant is curve:
                low = [nw[p]["ci95"][model][0] for p in points]
                high = [nw[p]["ci95"][model][1] for p in points]
                ax.fill_between(xs, low, high, color=colour, alpha=0.12)
    ax.set_xticks(range(len(POINTS)), ["0", "1", "2", "3", "all"])
    ax.set_xlabel("labelled executions of the new wearer (k)")
    ax.set_ylabel("accuracy on the wearer's later executions")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="lower right", ncol=2)
    seeds = len(curve["seeds"])
    ax.set_title(f"Label efficiency: {curve['new_wearer']['k0']['subjects']} new wearers x {seeds} seed(s), "
                 "95% bootstrap bands over subjects", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write(curve: dict, out: Path) -> Path:
    """Writes curve.json, curve.md and curve.png into ``out``; returns curve.json's path."""
    out.mkdir(parents=True, exist_ok=True)
    path = out / "curve.json"
    path.write_text(json.dumps(curve, indent=2))
    (out / "curve.md").write_text(table(curve) + "\nDecoded (activity-sequence decoding on both sides of every "
                                  "comparison). Without decoding:\n\n" + table(curve["without_decoding"]))
    plot(curve, out / "curve.png")
    return path

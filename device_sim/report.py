"""A fleet run's report: report.json, report.md, PNG plots and a terminal summary."""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib

from device_sim.dataset import NEAR_TIE_SHARE

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.patches import Patch  # noqa: E402

KINDS = ("local_only", "global", "personalised", "centralised")
TABLE_KINDS = KINDS[:3] + ("personal_head",) + KINDS[3:]  # the personal head alone: a reference for the blend
CREDIT = ("sp-sw-har: Matey-Sanz, Casteleyn and Granell, Data in Brief 51 (2023) 109809, "
          "doi:10.5281/zenodo.8398688, CC BY 4.0.")


REFERENCES = (("local_only", "local-only", ":", "tab:grey"), ("centralised", "centralised", "--", "tab:purple"),
              ("personalised", "personalised", "-.", "tab:green"))


def _spread(values: list[float], gap: float) -> list[float]:
    """Label positions near `values` (in their order) at least `gap` apart."""
    order = sorted(range(len(values)), key=lambda i: values[i])
    placed = [0.0] * len(values)
    last = -float("inf")
    for i in order:
        placed[i] = last = max(values[i], last + gap)
    return placed


def _plot_rounds(report: dict, path: Path) -> dict:
    """Global accuracy per round; the final models' means as reference lines, labelled with their values on a
    y axis zoomed to the data, so that lines a point apart stay apart."""
    rounds = report["rounds"]
    numbers, accuracy = [r["round"] for r in rounds], [r["global_accuracy"] for r in rounds]
    references = [(label, style, colour, report["mean"][kind]) for kind, label, style, colour in REFERENCES
                  if report["mean"].get(kind) is not None]
    values = accuracy + [v for *_, v in references]
    low, high = min(values), max(values)
    margin = max(0.02, 0.08 * (high - low))
    fig, ax = plt.subplots(figsize=(8, 4.5))
    ax.plot(numbers, accuracy, marker="o", color="tab:blue", label="global (federated), per round")
    for label, style, colour, value in references:
        ax.axhline(value, linestyle=style, color=colour, linewidth=1.6, label=f"{label} (final) {value:.3f}")
    ax.set_ylim(max(0.0, low - margin), min(1.0, high + margin))
    bottom, top = ax.get_ylim()
    positions = _spread([v for *_, v in references], (top - bottom) * 0.06)
    for (label, _, colour, value), y in zip(references, positions):
        moved = abs(y - value) > 1e-9
        ax.annotate(f"{label} {value:.3f}", xy=(1.0, value), xycoords=("axes fraction", "data"),
                    xytext=(1.02, y), textcoords=("axes fraction", "data"), va="center", color=colour, fontsize=9,
                    annotation_clip=False, arrowprops={"arrowstyle": "-", "color": colour, "lw": 0.8} if moved else None)
    ax.set_xlabel("round")
    ax.set_ylabel("mean accuracy over devices' test executions")
    if len(numbers) <= 15:
        ax.set_xticks(numbers)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    ax.set_title(f"{report['dataset']}: accuracy per round (y axis from {bottom:.2f})")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return {"ylim": (bottom, top), "labels": {label: y for (label, *_), y in zip(references, positions)}}


def _plot_devices(report: dict, path: Path) -> dict:
    """Accuracy per training device (four models) and per new user (global, then personalised)."""
    devices = sorted(report["per_device"])
    newcomers = sorted(report["new_users"].get("per_device", {}))
    colours = dict(zip(KINDS, ("tab:grey", "tab:blue", "tab:green", "tab:purple")))
    fig, ax = plt.subplots(figsize=(max(8, 0.6 * (len(devices) + len(newcomers)) + 3), 4.8))
    width = 0.2
    values = []
    for i, kind in enumerate(KINDS):
        heights = [report["per_device"][name][kind]["accuracy"] for name in devices]
        values += heights
        ax.bar([d + (i - 1.5) * width for d in range(len(devices))], heights, width, color=colours[kind],
               label=kind.replace("_", "-"))
    start = len(devices) + 0.5
    for j, kind in enumerate(("global", "personalised")):
        heights = [report["new_users"]["per_device"][name][kind]["accuracy"] for name in newcomers]
        values += heights
        ax.bar([start + n + (j - 0.5) * width for n in range(len(newcomers))], heights, width, color=colours[kind],
               hatch="//", edgecolor="white")
    labels = [report["per_device"][d]["subject"] for d in devices]
    labels += [f"{report['new_users']['per_device'][n]['subject']}\n(new)" for n in newcomers]
    ax.set_xticks(list(range(len(devices))) + [start + n for n in range(len(newcomers))], labels, rotation=60)
    handles, _ = ax.get_legend_handles_labels()
    if newcomers:
        ax.axvline(len(devices) - 0.25, color="black", linewidth=0.8)
        handles.append(Patch(facecolor="white", edgecolor="black", hatch="//",
                             label="new users (hatched): global, then personalised"))
    ax.set_ylim(max(0.0, min(values, default=0) - 0.05) // 0.1 * 0.1, 1.0)
    ax.set_xlabel("subject (training devices, then new users who never trained)")
    ax.set_ylabel("accuracy on the device's test executions")
    ax.grid(axis="y", alpha=0.3)
    legend = ax.legend(handles=handles, ncol=5, fontsize=8, loc="lower center", bbox_to_anchor=(0.5, 1.01),
                       frameon=False)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    renderer = fig.canvas.get_renderer()
    facts = {"ticks": [t.get_text() for t in ax.get_xticklabels()], "ylim": ax.get_ylim(), "xlabel": ax.get_xlabel(),
             "legend_clear_of_bars": legend.get_window_extent(renderer).y0 >= ax.get_window_extent(renderer).y1}
    plt.close(fig)
    return facts


SUBSETS = {
    "at_label_change": "at a label change (their label differs from the previous or next window's)",
    "near_tie": f"near ties (their label covers under {NEAR_TIE_SHARE:.0%} of their samples)",
}


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def privacy_line(report: dict) -> str | None:
    """The run's differential privacy: epsilon spent at its delta and the noise that bought it."""
    dp = report.get("privacy")
    if dp is None:
        return None
    return (f"Differential privacy: epsilon {dp['epsilon']:.2f} at delta {dp['delta']:g} over {dp['released_rounds']} "
            f"released rounds (RDP, no amplification by sampling); clip norm {dp['clip_norm']:g}, noise multiplier "
            f"{dp['noise_multiplier']:.3g}, each device's share of the noise assuming {dp['min_devices']} honest "
            "devices per round.")


def _name(kind: str) -> str:
    return "personal head alone" if kind == "personal_head" else kind.replace("_", "-")


def _markdown(report: dict) -> str:
    mean, f1, decoded = report["mean"], report["mean_macro_f1"], report.get("decoded")
    kinds = [k for k in TABLE_KINDS if k in mean]
    weight = report.get("personal_weight", {}).get("training_devices")
    lines = [f"# FedWear fleet report: {report['dataset']}", "",
             f"{report['devices']} training devices, {len(report['rounds'])} rounds, engine {report['engine']}; "
             f"new users: {', '.join(report['new_user_subjects']) or 'none'}.", "",
             "Accuracy and macro-F1 are means over the training devices (each scored on its own test executions). "
             "Personalised is what a device uses: the personal head or, where its labelled windows come from "
             "recordings in time order, the blend of the global and personal heads that they chose"
             + ("" if weight is None else f" (mean personal weight {weight:.2f})") + "."]
    if decoded:
        lines += ["Decoded: activity-sequence decoding with the federation's transition table, as devices do by "
                  "default, applied to every model.", "",
                  "| model | decoded accuracy | decoded macro-F1 | accuracy | macro-F1 |", "|---|---|---|---|---|"]
        lines += [f"| {_name(k)} | {_fmt(decoded['mean'][k])} | {_fmt(decoded['mean_macro_f1'][k])} | "
                  f"{_fmt(mean[k])} | {_fmt(f1[k])} |" for k in kinds]
    else:
        lines += ["", "| model | mean accuracy | mean macro-F1 |", "|---|---|---|"]
        lines += [f"| {_name(k)} | {_fmt(mean[k])} | {_fmt(f1[k])} |" for k in kinds]
    if dp := privacy_line(report):
        lines += ["", dp]
    for name, subset in report["subsets"].items():
        lines += ["", f"{subset['share_of_test_windows']:.0%} of the test windows are {SUBSETS[name]}; accuracy "
                  "on them and on the rest (undecoded):", "", "| model | on them | on the rest |", "|---|---|---|"]
        lines += [f"| {k.replace('_', '-')} | {_fmt(subset['inside'][k])} | {_fmt(subset['outside'][k])} |"
                  for k in KINDS]
    nu = report["new_users"]
    if nu["global"] is not None:
        lines += ["", f"New users (never trained on): global {nu['global']:.3f}, after personalising on "
                  f"{nu['executions_used']} execution(s) {nu['personalised']:.3f}"
                  + (f"; decoded {decoded['new_users']['global']:.3f} -> {decoded['new_users']['personalised']:.3f}"
                     if decoded else "") + "."]
    lines += ["", "## Rounds", "", "Global accuracy is the mean over devices; seconds is the round's wall time; "
              "training s, crypto s and KB up are fleet totals, summed over the round's devices.", "",
              "| round | devices | global accuracy (device mean) | seconds (wall) | training s (fleet total) "
              "| crypto s (fleet total) | KB up (fleet total) | events |", "|---|---|---|---|---|---|---|---|"]
    for r in report["rounds"]:
        up = sum(r.get("bytes_up", {}).values()) / 1024
        lines.append(f"| {r['round']} | {len(r['participants'])} | {r['global_accuracy']:.3f} | {r['seconds']} | "
                     f"{r['train_s']} | {r['crypto_s']} | {up:.0f} | {'; '.join(r.get('events', []))} |")
    lines += ["", "## Devices", "", "Accuracy of each device on its own test executions (undecoded).", "",
              "| device | local-only | global | personalised | centralised |", "|---|---|---|---|---|"]
    for name, row in sorted(report["per_device"].items()):
        lines.append(f"| {name} | " + " | ".join(f"{row[k]['accuracy']:.3f}" for k in KINDS) + " |")
    lines += ["", "![accuracy per round](accuracy_per_round.png)", "", "![per device](per_device.png)"]
    if report["dataset"] == "sp-sw-har":
        lines += ["", "Data: " + CREDIT]
    return "\n".join(lines) + "\n"


def write_report(report: dict, out_dir: Path) -> Path:
    """Writes report.json, report.md and the plots; returns the report.md path."""
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "report.json").write_text(json.dumps(report, indent=2))
    _plot_rounds(report, out_dir / "accuracy_per_round.png")
    _plot_devices(report, out_dir / "per_device.png")
    path = out_dir / "report.md"
    path.write_text(_markdown(report))
    return path


def summary_lines(report: dict) -> list[str]:
    mean, nu, decoded = report["mean"], report["new_users"], report.get("decoded")

    def also_decoded(value: float | None) -> str:
        return "" if value is None else f" (decoded {value:.3f})"

    lines = [f"{k.replace('_', '-'):>13}: {_fmt(mean[k])}" + also_decoded(decoded and decoded["mean"][k])
             for k in TABLE_KINDS if k in mean]
    if nu["global"] is not None:
        lines.append(f"{'new users':>13}: global {nu['global']:.3f} -> personalised {nu['personalised']:.3f}"
                     + (f" (decoded {decoded['new_users']['global']:.3f} -> {decoded['new_users']['personalised']:.3f})"
                        if decoded else ""))
    if report.get("privacy"):
        dp = report["privacy"]
        lines.append(f"{'privacy':>13}: epsilon {dp['epsilon']:.2f} at delta {dp['delta']:g} "
                     f"(noise multiplier {dp['noise_multiplier']:.3g}, clip norm {dp['clip_norm']:g})")
    if "int8" in report:
        q = report["int8"]
        lines.append(f"{'int8 global':>13}: {q['accuracy']['int8']:.3f} (float {q['accuracy']['float']:.3f}), "
                     f"{q['int8_ms_per_window']:.3f} ms per window (float {q['float_ms_per_window']:.3f}), "
                     f"{q['int8_kb']:.0f} KB")
    return lines

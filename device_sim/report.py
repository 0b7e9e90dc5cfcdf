"""A fleet run's report: report.json, report.md, PNG plots and a terminal summary."""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib

from device_sim.dataset import NEAR_TIE_SHARE

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

KINDS = ("local_only", "global", "personalised", "centralised")
CREDIT = ("sp-sw-har: Matey-Sanz, Casteleyn and Granell, Data in Brief 51 (2023) 109809, "
          "doi:10.5281/zenodo.8398688, CC BY 4.0.")


def _plot_rounds(report: dict, path: Path) -> None:
    rounds = report["rounds"]
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.plot([r["round"] for r in rounds], [r["global_accuracy"] for r in rounds], marker="o", label="global (federated)")
    for kind, style in (("local_only", ":"), ("centralised", "--"), ("personalised", "-.")):
        ax.axhline(report["mean"][kind], linestyle=style, color="grey" if kind != "personalised" else "tab:green",
                   label=f"{kind.replace('_', '-')} (final)")
    ax.set_xlabel("round")
    ax.set_ylabel("mean accuracy on devices' test executions")
    ax.set_ylim(0, 1)
    ax.legend(loc="lower right")
    ax.set_title(f"{report['dataset']}: accuracy per round")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _plot_devices(report: dict, path: Path) -> None:
    devices = sorted(report["per_device"])
    fig, ax = plt.subplots(figsize=(max(7, 0.5 * len(devices) + 2), 4))
    width = 0.2
    for i, kind in enumerate(KINDS):
        ax.bar([d + (i - 1.5) * width for d in range(len(devices))],
               [report["per_device"][name][kind]["accuracy"] for name in devices], width, label=kind.replace("_", "-"))
    ax.set_xticks(range(len(devices)), [report["per_device"][d]["subject"] for d in devices], rotation=60)
    ax.set_ylim(0, 1)
    ax.set_ylabel("accuracy")
    ax.legend(ncol=4, fontsize=8, loc="lower center")
    ax.set_title("per device")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


SUBSETS = {
    "at_label_change": "at a label change (their label differs from the previous or next window's)",
    "near_tie": f"near ties (their label covers under {NEAR_TIE_SHARE:.0%} of their samples)",
}


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def _markdown(report: dict) -> str:
    mean, f1 = report["mean"], report["mean_macro_f1"]
    lines = [f"# FedWear fleet report: {report['dataset']}", "",
             f"{report['devices']} training devices, {len(report['rounds'])} rounds, engine {report['engine']}; "
             f"new users: {', '.join(report['new_user_subjects']) or 'none'}.", "",
             "| model | mean accuracy | mean macro-F1 |", "|---|---|---|"]
    lines += [f"| {k.replace('_', '-')} | {mean[k]:.3f} | {f1[k]:.3f} |" for k in KINDS]
    for name, subset in report["subsets"].items():
        lines += ["", f"{subset['share_of_test_windows']:.0%} of the test windows are {SUBSETS[name]}; accuracy "
                  "on them and on the rest:", "", "| model | on them | on the rest |", "|---|---|---|"]
        lines += [f"| {k.replace('_', '-')} | {_fmt(subset['inside'][k])} | {_fmt(subset['outside'][k])} |"
                  for k in KINDS]
    nu = report["new_users"]
    if nu["global"] is not None:
        lines += ["", f"New users (never trained on): global {nu['global']:.3f}, after personalising on "
                  f"{nu['executions_used']} execution(s) {nu['personalised']:.3f}."]
    lines += ["", "## Rounds", "", "| round | devices | global accuracy | seconds | training s | crypto s | KB up | events |",
              "|---|---|---|---|---|---|---|---|"]
    for r in report["rounds"]:
        up = sum(r.get("bytes_up", {}).values()) / 1024
        lines.append(f"| {r['round']} | {len(r['participants'])} | {r['global_accuracy']:.3f} | {r['seconds']} | "
                     f"{r['train_s']} | {r['crypto_s']} | {up:.0f} | {'; '.join(r.get('events', []))} |")
    lines += ["", "## Devices", "", "| device | local-only | global | personalised | centralised |", "|---|---|---|---|---|"]
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
    mean, nu = report["mean"], report["new_users"]
    lines = [f"{k.replace('_', '-'):>13}: {mean[k]:.3f}" for k in KINDS]
    if nu["global"] is not None:
        lines.append(f"{'new users':>13}: global {nu['global']:.3f} -> personalised {nu['personalised']:.3f}")
    if "int8" in report:
        q = report["int8"]
        lines.append(f"{'int8 global':>13}: {q['accuracy']['int8']:.3f} (float {q['accuracy']['float']:.3f}), "
                     f"{q['int8_ms_per_window']:.3f} ms per window (float {q['float_ms_per_window']:.3f}), "
                     f"{q['int8_kb']:.0f} KB")
    return lines

"""The benchmark's PNG: how time and memory grow with district size, and where the time goes at the largest size.

Left: the snapshot's and each vendor's time (build + validate + package on the shared snapshot) against students,
log-log, with a dotted slope-1 line through the largest point -- linear growth runs parallel to it; a curve above it
at small sizes is fixed cost (process, imports, ~150 MiB of libraries). Middle: the highest peak RSS of any one task
(stage process), same axes. Right: the largest size's night, stage by stage: the snapshot once, then every vendor.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

STAGE_COLOURS = {"snapshot": "#4C72B0", "build": "#DD8452", "validate": "#55A868", "package": "#8172B3"}


def draw(results: dict[str, Any], target: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sizes = [s for s in results["sizes"] if s["vendors"]]
    vendors = results["vendors"]
    fig, axes = plt.subplots(1, 3, figsize=(17, 5.4))
    time_ax, rss_ax, bar_ax = axes
    markers = "osD^vP*X"
    if sizes:  # the night's one snapshot, shared by every vendor
        xs = [s["students"] for s in sizes if s.get("snapshot", {}).get("ok")]
        time_ax.plot(xs, [s["snapshot"]["seconds"] for s in sizes if s.get("snapshot", {}).get("ok")], marker="x",
                     color="black", label="snapshot")
        rss_ax.plot(xs, [s["snapshot"]["peak_rss_mib"] for s in sizes if s.get("snapshot", {}).get("ok")],
                    marker="x", color="black", label="snapshot")
    for i, name in enumerate(vendors):
        points = [(s["students"], s["vendors"][name]) for s in sizes
                  if name in s["vendors"] and s["vendors"][name].get("complete")]
        if not points:
            continue
        xs = [p[0] for p in points]
        time_ax.plot(xs, [p[1]["total_seconds"] for p in points], marker=markers[i % len(markers)], label=name)
        rss_ax.plot(xs, [p[1]["peak_rss_mib"] for p in points], marker=markers[i % len(markers)], label=name)
    if sizes:  # slope 1 through the largest size: parallel = linear; above it at small sizes = fixed costs
        x0, x1 = sizes[0]["students"], sizes[-1]["students"]
        complete = [v for v in sizes[-1]["vendors"].values() if v.get("complete")]
        if complete and x1 > x0:
            y1 = max(v["total_seconds"] for v in complete)
            time_ax.plot([x0, x1], [y1 * x0 / x1, y1], linestyle=":", color="grey", label="linear (slope 1)")
            r1 = max(v["peak_rss_mib"] for v in complete)
            rss_ax.plot([x0, x1], [r1 * x0 / x1, r1], linestyle=":", color="grey", label="linear (slope 1)")
    for ax, title, ylabel in ((time_ax, "Snapshot and each vendor on it", "seconds"),
                              (rss_ax, "Peak RSS of the largest task", "MiB")):
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("students")
        ax.set_ylabel(ylabel)
        ax.set_title(title)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
    rss_ax.axhline(2048, color="red", linewidth=0.8, linestyle="--")
    rss_ax.text(rss_ax.get_xlim()[0], 2048, " 2 GiB snapshot target", color="red", fontsize=8, va="bottom")

    if sizes:
        largest = sizes[-1]
        names = ["snapshot"] + [n for n in vendors if largest["vendors"].get(n, {}).get("complete")]
        bottoms = [0.0] * len(names)
        for stage, colour in STAGE_COLOURS.items():
            heights = [(largest["snapshot"]["seconds"] if stage == "snapshot" else 0.0) if n == "snapshot"
                       else largest["vendors"][n]["stages"].get(stage, {}).get("seconds", 0.0) for n in names]
            bar_ax.bar(names, heights, bottom=bottoms, color=colour, label=stage)
            bottoms = [b + h for b, h in zip(bottoms, heights)]
        bar_ax.set_title(f"{largest['size']} ({largest['students']:,} students): the night, "
                         f"{largest.get('nightly_total_seconds', 0):.0f} s (target 45 s)")
        bar_ax.set_ylabel("seconds")
        bar_ax.legend(fontsize=8)
        bar_ax.grid(True, axis="y", alpha=0.3)
    fig.suptitle(f"rostering benchmark, {results['machine'].get('cores')} cores, "
                 f"{results['machine'].get('memory_gib')} GiB -- {results['generated_at']}", fontsize=10)
    fig.tight_layout()
    target.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(target, dpi=110)
    plt.close(fig)
    return target

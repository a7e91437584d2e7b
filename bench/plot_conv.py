#!/usr/bin/env python3
"""Plot conv_bench JSON records: grouped bars per layer, GFLOP/s per implementation.

usage: plot_conv.py RESULTS.json [-o OUT.png] [--dtype f32] [--direction bwd_data] [--log]

One panel per dtype, batch size and direction (forward, backward data, backward
weights) present: a row per dtype and batch, a column per direction (each as wide as
its layers need; stacked in one column when that would make the figure too wide). One
group of bars per layer, one bar per implementation and layout (e.g. "axle nhwc",
"onednn best", "clblast nchw"), one colour each across the panels; oneDNN's best bars
also name the layout it chose. Each bar is
labelled with its GFLOP/s (every direction counts the forward pass's FLOPs); the
device's FMA peak (when the records carry it) is a dashed line. Results that failed
the bench's check are hatched and marked. --log uses a logarithmic GFLOP/s axis
(useful when the implementations differ by 100x).
"""
import argparse
import json
import os
import sys


def series_name(r):
    impl, layout, variant = r["impl"], r.get("layout", ""), r.get("variant", "")
    if impl == "onednn" and variant == "best":
        return "onednn best (its layout)"
    return f"{impl} {layout}"


def chosen_layout(r):
    """The layout oneDNN chose for its best variant (written on the bar), else None."""
    layout = r.get("layout", "")
    if r["impl"] == "onednn" and r.get("variant") == "best":
        return layout.split(":", 1)[1] if layout.startswith("any:") else layout
    return None


def series_key(name):
    order = {"axle": 0, "onednn": 1, "clblast": 2, "cudnn": 3}
    impl = name.split(" ", 1)[0]
    return (order.get(impl, 9), name)


DIRECTIONS = ["fwd", "bwd_data", "bwd_weights"]
DIRECTION_TITLES = {"fwd": "forward", "bwd_data": "backward data (dx)", "bwd_weights": "backward weights (dw)"}


def direction(r):
    return r.get("direction", "fwd")


def direction_key(d):
    return DIRECTIONS.index(d) if d in DIRECTIONS else len(DIRECTIONS)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("json")
    ap.add_argument("-o", "--output", default=None, help="PNG path (default: JSON path with .png)")
    ap.add_argument("--dtype", default=None)
    ap.add_argument("--direction", default=None, choices=DIRECTIONS, help="plot only this direction")
    ap.add_argument("--log", action="store_true", help="logarithmic GFLOP/s axis")
    args = ap.parse_args()
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        # A python3 first on PATH (pyenv, a venv) may not see Debian's python3-matplotlib.
        system = "/usr/bin/python3"
        if os.path.exists(system) and os.path.realpath(sys.executable) != os.path.realpath(system):
            os.execv(system, [system, os.path.abspath(__file__)] + sys.argv[1:])
        sys.exit("plot_conv.py needs matplotlib (apt-get install python3-matplotlib, or pip install matplotlib)")

    with open(args.json) as f:
        records = json.load(f)
    if isinstance(records, dict):
        records = records.get("records", [])
    if not records:
        sys.exit("no records in " + args.json)
    if args.dtype:
        records = [r for r in records if r["dtype"] == args.dtype]
        if not records:
            sys.exit(f"no {args.dtype} records in {args.json}")
    if args.direction:
        records = [r for r in records if direction(r) == args.direction]
        if not records:
            sys.exit(f"no {args.direction} records in {args.json}")
    out = args.output or (args.json.rsplit(".", 1)[0] + ".png")

    rows = sorted({(r["dtype"], r["n"]) for r in records})
    dirs = sorted({direction(r) for r in records}, key=direction_key)
    layers_all = []
    for r in records:  # keep the bench's order
        if r["layer"] not in layers_all:
            layers_all.append(r["layer"])
    # The groups of a column: the most layers any row has in that direction.
    groups = {d: max(len({r["layer"] for r in records if direction(r) == d and (r["dtype"], r["n"]) == row})
                     for row in rows) for d in dirs}
    widths = [max(1, groups[d]) * 1.6 + 1.4 for d in dirs]
    side_by_side = sum(widths) <= 22
    if side_by_side:
        cells = [[(row, d) for d in dirs] for row in rows]
        fig, axes = plt.subplots(len(rows), len(dirs), figsize=(max(8.0, sum(widths)), 4.8 * len(rows)),
                                 squeeze=False, gridspec_kw={"width_ratios": widths})
    else:
        cells = [[(row, d)] for row in rows for d in dirs]
        width_in = max(8.0, 1.6 * max(groups.values()) + 2.5)
        fig, axes = plt.subplots(len(cells), 1, figsize=(width_in, 4.8 * len(cells)), squeeze=False)
    colors = {}
    palette = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for name in sorted({series_name(r) for r in records}, key=series_key):
        colors[name] = palette[len(colors) % len(palette)]

    devices = sorted({r["device"] for r in records if r["impl"] == "axle"}) or sorted({r["device"] for r in records})
    handles = {}
    for i_row, row_cells in enumerate(cells):
        for i_col, ((dtype, n), dirn) in enumerate(row_cells):
            ax = axes[i_row, i_col]
            recs = [r for r in records if r["dtype"] == dtype and r["n"] == n and direction(r) == dirn]
            if not recs:
                ax.set_axis_off()
                continue
            draw_panel(ax, recs, layers_all, colors, handles, args.log)
            ax.set_title(f"{DIRECTION_TITLES.get(dirn, dirn)}\n{dtype}, batch {n}", fontsize=11)
            if i_col == 0:
                ax.set_ylabel("GFLOP/s (higher is better)")
    fig.suptitle(f"conv2d on {', '.join(devices)} (every direction counts the forward pass's FLOPs)")
    names = sorted(handles, key=series_key)
    fig.legend([handles[k] for k in names], names, loc="lower center", ncol=min(len(names), 6), fontsize=8,
               frameon=False)
    fig.tight_layout(rect=(0, 0.06 / len(cells) + 0.02, 1, 1 - 0.04 / len(cells)))
    fig.savefig(out, dpi=110)
    print("wrote", out)


def draw_panel(ax, recs, layers_all, colors, handles, log):
    """One group of bars per layer, one bar per implementation and layout."""
    layers = [l for l in layers_all if any(r["layer"] == l for r in recs)]
    names = sorted({series_name(r) for r in recs}, key=series_key)
    group = 0.8
    bar = group / max(1, len(names))
    top = max(r["gflops"] for r in recs)
    for i, name in enumerate(names):
        xs, ys, bad, chosen = [], [], [], []
        for j, layer in enumerate(layers):
            v = [r for r in recs if series_name(r) == name and r["layer"] == layer]
            if not v:
                continue
            xs.append(j - group / 2 + (i + 0.5) * bar)
            ys.append(v[0]["gflops"])
            bad.append(not v[0].get("valid", True))
            chosen.append(chosen_layout(v[0]))
        bars = ax.bar(xs, ys, bar * 0.95, label=name, color=colors[name])
        handles.setdefault(name, bars)
        for b, y, wrong, lay in zip(bars, ys, bad, chosen):
            if wrong:
                b.set_hatch("//")
            label = f"{y:.0f}" if y >= 10 else f"{y:.1f}" if y >= 1 else f"{y:.2f}"
            if lay:
                label += f" {lay}"
            ax.annotate(label + (" WRONG" if wrong else ""), (b.get_x() + b.get_width() / 2, y),
                        xytext=(0, 2), textcoords="offset points", ha="center", va="bottom",
                        fontsize=7, rotation=90)
    peaks = [r["peak_gflops"] for r in recs if r.get("peak_gflops")]
    if peaks:
        peak = max(peaks)
        ax.axhline(peak, color="gray", linestyle="--", linewidth=1)
        ax.annotate(f"FMA peak {peak:.0f} GFLOP/s", (-0.55, peak), xytext=(2, 3), textcoords="offset points",
                    ha="left", va="bottom", fontsize=8, color="dimgray",
                    bbox=dict(boxstyle="round,pad=0.15", fc="white", ec="none", alpha=0.8))
        top = max(top, peak)
    ax.set_xticks(range(len(layers)))
    ax.set_xticklabels(layers, rotation=20, ha="right")
    ax.set_xlim(-0.6, len(layers) - 0.4)
    if log:
        ax.set_yscale("log")
        ax.set_ylim(top=top * 4)
    else:
        ax.set_ylim(0, top * 1.45)
    ax.grid(True, axis="y", alpha=0.3)


if __name__ == "__main__":
    main()

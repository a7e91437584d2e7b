#!/usr/bin/env python3
"""Plot conv_bench JSON records: grouped bars per layer, GFLOP/s per implementation.

usage: plot_conv.py RESULTS.json [-o OUT.png] [--dtype f32] [--log]

One panel per dtype (and batch size) present; one group of bars per layer, one bar per
implementation and layout (e.g. "axle nhwc", "onednn best (nhwc)", "clblast nchw").
Each bar is labelled with its GFLOP/s; the device's FMA peak (when the records carry
it) is a dashed line. Results that failed the bench's check are hatched and marked.
--log uses a logarithmic GFLOP/s axis (useful when the implementations differ by 100x).
"""
import argparse
import json
import os
import sys


def series_name(r):
    impl, layout, variant = r["impl"], r.get("layout", ""), r.get("variant", "")
    if impl == "onednn" and variant == "best":
        chosen = layout.split(":", 1)[1] if layout.startswith("any:") else layout
        return f"onednn best ({chosen})"
    return f"{impl} {layout}"


def series_key(name):
    order = {"axle": 0, "onednn": 1, "clblast": 2, "cudnn": 3}
    impl = name.split(" ", 1)[0]
    return (order.get(impl, 9), name)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("json")
    ap.add_argument("-o", "--output", default=None, help="PNG path (default: JSON path with .png)")
    ap.add_argument("--dtype", default=None)
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
    out = args.output or (args.json.rsplit(".", 1)[0] + ".png")

    panels = sorted({(r["dtype"], r["n"]) for r in records})
    layers_all = []
    for r in records:  # keep the bench's order
        if r["layer"] not in layers_all:
            layers_all.append(r["layer"])
    width_in = max(8.0, 1.6 * len(layers_all) + 2.5)
    fig, axes = plt.subplots(len(panels), 1, figsize=(width_in, 4.8 * len(panels)), squeeze=False)
    colors = {}
    palette = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for name in sorted({series_name(r) for r in records}, key=series_key):
        colors[name] = palette[len(colors) % len(palette)]

    for ax, (dtype, n) in zip(axes[:, 0], panels):
        recs = [r for r in records if r["dtype"] == dtype and r["n"] == n]
        layers = [l for l in layers_all if any(r["layer"] == l for r in recs)]
        names = sorted({series_name(r) for r in recs}, key=series_key)
        group = 0.8
        bar = group / max(1, len(names))
        top = max(r["gflops"] for r in recs)
        for i, name in enumerate(names):
            xs, ys, bad = [], [], []
            for j, layer in enumerate(layers):
                v = [r for r in recs if series_name(r) == name and r["layer"] == layer]
                if not v:
                    continue
                xs.append(j - group / 2 + (i + 0.5) * bar)
                ys.append(v[0]["gflops"])
                bad.append(not v[0].get("valid", True))
            bars = ax.bar(xs, ys, bar * 0.95, label=name, color=colors[name])
            for b, y, wrong in zip(bars, ys, bad):
                if wrong:
                    b.set_hatch("//")
                label = f"{y:.0f}" if y >= 10 else f"{y:.1f}" if y >= 1 else f"{y:.2f}"
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
        ax.set_ylabel("GFLOP/s (higher is better)")
        if args.log:
            ax.set_yscale("log")
            ax.set_ylim(top=top * 4)
        else:
            ax.set_ylim(0, top * 1.25)
        devices = sorted({r["device"] for r in recs if r["impl"] == "axle"}) or sorted({r["device"] for r in recs})
        ax.set_title(f"conv2d forward, {dtype}, batch {n}, on {', '.join(devices)}")
        ax.grid(True, axis="y", alpha=0.3)
        ax.legend(fontsize=8, loc="upper right", ncol=2)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    print("wrote", out)


if __name__ == "__main__":
    main()

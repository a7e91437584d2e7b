#!/usr/bin/env python3
"""Plot gemm_bench JSON records: GFLOP/s per shape, one line per implementation.

usage: plot_gemm.py RESULTS.json [-o OUT.png] [--dtype f32]

Square sizes are plotted in increasing order, the non-square shapes (e.g. 4096x64x4096)
after them; one panel per dtype present (or the one asked for).
"""
import argparse
import json
import sys


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("json")
    ap.add_argument("-o", "--output", default=None, help="PNG path (default: JSON path with .png)")
    ap.add_argument("--dtype", default=None)
    args = ap.parse_args()
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        sys.exit("plot_gemm.py needs matplotlib (pip install matplotlib)")

    with open(args.json) as f:
        records = json.load(f)
    if not records:
        sys.exit("no records in " + args.json)
    dtypes = sorted({r["dtype"] for r in records})
    if args.dtype:
        dtypes = [d for d in dtypes if d == args.dtype]
    out = args.output or (args.json.rsplit(".", 1)[0] + ".png")

    def shape_of(r):
        return (r.get("batch", 1), r["m"], r["n"], r["k"])

    def shape_key(s):
        b, m, n, k = s
        square = m == n == k and b == 1
        return (0 if square else 1, m * n * k if square else 0, b, m, n, k)

    def label(s):
        b, m, n, k = s
        core = f"{m}" if m == n == k else f"{m}x{n}x{k}"
        return core if b == 1 else f"{b}*{m}x{n}x{k}"

    fig, axes = plt.subplots(len(dtypes), 1, figsize=(11, 4.5 * len(dtypes)), squeeze=False)
    for ax, dtype in zip(axes[:, 0], dtypes):
        recs = [r for r in records if r["dtype"] == dtype]
        shapes = sorted({shape_of(r) for r in recs}, key=shape_key)
        labels = [label(s) for s in shapes]
        for impl in sorted({r["impl"] for r in recs}):
            ys = []
            for s in shapes:
                v = [r["gflops"] for r in recs if r["impl"] == impl and shape_of(r) == s]
                ys.append(v[0] if v else float("nan"))
            style = "-o" if impl.startswith("axle") else "--s"
            ax.plot(range(len(shapes)), ys, style, label=impl)
        ax.set_xticks(range(len(shapes)))
        ax.set_xticklabels(labels, rotation=30, ha="right")
        ax.set_ylabel("GFLOP/s")
        device = recs[0].get("device", "")
        ax.set_title(f"GEMM {dtype} on {device}")
        ax.grid(True, alpha=0.3)
        ax.legend()
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    print("wrote", out)


if __name__ == "__main__":
    main()

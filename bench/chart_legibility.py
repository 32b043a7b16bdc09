"""Count what a reader of the chart family would trip on, over N seeded charts.

    python bench/chart_legibility.py --n 300            # default Config, seeds 0..299
    python bench/chart_legibility.py --n 300 --show 5   # also print 5 examples per problem
    python bench/chart_legibility.py --figures --n 100  # figure_png charts as OCR 1.0 pages ask

Each chart i is ``synth.charts.generate(Config(), np.random.default_rng([seed, i]))``,
measured after drawing from matplotlib's own text extents (``synth.charts.audit``):
table names printed nowhere (pie series names separately), overprinting tick labels,
value labels on other text or under a legend, legends over axis titles or plot marks,
other overlapping text and text clipped at the figure edge. Prints one JSON line per
problem kind (charts affected, instances, by chart kind) and a summary line (with how
many value labels the charts made and how many are drawn, i.e. not dropped for lack of
a clear spot).
"""

from __future__ import annotations

import argparse
import collections
import json
import time

import numpy as np

from synth import charts
from synth.charts.audit import PROBLEMS, find_problems, recording


def run(n: int, seed: int, figures: bool = False, figure_width: int = 640) -> tuple[dict, list]:
    """Audit ``n`` charts; returns (counts, examples) where examples are (i, kind, problem, text)."""
    charts_with = collections.Counter()
    instances = collections.Counter()
    by_kind: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
    kinds = collections.Counter()
    examples = []
    made = shown = 0
    with recording() as drawn:
        for i in range(n):
            rng = np.random.default_rng([seed, i])
            if figures:
                # As synth.ocr1.figures asks for them: 640 px wide, height 0.5-0.75 of that.
                h = int(figure_width * rng.uniform(0.5, 0.75))
                _, truth = charts.figure_png(rng, figure_width, h, "zh" if rng.random() < 0.3 else "en")
            else:
                truth = charts.generate(charts.Config(), rng).truth
            kinds[truth["kind"]] += 1
            d = drawn.pop()
            made += d.values_made
            shown += sum(t.role == "value" for t in d.texts)
            found = find_problems(d, truth)
            for name, items in found.items():
                if items:
                    charts_with[name] += 1
                    instances[name] += len(items)
                    by_kind[name][truth["kind"]] += 1
                    examples += [(i, truth["kind"], name, item) for item in items]
    any_problem = len({i for i, *_ in examples})
    counts = {name: {"charts": charts_with[name], "instances": instances[name], "by_kind": dict(by_kind[name])}
              for name in PROBLEMS}
    counts["_summary"] = {"charts": n, "charts_with_any_problem": any_problem, "kinds": dict(kinds),
                          "value_labels_drawn": shown, "value_labels_made": made}
    return counts, examples


def main() -> None:
    """Entry point."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=300, help="charts to draw (default 300)")
    ap.add_argument("--seed", type=int, default=0, help="chart i uses default_rng([seed, i]) (default 0)")
    ap.add_argument("--show", type=int, default=0, help="examples to print per problem kind (default 0)")
    ap.add_argument("--figures", action="store_true", help="audit figure_png charts (document pages) instead")
    ap.add_argument("--figure-width", type=int, default=640,
                    help="figure_png width in px (default 640, as OCR 1.0 pages ask)")
    args = ap.parse_args()
    t0 = time.process_time()
    counts, examples = run(args.n, args.seed, args.figures, args.figure_width)
    for name in PROBLEMS:
        print(json.dumps({"problem": name, **counts[name]}, ensure_ascii=False))
        shown = [e for e in examples if e[2] == name][: args.show]
        for i, kind, _, item in shown:
            print(f"    chart {i} ({kind}): {item}")
    print(json.dumps({**counts["_summary"], "cpu_s": round(time.process_time() - t0, 1)}))


if __name__ == "__main__":
    main()

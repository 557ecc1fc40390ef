"""One CSV row per tuning run: the overrides it was run with and its paper ACC / FM (image, pixel).

`iufbench report` refuses a method that appears in two runs (a table has one row per method); a
hyper-parameter sweep is exactly that, so this lists each run on its own:

    .venv/bin/python scripts/collect_tuning.py runs/tune/* > results/tuning/demo_val.csv
"""
from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd

from iufbench.report.runs import load_run
from iufbench.report.tables import aggregate, run_scores


def row(path: Path) -> dict[str, object]:
    run = load_run(path)
    agg = aggregate(run_scores([run], "paper"))
    (method,) = agg["method"].unique()
    out: dict[str, object] = {"run": path.name, "protocol": run.protocol, "method": method,
                              "overrides": " ".join(run.record["overrides"]),
                              "seeds": ",".join(map(str, sorted(run.summary["seed"].unique()))),
                              "torch_threads": run.record["host"].get("torch_threads")}
    for _, r in agg.iterrows():
        out[f"{r['level']}_{r['stat']}"] = round(r["mean"], 1)
    return out


if __name__ == "__main__":
    rows = [row(Path(p)) for p in sys.argv[1:]]
    print(pd.DataFrame(rows).sort_values(["method", "run"]).to_csv(index=False), end="")

"""Where forgetting comes from (docs/methods/iuf.md, "Forgetting study"), from run directories:

    python benchmarks/forgetting_study.py movement RUN_DIR      # needs `iufbench run --keep-checkpoints`
    python benchmarks/forgetting_study.py plasticity RUN_DIR [RUN_DIR ...]
    python benchmarks/forgetting_study.py fork RUN_DIR METHOD NEW_RUN_DIR NEW_METHOD

movement: per parameter group (uniad.method.parameter_group), how far an incremental step moves the
weights: ||theta_s - theta_(s-1)|| / ||theta_(s-1)|| in %, averaged over the steps, and the group's share
of the step's squared movement; mean +- std over seeds, per method.
plasticity: the AUROC of each step's new objects right after their own step (what a method still
learns), averaged over the incremental steps; mean +- std over seeds, per run and method.
fork: start NEW_RUN_DIR from the base-task checkpoints (step0.pt) of METHOD in RUN_DIR, as NEW_METHOD;
`iufbench run --resume --run-id <new>` then trains only the incremental steps. Exact for variants
that differ only in incremental steps (train.freeze; us.enabled, project, omega, energy, beta; not
us.protect, whose statistics are collected at the end of the base task): the base task is the same
computation, and the engine reseeds every step from (seed, step), so a resumed run draws the same numbers.
"""
from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd
import torch

from iufbench.methods.uniad.method import parameter_group


def _steps(folder: Path) -> list[dict[str, torch.Tensor]]:
    paths = sorted(folder.glob("step*.pt"), key=lambda p: int(p.stem[4:]))
    return [torch.load(p, map_location="cpu", weights_only=True)["state"]["model"] for p in paths]


def movement(run: Path) -> pd.DataFrame:
    rows = []
    for folder in sorted((run / "checkpoints").glob("*/seed*")):
        states = _steps(folder)
        if len(states) < 2:
            sys.exit(f"{folder} holds {len(states)} checkpoint(s): rerun with --keep-checkpoints")
        for step, (old, new) in enumerate(zip(states, states[1:]), start=1):
            moved: dict[str, float] = {}
            size: dict[str, float] = {}
            for name, value in old.items():
                group = "discriminator" if name.startswith("discriminator.") else parameter_group(
                    name.removeprefix("uniad."))
                if name in new and new[name].shape == value.shape and value.is_floating_point():
                    moved[group] = moved.get(group, 0.0) + (new[name] - value).double().pow(2).sum().item()
                    size[group] = size.get(group, 0.0) + value.double().pow(2).sum().item()
            total = sum(moved.values())
            rows += [{"method": folder.parent.name, "seed": folder.name, "step": step, "group": g,
                      "relative move %": 100 * (moved[g] / size[g]) ** 0.5, "share of movement %": 100 * moved[g] / total}
                     for g in moved]
    per_seed = pd.DataFrame(rows).groupby(["method", "group", "seed"]).mean(numeric_only=True).drop(columns="step")
    return _mean_std(per_seed, ["method", "group"])


def plasticity(run: Path) -> pd.DataFrame:
    cells = pd.read_csv(run / "matrix.csv")
    cells = cells[cells["metric"].isin(["image_auroc", "pixel_auroc"])]
    first = cells.groupby(["method", "seed", "object"])["step"].transform("min")
    own = cells[(cells["step"] == first) & (cells["step"] > 0)]
    per_seed = own.groupby(["method", "metric", "seed"])["value"].mean().mul(100).unstack("metric")
    table = _mean_std(per_seed, ["method"])
    table.insert(0, "run", run.name)
    return table


def fork(run: Path, method: str, new_run: Path, new_method: str) -> None:
    for path in sorted((run / "checkpoints" / method).glob("seed*/step0.pt")):
        payload = torch.load(path, map_location="cpu", weights_only=True)
        payload["rows"] = [{**row, "method": new_method} for row in payload["rows"]]
        target = new_run / "checkpoints" / new_method / path.parent.name / "step0.pt"
        target.parent.mkdir(parents=True, exist_ok=True)
        torch.save(payload, target)
        print(target)


def _mean_std(per_seed: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    grouped = per_seed.groupby(keys)
    mean, std, n = grouped.mean(), grouped.std().fillna(0.0), grouped.size()
    out = mean.copy().astype(object)
    for column in mean.columns:
        out[column] = [f"{m:.1f} ± {s:.1f}" for m, s in zip(mean[column], std[column])]
    out["seeds"] = n
    return out.reset_index()


if __name__ == "__main__":
    if len(sys.argv) < 3 or sys.argv[1] not in {"movement", "plasticity", "fork"}:
        sys.exit(__doc__)
    if sys.argv[1] == "fork":
        fork(Path(sys.argv[2]), sys.argv[3], Path(sys.argv[4]), sys.argv[5])
        sys.exit()
    runs = [Path(p) for p in sys.argv[2:]]
    table = movement(runs[0]) if sys.argv[1] == "movement" else pd.concat([plasticity(r) for r in runs])
    print(table.to_markdown(index=False))

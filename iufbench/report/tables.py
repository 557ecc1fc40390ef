"""The paper's tables from run directories: Table 1 (methods x protocols) and Table 2 (IUF ablations),
as LaTeX (pandas Styler), Markdown (pandas + tabulate) or CSV (long format, one number per row).

Each cell is "image / pixel" (AUROC, %) of ACC or FM, mean ± std over seeds. The best incremental
result of each column (image and pixel separately) is bold; methods that see earlier tasks' data
(`joint`, replay) are marked † and never bold. The paper's own numbers (`results/paper/`) can be
added as rows labelled "reported in paper". Table 2's rows are the methods whose record lists the
IUF components they keep (`MethodTraits.components`), with those components as its ✓ / ✗ columns.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from iufbench.errors import ConfigError, DataError
from iufbench.records import split_pair_key
from iufbench.report.runs import Run
from iufbench.resources import builtin_dir

LEVELS = {"image": "image_auroc", "pixel": "pixel_auroc"}
DEFINITIONS = {
    "paper": ({"acc": "paper_acc", "fm": "paper_fm"},
              "ACC and FM as the IUF paper computes them (mean AUROC over evaluation points; mean drop "
              "from the base point)"),
    "standard": ({"acc": "final_acc", "fm": "chaudhry_fm"},
                 "final ACC (mean AUROC of all objects after the last step) and Chaudhry FM (mean drop from "
                 "each object's best earlier AUROC)"),
}
PAPER_COLUMNS = ["method", "label", "protocol", "level", "stat", "value"]  # then table2.csv's components
LAYOUTS = ("table1", "table2")
MEMORY = "STATE MiB"  # column of what a method keeps after the last step (weights, bank, statistics)
FORMATS = ("latex", "md", "csv")


def run_scores(runs: list[Run], definition: str) -> pd.DataFrame:
    """Long format: protocol, method, old_data (sees or keeps old data), seed, level, stat, value
    (AUROC points)."""
    if definition not in DEFINITIONS:
        raise ConfigError(f"unknown ACC/FM definition '{definition}'; use {' or '.join(DEFINITIONS)}")
    stats = DEFINITIONS[definition][0]
    frames = []
    for run in runs:
        s = run.summary
        if s.empty:  # nothing finished in this run
            continue
        s = s[s["metric"].isin(LEVELS.values())]
        for stat, column in stats.items():
            old = s["method"].map(lambda m, run=run: run.traits[m].uses_old_data)
            frames.append(pd.DataFrame({"protocol": run.protocol, "method": s["method"], "old_data": old,
                                        "seed": s["seed"],
                                        "level": s["metric"].map({v: k for k, v in LEVELS.items()}),
                                        "stat": stat, "value": s[column] * 100}))
    scores = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    if scores.empty:
        raise DataError("the runs hold no finished method: every method stopped before its last step")
    twice = scores.duplicated(["protocol", "method", "seed", "level", "stat"])
    if twice.any():
        row = scores[twice].iloc[0]
        raise DataError(f"{row['method']} seed {row['seed']} on {row['protocol']} appears in two runs; "
                        "pass each (method, seed) once")
    return scores


def run_memory(runs: list[Run]) -> pd.DataFrame:
    """State each (method, seed) keeps after its last step, in MiB (record.json's `state_bytes`)."""
    rows = []
    for run in runs:
        last = str(len(run.tasks) - 1)
        for key, steps in run.record.steps.items():
            if last in steps and steps[last].state_bytes is not None:
                method, seed = split_pair_key(key)
                rows.append({"protocol": run.protocol, "method": method, "seed": seed,
                             "mib": steps[last].state_bytes / 2**20})
    return pd.DataFrame(rows, columns=["protocol", "method", "seed", "mib"])


def aggregate(scores: pd.DataFrame) -> pd.DataFrame:
    """Mean, sample std and seed count per protocol, method, level and stat."""
    agg = scores.groupby(["protocol", "method", "old_data", "level", "stat"], sort=False)["value"].agg(
        mean="mean", std=lambda v: v.std(ddof=1) if v.notna().sum() > 1 else np.nan,
        n=lambda v: int(v.notna().sum()))
    agg = agg.reset_index()
    agg["source"] = "run"
    return agg


def paper_numbers(layout: str) -> pd.DataFrame:
    """The paper's reported numbers (results/paper/<layout>.csv) in `aggregate`'s columns."""
    path = builtin_dir("paper") / f"{layout}.csv"
    if not path.is_file():
        raise DataError(f"no stored paper numbers at {path}")
    raw = pd.read_csv(path)
    return pd.DataFrame({"protocol": raw["protocol"], "method": raw["method"], "label": raw["label"],
                         "old_data": False, "level": raw["level"], "stat": raw["stat"], "mean": raw["value"],
                         "std": np.nan,
                         "n": 0, "source": "paper"})


def components(runs: list[Run]) -> dict[tuple[str, str], dict[str, bool]]:
    """Table 2's rows, keyed (source, method): each run's methods whose record lists the IUF components
    they keep, and the paper's ablation rows (the `OASA`, `SCL`, `US` columns of results/paper/table2.csv)."""
    out = {("run", m): t.components for run in runs for m, t in run.traits.items() if t.components is not None}
    paper = pd.read_csv(builtin_dir("paper") / "table2.csv")
    for row in paper.drop_duplicates("method").to_dict("records"):
        out[("paper", row["method"])] = {c: bool(row[c]) for c in paper.columns if c not in PAPER_COLUMNS}
    return out


def with_paper_rows(agg: pd.DataFrame, layout: str, definition: str) -> pd.DataFrame:
    """`agg` plus the paper's numbers of the same protocols, as rows labelled "reported in paper"."""
    if definition != "paper":
        raise ConfigError("the paper reports only its own ACC/FM definition; use --definition paper with --with-paper")
    paper = paper_numbers(layout)
    return pd.concat([agg, paper[paper["protocol"].isin(agg["protocol"])]], ignore_index=True)


def _number(mean: float, std: float, pm: str) -> str:
    if np.isnan(mean):
        return "n/a"
    return f"{mean:.1f}" if np.isnan(std) else f"{mean:.1f}{pm}{std:.1f}"


def _best(agg: pd.DataFrame) -> set[tuple[str, str, str, str]]:
    """(protocol, stat, level, method) of each column's best incremental run result."""
    best = set()
    eligible = agg[(agg["source"] == "run") & ~agg["old_data"].astype(bool) & agg["mean"].notna()]
    for (protocol, stat, level), group in eligible.groupby(["protocol", "stat", "level"]):
        value = group["mean"].max() if stat == "acc" else group["mean"].min()
        best.update((protocol, stat, level, m) for m in group.loc[group["mean"] == value, "method"])
    return best


def build_table(agg: pd.DataFrame, layout: str, fmt: str, memory: pd.DataFrame | None = None,
                switches: dict[tuple[str, str], dict[str, bool]] | None = None) -> pd.DataFrame:
    """Cells as strings, rows = methods (run rows first, then paper rows), columns = (protocol, stat),
    plus (protocol, "STATE MiB") when `memory` (from `run_memory`) is given. `fmt` latex, md or html
    sets how bold and ± are written (html cells hold numbers and <b> only). Table 2 needs `switches`
    (from `components`): its rows and their ✓ / ✗ columns."""
    bold = {"latex": lambda t: rf"\textbf{{{t}}}", "md": lambda t: f"**{t}**", "html": lambda t: f"<b>{t}</b>"}[fmt]
    pm = {"latex": r" $\pm$ ", "md": " ± ", "html": " ± "}[fmt]
    switches = (switches or {}) if layout == "table2" else {}
    names = list(dict.fromkeys(name for on in switches.values() for name in on))
    if layout == "table2":
        agg = agg[[key in switches for key in zip(agg["source"], agg["method"])]]
        if agg.empty:
            raise DataError("no IUF variant in these runs: Table 2 shows the methods whose record lists the IUF "
                            "components they keep (iuf, iuf_no_oasa, iuf_no_scl, iuf_no_us, ...)")
    best = _best(agg)
    protocols = list(dict.fromkeys(agg["protocol"]))
    rows: dict[str, dict[tuple[str, str], str]] = {}
    for (source, method), group in agg.groupby(["source", "method"], sort=False):
        if source == "paper":
            label = f"{group['label'].iloc[0]} (reported in paper)"
        else:
            label = method + (" †" if group["old_data"].any() else "")
        cells = rows.setdefault(label, {})
        if layout == "table2":
            marks = {"latex": (r"\checkmark", "--"), "md": ("✓", "✗"), "html": ("✓", "✗")}[fmt]
            for name in names:
                cells[("", name)] = marks[0] if switches[(source, method)].get(name) else marks[1]
        for (protocol, stat), part in group.groupby(["protocol", "stat"]):
            texts = []
            for level in ("image", "pixel"):
                row = part[part["level"] == level]
                text = "n/a" if row.empty else _number(row["mean"].iloc[0], row["std"].iloc[0], pm)
                texts.append(bold(text) if (protocol, stat, level, method) in best and source == "run" else text)
            cells[(protocol, stat.upper())] = " / ".join(texts)
        if memory is not None and source == "run":
            for protocol, part in memory[memory["method"] == method].groupby("protocol"):
                cells[(protocol, MEMORY)] = f"{part['mib'].mean():.2f}"
    stats = ("ACC", "FM", MEMORY) if memory is not None else ("ACC", "FM")
    columns = [("", c) for c in names] + [
        (p, s) for p in protocols for s in stats]
    table = pd.DataFrame.from_dict(rows, orient="index").reindex(columns=pd.MultiIndex.from_tuples(columns))
    table.index.name = "method"
    return table.fillna("n/a")


def caption(definition: str, agg: pd.DataFrame, memory: bool = False) -> str:
    seeds = sorted(agg.loc[(agg["source"] == "run") & (agg["n"] > 0), "n"].unique())  # n = 0: n/a cells
    text = (f"Image / pixel AUROC (%). {DEFINITIONS[definition][1]}. Mean ± std over "
            f"{' or '.join(map(str, seeds))} seed(s). Bold: best incremental result per column (image and "
            "pixel separately); † sees earlier tasks' training data (upper bound), never bold; n/a: no "
            "pixel output or no result.")
    if memory:
        text += (" STATE MiB: what the method keeps after the last step (weights, memory bank, statistics, "
                 "buffers), mean over seeds.")
    if (agg["source"] == "paper").any():
        text += " Rows 'reported in paper' are the IUF paper's numbers (results/paper), not runs of this suite."
    return text


def render(table: pd.DataFrame, fmt: str, text: str) -> str:
    if fmt == "md":
        flat = table.copy()
        flat.columns = [" ".join(c for c in col if c) for col in table.columns]
        return flat.to_markdown() + f"\n\n{text}\n"
    latex_caption = text.replace("±", r"$\pm$").replace("†", r"$\dagger$").replace("%", r"\%")
    index = [i.replace("_", r"\_").replace("†", r"$\dagger$") for i in table.index]
    out = table.set_axis(index, axis=0)
    out.columns = pd.MultiIndex.from_tuples([tuple(p.replace("_", r"\_") for p in c) for c in table.columns])
    return out.style.to_latex(hrules=True, multicol_align="c", caption=latex_caption,
                              column_format="l" + "c" * len(table.columns), position="t")


def report(runs: list[Run], layout: str = "table1", fmt: str = "latex", definition: str = "paper",
           with_paper: bool = False, with_memory: bool = False) -> str:
    """The text of one table (LaTeX or Markdown), or its numbers as CSV."""
    if layout not in LAYOUTS or fmt not in FORMATS:
        raise ConfigError(f"layout must be one of {LAYOUTS} and format one of {FORMATS}")
    agg = aggregate(run_scores(runs, definition))
    if with_paper:
        agg = with_paper_rows(agg, layout, definition)
    memory = run_memory(runs) if with_memory else None
    if fmt == "csv":
        out = agg.rename(columns={"old_data": "uses_old_data"}).assign(definition=definition)
        if memory is not None:
            runs_only = agg[agg["source"] == "run"]
            old = dict(zip(runs_only["method"], runs_only["old_data"]))
            mem = memory.groupby(["protocol", "method"], sort=False)["mib"].agg(mean="mean", n="count").reset_index()
            out = pd.concat([out, mem.assign(level="", stat="state_mib", std=np.nan, source="run",
                                             definition=definition,
                                             uses_old_data=mem["method"].map(old))], ignore_index=True)
        return out.drop(columns=[c for c in ("label",) if c in out]).to_csv(index=False)
    table = build_table(agg, layout, fmt, memory, components(runs))
    return render(table, fmt, caption(definition, agg, memory is not None))


def write(text: str, out: Path | None) -> None:
    if out is None:
        print(text)
        return
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)

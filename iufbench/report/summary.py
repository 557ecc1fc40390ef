"""The table `iufbench run` and `iufbench sweep` print: paper ACC / FM and final ACC per method."""
from __future__ import annotations

import pandas as pd

# The metrics the printed table shows, as (matrix metric, short label).
TABLE_METRICS = (("image_auroc", "image"), ("pixel_auroc", "pixel"))


def format_table(summary: pd.DataFrame, old_data_methods: set[str]) -> str:
    """Plain-text table: paper ACC / FM and final ACC (x100), image and pixel, mean ± std over seeds."""
    lines = []
    header = f"{'method':<22}" + "".join(
        f"{label + ' ' + stat:>18}" for _, label in TABLE_METRICS for stat in ("ACC", "FM", "final")
    )
    lines.append(header)
    lines.append("-" * len(header))
    for method in summary["method"].drop_duplicates():
        name = method + (" *" if method in old_data_methods else "")
        cells = []
        for metric, _ in TABLE_METRICS:
            sub = summary[(summary["method"] == method) & (summary["metric"] == metric)]
            for stat in ("paper_acc", "paper_fm", "final_acc"):
                cells.append(_cell(sub[stat] * 100))
        lines.append(f"{name:<22}" + "".join(f"{c:>18}" for c in cells))
    lines.append("ACC/FM: paper definitions (mean over evaluation points; mean drop from the base point), "
                 "final: mean AUROC over all objects after the last step; see docs/metrics.md.")
    if old_data_methods & set(summary["method"]):
        lines.append("* sees earlier tasks' training data (upper bound / replay): not comparable as incremental.")
    return "\n".join(lines)


def _cell(values: pd.Series) -> str:
    values = values.dropna()
    if values.empty:
        return "n/a"
    if len(values) == 1:
        return f"{values.iloc[0]:.1f}"
    return f"{values.mean():.1f} ± {values.std(ddof=1):.1f}"

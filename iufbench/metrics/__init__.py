"""Per-object detection metrics and the continual summaries built from them (docs/metrics.md)."""

from iufbench.metrics.continual import (
    SUMMARY_METRICS,
    bwt,
    chaudhry_fm,
    final_acc,
    first_seen,
    paper_acc,
    paper_fm,
    summarise,
)
from iufbench.metrics.long_format import step_object_matrix, summarise_matrix
from iufbench.metrics.per_object import OBJECT_METRICS, aupro, object_metrics

__all__ = [
    "OBJECT_METRICS",
    "SUMMARY_METRICS",
    "aupro",
    "bwt",
    "chaudhry_fm",
    "final_acc",
    "first_seen",
    "object_metrics",
    "paper_acc",
    "paper_fm",
    "step_object_matrix",
    "summarise",
    "summarise_matrix",
]

"""Scoring segmentations: overlap and surface metrics, folder evaluation, and choosing the best model (find-best).

Example:
    >>> from autounet.evaluation import evaluate_folders
    >>> summary = evaluate_folders(Path("labelsTr"), Path("predictions"), {"a": 1, "b": 2})  # doctest: +SKIP
"""

from autounet.evaluation.folders import evaluate_folders
from autounet.evaluation.metrics import ClassMetrics, case_metrics, classes_from_spec
from autounet.evaluation.summary import EvaluationSummary, load_summary

__all__ = ["ClassMetrics", "EvaluationSummary", "case_metrics", "classes_from_spec", "evaluate_folders",
           "load_summary"]

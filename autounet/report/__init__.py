"""The HTML report of a dataset: what the fingerprint measured, what was planned, how each fold trained, the
cross-validation scores and overlays of the best, median and worst validation cases.

It reads what the other stages wrote (it comes after evaluation in the data flow; no stage imports it).
"""

from autounet.report.writer import REPORT_FILE, render_report, write_report

__all__ = ["REPORT_FILE", "render_report", "write_report"]

"""Proving the trade-off: FID, CLIP and CLAP scores, latency, MACs and parameters of pipelines side by side,
as a text table, JSON and an HTML comparison page.

settings.py (what to measure), running.py (generating and scoring), tables.py (the text table and the
report's rows), html_report.py and grids.py (what people open), latency.py, metrics/, and report_keys.py (the
key names of saved reports across versions, which every reader of a saved report goes through).

May import: the package root's shared modules, families/, structure/ and models/.
"""

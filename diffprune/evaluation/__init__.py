"""Proving the trade-off: FID, CLIP and CLAP scores, latency, MACs and parameters of pipelines side by side,
as a text table, JSON and an HTML comparison page.

settings.py (what to measure), running.py (generating and scoring), tables.py (the text table and the
report's rows), html_report.py and grids.py (what people open), latency.py, metrics/.

May import: the package root's shared modules, families/, structure/ and models/.
"""

"""Aggregation (pandas tables, headline metrics) and the report (seaborn, jinja2, PDF)."""

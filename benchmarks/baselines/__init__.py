"""Baseline implementations of the ETL's transformations, timed beside it by bench_etl_25m.py."""

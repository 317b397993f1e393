"""The ETL stage: split ratings, fit an NVTabular workflow on train, write model-ready Parquet.

Entry point: `workflows.etl.stage.run_etl(EtlConfig) -> dict`.
"""

"""The data side of the pipeline: download, enrich, feature extraction, feature store, ETL."""

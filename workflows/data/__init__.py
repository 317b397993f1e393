"""The data stage: MovieLens (downloaded) or the synthetic default, as typed Parquet."""

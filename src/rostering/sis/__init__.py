"""The SIS-neutral model: schema, extraction to a Parquet snapshot, and the demo district."""

"""ingest_pipelines"""

"""Items to label: ingest, read-out and listing."""

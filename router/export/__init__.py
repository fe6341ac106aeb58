"""Exporting settled items with their labels and full provenance (NDJSON, streamed)."""

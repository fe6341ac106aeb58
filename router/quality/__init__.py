"""Annotator quality: gold records and the rules that act on them."""

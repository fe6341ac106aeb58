"""Per-key request rate limits, counted in Redis so every API process shares them."""

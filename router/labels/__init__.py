"""Labels: submitted on an assignment, idempotent, validated against the project's schema."""

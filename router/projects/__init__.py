"""Projects (a label schema, a rubric and a routing config) and their API keys."""

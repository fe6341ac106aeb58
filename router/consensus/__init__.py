"""Consensus: item posteriors from weighted labels, and the settle / more / escalate decision."""

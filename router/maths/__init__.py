"""Pure numpy maths: no I/O, nothing of ours imported."""

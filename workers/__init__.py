"""RQ jobs and the worker and scheduler processes. Imports services and maths, never controllers."""

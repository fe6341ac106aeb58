"""Redis: the RQ job queue and the per-tier priority queues of routed items."""

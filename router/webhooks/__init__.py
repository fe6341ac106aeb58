"""Webhooks: ops register URLs per project; workers send them signed events from an outbox."""

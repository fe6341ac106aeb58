"""Routing: the routing config model and the pure routing decision."""

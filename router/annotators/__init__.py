"""Annotators: crowd and expert, their status and their keys."""

"""Boomerang call layer."""

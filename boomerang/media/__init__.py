"""Boomerang media layer."""

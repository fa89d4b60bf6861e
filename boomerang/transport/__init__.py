"""Boomerang transport layer."""

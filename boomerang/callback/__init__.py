"""Boomerang callback layer."""

"""Boomerang store layer."""

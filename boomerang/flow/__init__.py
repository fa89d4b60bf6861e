"""Boomerang flow layer."""

"""Boomerang web layer."""

"""Boomerang: a SIP callback server."""

__version__ = "0.1.0"

"""Sans-I/O SIP core: no sockets, no clock, no randomness inside.

Everything here takes bytes and ``now`` and returns events and bytes.
"""

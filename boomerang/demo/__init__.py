"""``boomerang demo``: a whole callback in one process on loopback.

- ``cli.py``: the command's arguments, its output and exit status;
- ``story.py``: the twelve steps and their watchdogs;
- ``setup.py``: the config of the Boomerang under test;
- ``peers.py``: the simulated carrier with its mobile, and the desk phone;
- ``audio.py``: their RTP: tones sent and measured, RFC 4733 keys;
- ``ladder.py``: the timeline as a SIP ladder;
- ``records.py``: the story's call records read back and printed.
"""

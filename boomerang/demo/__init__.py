"""``boomerang demo``: a whole callback in one process on loopback."""

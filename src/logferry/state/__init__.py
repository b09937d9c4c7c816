"""Stage 3, where offsets are saved: the checkpoint database and the committer that writes to it."""

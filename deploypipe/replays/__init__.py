"""Replays of the seed incidents against the local default."""

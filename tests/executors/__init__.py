"""Unit tests of the executors (their pure decisions and previews)."""

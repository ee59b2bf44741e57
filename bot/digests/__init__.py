"""Scheduled health digests: subscriptions per channel, one run for every channel due at a
minute, "what changed" summaries and a chart."""

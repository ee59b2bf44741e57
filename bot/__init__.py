"""streamhouse-chatops: a Slack incident bot for Streamhouse."""

__version__ = "0.1.0"

"""Alert intake: the Alertmanager webhook, alert messages in Slack channels, grouping into
incidents, and storm-proof posting."""

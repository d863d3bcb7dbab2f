"""Seeing Goalkeeper at work: its metrics, the read model's gauges, the watch for wedged
workflows and the alert webhook."""

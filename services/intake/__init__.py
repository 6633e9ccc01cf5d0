"""Intake: receives requests from the channels, follows them to delivery."""

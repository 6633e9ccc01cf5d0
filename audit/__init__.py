"""Audit and board review: replay, compliance, tamper evidence, the board report."""

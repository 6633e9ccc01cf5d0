"""Verification: checks a request's data as submitted; an officer confirms the outcome."""

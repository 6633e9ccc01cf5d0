"""Surveys: asks the applicant to rate the service, once, and reports the results."""

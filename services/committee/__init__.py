"""Committee: the social researcher's queue and the research committee's decisions."""

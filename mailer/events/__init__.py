"""Events people come to: the calendar's events, answered, reminded of, and gathered into digests."""

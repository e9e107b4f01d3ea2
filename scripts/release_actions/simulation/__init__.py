"""The simulated world of rehearsals: virtual time, scenarios, and the traffic they make."""

"""Integration tests: real servers and HTTP fakes, real clients."""

"""HTTP fakes of SaaS APIs, spoken to by the real client libraries in tests."""

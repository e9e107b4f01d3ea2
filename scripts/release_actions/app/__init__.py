"""The use cases: a rollout, a watch, a manual rollback, the release gate, a db deploy."""

"""Mobile releases (source §8): store staged rollouts gated on vitals, on the canary's judge."""

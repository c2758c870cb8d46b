"""pytest fixtures (filled by the testkit modules)."""

"""Shared fixtures. Real services come from the plugins below; each starts what it needs."""
pytest_plugins = ["tests.fixtures.redis", "tests.fixtures.postgres", "tests.fixtures.app"]

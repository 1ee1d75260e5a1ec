"""Shared fixtures. Every module in tests/fixtures/ is a plugin (real services, the served
app, stand-ins for remote products); each starts what it needs."""
from pathlib import Path

pytest_plugins = sorted(
    f"tests.fixtures.{module.stem}"
    for module in (Path(__file__).parent / "fixtures").glob("*.py")
    if module.stem not in ("__init__", "services")  # services: helpers, not fixtures
)

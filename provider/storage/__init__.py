"""Where the provider keeps what it must remember; short-lived state goes through
``open_state_store`` and the ``StateStore`` interface (``state``)."""
from provider.storage.state import StateStore, open_state_store

__all__ = ["StateStore", "open_state_store"]

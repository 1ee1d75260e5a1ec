"""The load generator and benchmark of twostep (``make bench``); not part of ``make test``."""

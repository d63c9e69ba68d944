"""Architecture tests: every one checks parity against a committed fixture through :mod:`tests.models.parity`."""

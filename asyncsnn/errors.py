"""Exceptions that the command-line tool reports as one clear message (no traceback)."""

from __future__ import annotations


class AsyncSNNError(Exception):
    """Base class of errors whose message tells the user what is wrong and how to fix it."""


class DataError(AsyncSNNError, ValueError):
    """A dataset is missing, truncated or corrupt; the message names the files and where to put them."""


class ConfigError(AsyncSNNError, ValueError):
    """A configuration field has a bad value; the message names the field and what is allowed."""

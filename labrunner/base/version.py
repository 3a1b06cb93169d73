"""labrunner's version (part of every cache key and run.json)."""

__version__ = "0.1.0"

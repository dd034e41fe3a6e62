"""Product-type classification for the Rakuten France catalogue."""

__version__ = "0.1.0"

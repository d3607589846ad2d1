"""gotop: a live terminal monitor for Go processes."""

__version__ = "0.1.0"

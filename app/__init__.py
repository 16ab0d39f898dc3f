"""attnserve's HTTP service: routes -> service -> scheduler -> engine -> model."""

__version__ = "0.1.0"

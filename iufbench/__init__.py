"""iufbench: the reference suite for incremental unified industrial defect inspection."""

__version__ = "0.1.0"

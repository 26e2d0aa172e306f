"""aerialseg: a reproducible study of semantic segmentation of high-resolution aerial imagery."""

__version__ = "0.1.0"

"""Errors raised by the dataset readers."""

from __future__ import annotations


class DatasetNotFoundError(FileNotFoundError):
    """A dataset (or some of its files) is not where the reader looked for it.

    The message names the dataset, the root that was searched, the missing files, the layout
    the reader expects and where to obtain the data.
    """

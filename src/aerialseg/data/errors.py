"""Errors raised by the dataset readers."""

from __future__ import annotations


class DatasetNotFoundError(FileNotFoundError):
    """A dataset (or some of its files) is not where the reader looked for it.

    The message names the dataset, the root that was searched, the missing files, the layout
    the reader expects and where to obtain the data.
    """


class CorruptFileError(ValueError):
    """A data file cannot be read (truncated download or extraction, damaged file).

    The message names the file and says what was wrong with it.
    """


class NonFiniteRasterError(ValueError):
    """A raster holds NaN or infinite values; the message names the file and counts them."""


class DataOptionError(ValueError):
    """A data option has an unknown name or an invalid value.

    The message names the option and lists the valid names, values or types.
    """

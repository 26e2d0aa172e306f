"""One package per source paper: its methods, analyses, figures and reported numbers.

Each package defines ``PAPER`` (:class:`aerialseg.config.Paper`) in its ``__init__``;
:mod:`aerialseg.registry` finds them. Inside a package: ``method.py`` (method specs, their
hooks and training callbacks), ``analysis.py`` (the chapter's tables and checks),
``plots.py`` (the chapter's own figures), ``reported.py`` (the paper's numbers and claims).
"""

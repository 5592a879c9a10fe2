"""Composition root: the ``ioc`` console script and ``ioc demo`` wire the packages together."""

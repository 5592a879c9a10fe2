"""Vietnamese news NLP for the IOC: text normalisation, sentiment, topics, places, digest.

Imports nothing else of the project: database work takes a SQLAlchemy Engine or Connection
passed in and uses SQL text against the tables defined in ``gis/db/models.py``.
"""

from __future__ import annotations

__all__ = ["__version__"]

__version__ = "0.1.0"

"""Old dotted paths of the pygeoapi plugins, kept so pygeoapi configurations written before the
API package was cut by concern (``name: api.provider.PostGISProvider``) still load. New
configurations name :mod:`api.plugins`."""

from api.plugins import PostGISProvider, PostGISTileProvider

__all__ = ["PostGISProvider", "PostGISTileProvider"]

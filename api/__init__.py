"""OGC API publishing of ioc-monitor: pygeoapi configuration, a fast PostGIS provider plugin,
processes, review writes and the served ASGI app."""

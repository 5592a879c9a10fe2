"""Land monitoring domain core: PostGIS schema, embedded database, imagery, cadastre,
administrative units, change detection and parcel alerts.

``gis`` imports nothing else of the project (see docs/architecture.md)."""

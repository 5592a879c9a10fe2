"""News crawling for the IOC: outlets as data, one generic Scrapy spider, extraction,
deduplication, relevance, scoring (via nlp) and storage in PostGIS (via gis.db).

:mod:`crawler.extraction` is usable without Scrapy (``ioc crawl extract``).
"""

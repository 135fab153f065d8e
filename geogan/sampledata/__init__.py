"""Sample-data layer: the procedural world and its renderers (``geogan sample-data``).

Imports raster; never torch."""

"""geogan's QGIS plugin: a Processing provider that runs the geogan command line.

QGIS calls :func:`classFactory`; nothing here imports geogan or torch.
"""


def classFactory(iface):
    """The plugin object QGIS loads (``iface`` is None under ``qgis_process``)."""
    from .plugin import GeoganPlugin

    return GeoganPlugin(iface)

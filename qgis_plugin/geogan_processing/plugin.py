"""The plugin object: it registers the geogan Processing provider and nothing else."""

from qgis.core import QgsApplication

from .provider import GeoganProvider


class GeoganPlugin:
    """Adds the geogan provider to QGIS's Processing registry (toolbox and qgis_process)."""

    def __init__(self, iface):
        self.iface = iface
        self.provider = None

    def initProcessing(self):
        """Called by qgis_process, and by :meth:`initGui` in the QGIS window."""
        if self.provider is None:
            self.provider = GeoganProvider()
            QgsApplication.processingRegistry().addProvider(self.provider)

    def initGui(self):
        self.initProcessing()

    def unload(self):
        if self.provider is not None:
            QgsApplication.processingRegistry().removeProvider(self.provider)
            self.provider = None

"""The geogan Processing provider: its algorithms and its one setting, the executable."""

import os

from qgis.core import QgsProcessingProvider, QgsSettings
from qgis.PyQt.QtGui import QIcon

from . import geogan_cli

#: The provider setting (Processing › Options › Providers › geogan).
EXECUTABLE_SETTING = "GEOGAN_EXECUTABLE"


def configured_executable():
    """The geogan executable the user set, or "" for the one on PATH."""
    value = QgsSettings().value(f"Processing/Configuration/{EXECUTABLE_SETTING}", "")
    return str(value or "").strip()


def executable():
    """The geogan executable to run, checked (runs, recent enough); raises
    :class:`geogan_cli.GeoganNotUsable` with what to do otherwise."""
    found = geogan_cli.find_executable(configured_executable())
    geogan_cli.check(found)
    return found


class GeoganProvider(QgsProcessingProvider):
    """Export chips, train, translate and evaluate, each by running the geogan CLI."""

    def load(self):
        try:  # the Options dialog's entry; absent where the processing plugin is not loaded
            from processing.core.ProcessingConfig import ProcessingConfig, Setting

            ProcessingConfig.settingIcons[self.name()] = self.icon()
            ProcessingConfig.addSetting(Setting(
                self.name(), EXECUTABLE_SETTING,
                "geogan executable (empty: the geogan on PATH)", "",
                valuetype=Setting.FILE))
            ProcessingConfig.readSettings()
        except ImportError:
            pass
        self.refreshAlgorithms()
        return True

    def unload(self):
        try:
            from processing.core.ProcessingConfig import ProcessingConfig

            ProcessingConfig.removeSetting(EXECUTABLE_SETTING)
        except (ImportError, KeyError):
            pass

    def loadAlgorithms(self):
        from .algorithms import ALGORITHMS

        for algorithm in ALGORITHMS:
            self.addAlgorithm(algorithm())

    def id(self):
        return "geogan"

    def name(self):
        return "geogan"

    def longName(self):
        return "geogan (Pix2Pix and CycleGAN raster translation)"

    def icon(self):
        return QIcon(os.path.join(os.path.dirname(__file__), "icon.svg"))

"""The geogan algorithms: QGIS parameters in, a geogan command run, outputs back.

Each algorithm builds the arguments of one geogan command from its parameters and runs it
through :mod:`geogan_cli`; its help is that command's ``--help``, so the toolbox and the
terminal never disagree.
"""

import html
import json
import os
import tempfile

from qgis.core import (
    QgsProcessing,
    QgsProcessingAlgorithm,
    QgsProcessingContext,
    QgsProcessingException,
    QgsProcessingOutputNumber,
    QgsProcessingParameterBoolean,
    QgsProcessingParameterEnum,
    QgsProcessingParameterFeatureSource,
    QgsProcessingParameterFile,
    QgsProcessingParameterFileDestination,
    QgsProcessingParameterFolderDestination,
    QgsProcessingParameterMultipleLayers,
    QgsProcessingParameterNumber,
    QgsProcessingParameterRasterDestination,
    QgsProcessingParameterRasterLayer,
)

from . import geogan_cli
from .provider import executable

MODEL_FILTER = "geogan model files (*.pt)"


class GeoganAlgorithm(QgsProcessingAlgorithm):
    """What every geogan algorithm shares: help from the CLI, the checks, the run."""

    command = ""  # the geogan command
    label = ""
    note = ""  # said before the CLI's help

    def createInstance(self):
        return type(self)()

    def name(self):
        return self.command

    def displayName(self):
        return self.label

    def shortDescription(self):
        return self.note or None

    def shortHelpString(self):
        try:
            text = geogan_cli.help_html(geogan_cli.help_text(executable(), self.command))
        except geogan_cli.GeoganNotUsable as error:
            text = f"<p>geogan cannot run: {html.escape(str(error))}</p>"
        note = f"<p><b>{html.escape(self.note)}</b></p>" if self.note else ""
        return (f"{note}<p>This algorithm runs <code>geogan {self.command}</code>; its "
                f"help:</p>{text}")

    def helpUrl(self):
        return "https://github.com/geogan/geogan/blob/main/docs/qgis.md"

    def canExecute(self):
        try:
            executable()
        except geogan_cli.GeoganNotUsable as error:
            return False, f"geogan cannot run: {error}"
        return True, ""

    def arguments(self, parameters, context, feedback):
        """The geogan command line (after ``geogan``) and the outputs to return."""
        raise NotImplementedError

    def processAlgorithm(self, parameters, context, feedback):
        try:
            geogan = executable()
        except geogan_cli.GeoganNotUsable as error:
            raise QgsProcessingException(f"geogan cannot run: {error}") from None
        arguments, outputs = self.arguments(parameters, context, feedback)
        decile = [-1]

        def progress(percent, line):
            feedback.setProgress(percent)
            if int(percent // 10) != decile[0] or line.get("done") == line.get("total"):
                decile[0] = int(percent // 10)
                losses = ", ".join(f"{k} {v:.4g}" for k, v in (line.get("losses") or {}).items())
                feedback.pushInfo(f"{line.get('progress')}: {line.get('done')} of "
                                  f"{line.get('total')} {line.get('unit')}"
                                  + (f"; {losses}" if losses else ""))

        handlers = geogan_cli.Handlers(progress=progress, info=feedback.pushInfo,
                                       warning=getattr(feedback, "pushWarning",
                                                       feedback.reportError),
                                       canceled=feedback.isCanceled)
        result = geogan_cli.run(geogan, [str(a) for a in arguments], handlers)
        if result.canceled:
            raise QgsProcessingException("Canceled: geogan stopped and wrote no output.")
        if result.returncode != 0:
            raise QgsProcessingException(result.error_message())
        return self.finish(outputs, result, context)

    def finish(self, outputs, result, context):
        """The algorithm's results once geogan succeeded."""
        return outputs


def raster_path(algorithm, parameters, name, context):
    """The file behind a raster layer parameter (geogan reads what GDAL opens)."""
    layer = algorithm.parameterAsRasterLayer(parameters, name, context)
    if layer is None:
        raise QgsProcessingException(f"{name}: not a raster layer.")
    if layer.providerType() != "gdal":
        raise QgsProcessingException(
            f"{name}: {layer.name()} is a {layer.providerType()} layer; geogan reads raster "
            "files (save it as a GeoTIFF first).")
    return layer.source()


def empty_folder_ready(path):
    """Processing creates a folder destination before the algorithm runs; geogan wants
    to create it (atomically): an empty one is removed first."""
    if os.path.isdir(path) and not os.listdir(path):
        os.rmdir(path)


class ExportChips(GeoganAlgorithm):
    command, label = "export-chips", "Export chips"

    def initAlgorithm(self, config=None):
        self.addParameter(QgsProcessingParameterRasterLayer("INPUT", "Input raster"))
        self.addParameter(QgsProcessingParameterRasterLayer(
            "ADDITIONAL", "Additional raster (the target domain)"))
        self.addParameter(QgsProcessingParameterNumber(
            "TILE_SIZE", "Tile size (pixels)", defaultValue=256, minValue=16))
        self.addParameter(QgsProcessingParameterNumber(
            "STRIDE", "Stride (pixels; empty: the tile size)", optional=True, minValue=1))
        self.addParameter(QgsProcessingParameterNumber(
            "MIN_VALID", "Minimum valid share of a chip", QgsProcessingParameterNumber.Double,
            defaultValue=0.9, minValue=0.0, maxValue=1.0))
        self.addParameter(QgsProcessingParameterNumber(
            "VAL_FRACTION", "Validation share (spatial blocks)",
            QgsProcessingParameterNumber.Double, defaultValue=0.1, minValue=0.0, maxValue=0.99))
        self.addParameter(QgsProcessingParameterFeatureSource(
            "AOI", "Area of interest (polygons)", [QgsProcessing.TypeVectorPolygon],
            optional=True))
        self.addParameter(QgsProcessingParameterBoolean(
            "UNPAIRED", "Unpaired (CycleGAN: chip each raster on its own)", defaultValue=False))
        self.addParameter(QgsProcessingParameterNumber("SEED", "Seed", defaultValue=0,
                                                       minValue=0))
        self.addParameter(QgsProcessingParameterFolderDestination("OUTPUT", "Chip folder"))

    def arguments(self, parameters, context, feedback):
        out = self.parameterAsString(parameters, "OUTPUT", context)
        empty_folder_ready(out)
        args = ["export-chips", raster_path(self, parameters, "INPUT", context),
                raster_path(self, parameters, "ADDITIONAL", context), "-o", out,
                "--tile-size", self.parameterAsInt(parameters, "TILE_SIZE", context),
                "--min-valid", self.parameterAsDouble(parameters, "MIN_VALID", context),
                "--val-fraction", self.parameterAsDouble(parameters, "VAL_FRACTION", context),
                "--seed", self.parameterAsInt(parameters, "SEED", context)]
        if parameters.get("STRIDE") not in (None, ""):
            args += ["--stride", self.parameterAsInt(parameters, "STRIDE", context)]
        if parameters.get("AOI") not in (None, ""):
            args += ["--aoi", self.parameterAsCompatibleSourceLayerPath(
                parameters, "AOI", context, ["geojson"], "geojson", feedback)]
        if self.parameterAsBool(parameters, "UNPAIRED", context):
            args.append("--unpaired")
        return args, {"OUTPUT": out}

    def finish(self, outputs, result, context):
        index = os.path.join(outputs["OUTPUT"], "index.geojson")
        if os.path.exists(index):  # the chips' footprints and split, as a layer
            context.addLayerToLoadOnCompletion(index, QgsProcessingContext.LayerDetails(
                "chips index", context.project(), "OUTPUT"))
        return outputs


class Train(GeoganAlgorithm):
    command, label = "train", "Train (small runs)"
    note = ("For runs small enough to wait for in QGIS (minutes: the tiny preset, a few "
            "hundred steps). Train big models from a terminal with geogan train, where "
            "Ctrl-C and --resume continue a run.")

    def initAlgorithm(self, config=None):
        self.addParameter(QgsProcessingParameterFile(
            "CHIPS", "Chip folder (from Export chips)", QgsProcessingParameterFile.Folder))
        self.addParameter(QgsProcessingParameterEnum(
            "PRESET", "Preset", list(geogan_cli.PRESETS), defaultValue=2))
        self.addParameter(QgsProcessingParameterNumber(
            "STEPS", "Steps (empty: the preset's epochs)", optional=True, minValue=1,
            defaultValue=300))
        self.addParameter(QgsProcessingParameterNumber(
            "EPOCHS", "Epochs (instead of steps)", optional=True, minValue=1))
        self.addParameter(QgsProcessingParameterEnum(
            "DEVICE", "Device", list(geogan_cli.DEVICES), defaultValue=0))
        self.addParameter(QgsProcessingParameterNumber("SEED", "Seed", defaultValue=0,
                                                       minValue=0))
        self.addParameter(QgsProcessingParameterFileDestination(
            "OUTPUT", "Model file", MODEL_FILTER))

    def arguments(self, parameters, context, feedback):
        out = self.parameterAsFileOutput(parameters, "OUTPUT", context)
        args = ["train", self.parameterAsFile(parameters, "CHIPS", context), "-o", out,
                "--preset", geogan_cli.PRESETS[self.parameterAsEnum(parameters, "PRESET",
                                                                    context)],
                "--device", geogan_cli.DEVICES[self.parameterAsEnum(parameters, "DEVICE",
                                                                    context)],
                "--seed", self.parameterAsInt(parameters, "SEED", context), "--overwrite"]
        if parameters.get("EPOCHS") not in (None, ""):
            args += ["--epochs", self.parameterAsInt(parameters, "EPOCHS", context)]
        elif parameters.get("STEPS") not in (None, ""):
            args += ["--steps", self.parameterAsInt(parameters, "STEPS", context)]
        return args, {"OUTPUT": out}


def add_translate_options(algorithm):
    """The model and the options Translate and Translate scenes share."""
    algorithm.addParameter(QgsProcessingParameterFile(
        "MODEL", "Model file (from geogan train)", extension="pt"))
    algorithm.addParameter(QgsProcessingParameterNumber(
        "OVERLAP", "Overlap (pixels; empty: a quarter of the tile)", optional=True,
        minValue=0))
    algorithm.addParameter(QgsProcessingParameterEnum(
        "OUTPUT_KIND", "Output", list(geogan_cli.OUTPUT_KINDS), defaultValue=0))
    algorithm.addParameter(QgsProcessingParameterEnum(
        "DEVICE", "Device", list(geogan_cli.DEVICES), defaultValue=0))
    algorithm.addParameter(QgsProcessingParameterBoolean(
        "COG", "Cloud Optimised GeoTIFF (with overviews)", defaultValue=False))


def translate_options(algorithm, parameters, context):
    """Arguments of the options :func:`add_translate_options` adds."""
    args = ["--model", algorithm.parameterAsFile(parameters, "MODEL", context),
            "--output-kind", geogan_cli.OUTPUT_KINDS[
                algorithm.parameterAsEnum(parameters, "OUTPUT_KIND", context)],
            "--device", geogan_cli.DEVICES[
                algorithm.parameterAsEnum(parameters, "DEVICE", context)], "--overwrite"]
    if parameters.get("OVERLAP") not in (None, ""):
        args += ["--overlap", algorithm.parameterAsInt(parameters, "OVERLAP", context)]
    if algorithm.parameterAsBool(parameters, "COG", context):
        args.append("--cog")
    return args


class Translate(GeoganAlgorithm):
    command, label = "translate", "Translate"

    def initAlgorithm(self, config=None):
        self.addParameter(QgsProcessingParameterRasterLayer("INPUT", "Raster to translate"))
        add_translate_options(self)
        self.addParameter(QgsProcessingParameterRasterDestination(
            "OUTPUT", "Translated raster"))

    def arguments(self, parameters, context, feedback):
        out = self.parameterAsOutputLayer(parameters, "OUTPUT", context)
        if not out.lower().endswith((".tif", ".tiff")):
            raise QgsProcessingException("geogan writes GeoTIFFs: give the output a .tif name.")
        return (["translate", raster_path(self, parameters, "INPUT", context), "-o", out,
                 *translate_options(self, parameters, context)], {"OUTPUT": out})


class TranslateScenes(GeoganAlgorithm):
    command, label = "translate", "Translate scenes (batch, mosaic)"
    note = ("Many scenes into one folder (<scene>.tif each). Mosaic: scenes on one pixel "
            "grid are translated as the mosaic they form, without seams along the joins.")

    def name(self):
        return "translate-scenes"

    def initAlgorithm(self, config=None):
        self.addParameter(QgsProcessingParameterMultipleLayers(
            "INPUT", "Rasters to translate", QgsProcessing.TypeRaster))
        add_translate_options(self)
        self.addParameter(QgsProcessingParameterBoolean(
            "MOSAIC", "Translate as one mosaic (tiles of one delivery)", defaultValue=False))
        self.addParameter(QgsProcessingParameterFolderDestination("OUTPUT", "Output folder"))

    def arguments(self, parameters, context, feedback):
        layers = self.parameterAsLayerList(parameters, "INPUT", context)
        out = self.parameterAsString(parameters, "OUTPUT", context)
        args = ["translate", *[layer.source() for layer in layers], "--out-dir", out,
                *translate_options(self, parameters, context)]
        if self.parameterAsBool(parameters, "MOSAIC", context):
            args.append("--mosaic")
        return args, {"OUTPUT": out}

    def finish(self, outputs, result, context):
        for name in sorted(os.listdir(outputs["OUTPUT"])):
            if name.endswith(".tif") and not name.startswith("."):
                context.addLayerToLoadOnCompletion(
                    os.path.join(outputs["OUTPUT"], name),
                    QgsProcessingContext.LayerDetails(name[:-4], context.project(), "OUTPUT"))
        return outputs


METRICS = ("L1", "RMSE", "PSNR", "SSIM", "PIXEL_ACCURACY", "MEAN_IOU", "SEAM_SCORE")


class Evaluate(GeoganAlgorithm):
    command, label = "evaluate", "Evaluate"

    def initAlgorithm(self, config=None):
        self.addParameter(QgsProcessingParameterRasterLayer(
            "PREDICTION", "Prediction (e.g. a translated raster)"))
        self.addParameter(QgsProcessingParameterRasterLayer("REFERENCE", "Reference"))
        self.addParameter(QgsProcessingParameterEnum(
            "PALETTE", "Score classes of a flat-colour map", ["no", "auto"], defaultValue=0))
        self.addParameter(QgsProcessingParameterFile(
            "PALETTE_FILE", "Palette file (JSON {\"class\": [r, g, b]}; instead of auto)",
            extension="json", optional=True))
        self.addParameter(QgsProcessingParameterFileDestination(
            "OUTPUT_HTML", "Report", "HTML files (*.html)", optional=True,
            createByDefault=True))
        for name in METRICS:
            self.addOutput(QgsProcessingOutputNumber(name, name.replace("_", " ").lower()))

    def arguments(self, parameters, context, feedback):
        args = ["evaluate", raster_path(self, parameters, "PREDICTION", context),
                raster_path(self, parameters, "REFERENCE", context), "--json"]
        palette_file = self.parameterAsFile(parameters, "PALETTE_FILE", context)
        if palette_file:
            args += ["--palette", palette_file]
        elif self.parameterAsEnum(parameters, "PALETTE", context) == 1:
            args += ["--palette", "auto"]
        html_path = self.parameterAsFileOutput(parameters, "OUTPUT_HTML", context)
        return args, {"OUTPUT_HTML": html_path}

    def finish(self, outputs, result, context):
        try:
            report = json.loads("\n".join(result.stdout))
        except ValueError:
            raise QgsProcessingException(
                "geogan evaluate did not print its JSON report.") from None
        mean, palette = report["mean"], report.get("palette") or {}
        values = {"L1": mean.get("l1"), "RMSE": mean.get("rmse"), "PSNR": mean.get("psnr"),
                  "SSIM": mean.get("ssim"), "PIXEL_ACCURACY": palette.get("pixel_accuracy"),
                  "MEAN_IOU": palette.get("mean_iou"),
                  "SEAM_SCORE": (report.get("seams") or {}).get("prediction")}
        for name, value in values.items():
            outputs[name] = float(value) if value is not None else None
        if outputs.get("OUTPUT_HTML"):
            write_report(outputs["OUTPUT_HTML"], report, values)
        return outputs


def write_report(path, report, values):
    """The metrics as an HTML page, written whole then renamed (as geogan does)."""
    rows = "".join(f"<tr><td>{html.escape(k.replace('_', ' ').lower())}</td>"
                   f"<td>{'-' if v is None else html.escape(str(v))}</td></tr>"
                   for k, v in values.items())
    page = (f"<html><body><h2>geogan evaluate</h2><p>{html.escape(report['prediction'])} vs "
            f"{html.escape(report['reference'])}: {report['pixels']} pixels scored</p>"
            f"<table border=\"1\">{rows}</table><h3>Full report</h3><pre>"
            f"{html.escape(json.dumps(report, indent=2))}</pre></body></html>")
    folder = os.path.dirname(os.path.abspath(path))
    with tempfile.NamedTemporaryFile("w", dir=folder, prefix=".", suffix=".html",
                                     delete=False, encoding="utf-8") as handle:
        handle.write(page)
    os.replace(handle.name, path)


ALGORITHMS = (ExportChips, Train, Translate, TranslateScenes, Evaluate)

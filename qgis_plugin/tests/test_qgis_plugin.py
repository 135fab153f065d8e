"""The plugin in a real, headless QGIS: qgis_process and PyQGIS against geogan's CLI.

Run with the Python QGIS is built for (Debian's /usr/bin/python3), not geogan's venv::

    QT_QPA_PLATFORM=offscreen /usr/bin/python3 -m unittest discover -s qgis_plugin/tests -v

``.ci/run`` does, after the README's test command. The plugin is installed from the zip
that ``scripts/build_qgis_plugin.py`` builds into a throw-away profile (XDG_DATA_HOME of a
temporary folder), and runs the geogan of ``$GEOGAN`` (default: the repository's
``.venv/bin/geogan``). The data are made by that geogan: a generated scene, its chips and a
tiny model trained for a few steps.
"""

import filecmp
import os
import shutil
import subprocess
import sys
import tempfile
import unittest
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
GEOGAN = os.environ.get("GEOGAN", str(ROOT / ".venv" / "bin" / "geogan"))
# Debian's qgis_process wrapper passes --noversioncheck, which its qgis_process.bin (3.22)
# refuses: call the binary itself where there is one.
QGIS_PROCESS = shutil.which("qgis_process.bin") or shutil.which("qgis_process") or "qgis_process"
ALGORITHMS = ("geogan:export-chips", "geogan:train", "geogan:translate",
              "geogan:translate-scenes", "geogan:evaluate")

state = {}


def geogan(*args):
    """Run the CLI; its stdout."""
    done = subprocess.run([GEOGAN, "-q", *map(str, args)], capture_output=True, text=True,
                          check=False)
    if done.returncode != 0:
        raise AssertionError(f"geogan {' '.join(map(str, args))}: {done.stderr}")
    return done.stdout


def qgis_process(*args):
    """Run qgis_process with the throw-away profile; (exit code, stdout + stderr)."""
    done = subprocess.run([QGIS_PROCESS, *map(str, args)], capture_output=True, text=True,
                          env=state["env"], check=False, timeout=600)
    return done.returncode, done.stdout + done.stderr


def setUpModule():
    tmp = Path(tempfile.mkdtemp(prefix="geogan-qgis-"))
    state["tmp"] = tmp
    profile = tmp / "xdg" / "QGIS" / "QGIS3" / "profiles" / "default"
    plugins = profile / "python" / "plugins"
    plugins.mkdir(parents=True)
    build = subprocess.run([sys.executable, str(ROOT / "scripts" / "build_qgis_plugin.py"),
                            "-o", str(tmp / "plugin.zip")], capture_output=True, text=True,
                           check=True)
    assert "Wrote" in build.stdout
    with zipfile.ZipFile(tmp / "plugin.zip") as archive:
        archive.extractall(plugins)
    (profile / "QGIS").mkdir()
    (profile / "QGIS" / "QGIS3.ini").write_text(
        "[PythonPlugins]\ngeogan_processing=true\n\n"
        f"[Processing]\nConfiguration\\GEOGAN_EXECUTABLE={GEOGAN}\n")
    env = dict(os.environ, XDG_DATA_HOME=str(tmp / "xdg"), QT_QPA_PLATFORM="offscreen",
               XDG_RUNTIME_DIR=str(tmp / "runtime"))
    (tmp / "runtime").mkdir(mode=0o700)
    state["env"] = env
    os.environ.update({k: env[k] for k in ("XDG_DATA_HOME", "QT_QPA_PLATFORM",
                                           "XDG_RUNTIME_DIR")})
    data = tmp / "data"
    geogan("sample-data", data, "--kind", "sat-map", "--size", 256, "--seed", 1)
    geogan("export-chips", data / "sat.tif", data / "map.tif", "-o", data / "chips",
           "--tile-size", 64, "--stride", 64)
    geogan("train", data / "chips", "-o", data / "m.pt", "--preset", "tiny", "--steps", 4,
           "--ngf", 8, "--ndf", 8, "--device", "cpu", "--precision", "fp32", "--classes", "auto")
    geogan("sample-data", data / "big", "--kind", "sat-map", "--size", 1024, "--seed", 2)
    state["data"] = data


def tearDownModule():
    shutil.rmtree(state["tmp"], ignore_errors=True)


def tree(folder):
    """Every file under ``folder``, relative, hidden ones included."""
    return sorted(str(p.relative_to(folder)) for p in Path(folder).rglob("*") if p.is_file())


class QgisProcessTest(unittest.TestCase):
    """The algorithms as qgis_process runs them."""

    def test_qgis_process_lists_the_geogan_algorithms(self):
        code, out = qgis_process("list")
        self.assertEqual(code, 0, out)
        for algorithm in ALGORITHMS:
            self.assertIn(algorithm, out)

    def test_help_is_the_cli_help(self):
        code, out = qgis_process("help", "geogan:translate")
        self.assertEqual(code, 0, out)
        cli_help = geogan("translate", "--help")
        self.assertIn("Usage: geogan translate [OPTIONS] SCENES...", out)
        self.assertIn(cli_help.splitlines()[2].strip(), out)

    def test_translate_gives_the_bytes_of_geogan_translate(self):
        data, out = state["data"], state["tmp"] / "translate"
        out.mkdir()
        geogan("translate", data / "sat.tif", "--model", data / "m.pt", "-o", out / "cli.tif",
               "--device", "cpu", "--overlap", 16, "--output-kind", "image")
        code, log = qgis_process(
            "run", "geogan:translate", "--", f"INPUT={data / 'sat.tif'}",
            f"MODEL={data / 'm.pt'}", "OVERLAP=16", "OUTPUT_KIND=1", "DEVICE=1",
            f"OUTPUT={out / 'qgis.tif'}")
        self.assertEqual(code, 0, log)
        self.assertTrue(filecmp.cmp(out / "cli.tif", out / "qgis.tif", shallow=False))

    def test_export_chips_gives_the_folder_of_geogan_export_chips(self):
        data, out = state["data"], state["tmp"] / "export"
        out.mkdir()
        geogan("export-chips", data / "sat.tif", data / "map.tif", "-o", out / "cli",
               "--tile-size", 32, "--stride", 16, "--val-fraction", 0.25, "--seed", 3)
        code, log = qgis_process(
            "run", "geogan:export-chips", "--", f"INPUT={data / 'sat.tif'}",
            f"ADDITIONAL={data / 'map.tif'}", "TILE_SIZE=32", "STRIDE=16",
            "VAL_FRACTION=0.25", "SEED=3", f"OUTPUT={out / 'qgis'}")
        self.assertEqual(code, 0, log)
        self.assertEqual(tree(out / "cli"), tree(out / "qgis"))
        self.assertGreater(len(tree(out / "cli")), 100)
        for name in tree(out / "cli"):
            self.assertTrue(filecmp.cmp(out / "cli" / name, out / "qgis" / name,
                                        shallow=False), name)

    def test_a_bad_input_is_geogans_one_line_message_and_no_output(self):
        data, out = state["data"], state["tmp"] / "bad"
        out.mkdir()
        not_a_model = out / "notes.pt"
        not_a_model.write_text("not a model")
        cli = subprocess.run([GEOGAN, "translate", str(data / "sat.tif"), "--model",
                              str(not_a_model), "-o", str(out / "cli.tif")],
                             capture_output=True, text=True, check=False)
        message = cli.stderr.strip().splitlines()[-1]
        self.assertTrue(message.startswith("Error: "), cli.stderr)
        code, log = qgis_process(
            "run", "geogan:translate", "--", f"INPUT={data / 'sat.tif'}",
            f"MODEL={not_a_model}", f"OUTPUT={out / 'qgis.tif'}")
        self.assertNotEqual(code, 0, log)
        self.assertIn(message[len("Error: "):], log)
        self.assertNotIn("Traceback", log)
        self.assertEqual(tree(out), ["notes.pt"])


class PyQgisTest(unittest.TestCase):
    """The plugin loaded by PyQGIS, as in the QGIS window: cancel, outputs, settings."""

    @classmethod
    def setUpClass(cls):
        from qgis.core import QgsApplication, QgsSettings

        cls.app = QgsApplication([], False)
        cls.app.initQgis()
        sys.path.insert(0, "/usr/share/qgis/python/plugins")
        sys.path.insert(0, str(Path(os.environ["XDG_DATA_HOME"]) / "QGIS" / "QGIS3" /
                               "profiles" / "default" / "python" / "plugins"))
        from processing.core.Processing import Processing

        Processing.initialize()
        import geogan_processing

        cls.plugin = geogan_processing.classFactory(None)
        cls.plugin.initProcessing()
        QgsSettings().setValue("Processing/Configuration/GEOGAN_EXECUTABLE", GEOGAN)

    @classmethod
    def tearDownClass(cls):
        cls.plugin.unload()

    def run_algorithm(self, name, parameters, feedback=None):
        import processing
        from qgis.core import QgsProcessingContext, QgsProcessingFeedback, QgsProject

        context = QgsProcessingContext()
        context.setProject(QgsProject.instance())
        return processing.run(name, parameters, context=context,
                              feedback=feedback or QgsProcessingFeedback())

    def test_cancel_mid_run_stops_geogan_and_leaves_no_file(self):
        from qgis.core import QgsProcessingException, QgsProcessingFeedback

        data, out = state["data"], state["tmp"] / "cancel"
        out.mkdir()
        feedback, seen = QgsProcessingFeedback(), []

        def cancel_on_progress(percent):
            seen.append(percent)
            if percent > 0:
                feedback.cancel()

        feedback.progressChanged.connect(cancel_on_progress)
        with self.assertRaises(QgsProcessingException) as raised:
            self.run_algorithm("geogan:translate", {
                "INPUT": str(data / "big" / "sat.tif"), "MODEL": str(data / "m.pt"),
                "DEVICE": 1, "OVERLAP": 32, "OUTPUT": str(out / "big.tif")}, feedback)
        self.assertIn("Canceled", str(raised.exception))
        self.assertTrue(seen and 0 < max(seen) < 100, seen)
        self.assertEqual(tree(out), [])

    def test_progress_reaches_100_and_evaluate_gives_metrics_and_a_report(self):
        from qgis.core import QgsProcessingFeedback

        data, out = state["data"], state["tmp"] / "evaluate"
        out.mkdir()
        feedback, seen = QgsProcessingFeedback(), []
        feedback.progressChanged.connect(seen.append)
        self.run_algorithm("geogan:translate", {
            "INPUT": str(data / "sat.tif"), "MODEL": str(data / "m.pt"), "DEVICE": 1,
            "OUTPUT": str(out / "map.tif")}, feedback)
        self.assertEqual(seen[-1], 100)
        self.assertEqual(seen, sorted(seen))
        result = self.run_algorithm("geogan:evaluate", {
            "PREDICTION": str(out / "map.tif"), "REFERENCE": str(data / "map.tif"),
            "PALETTE": 1, "OUTPUT_HTML": str(out / "report.html")})
        cli = geogan("evaluate", out / "map.tif", data / "map.tif", "--palette", "auto",
                     "--json")
        self.assertIn(f"{result['PSNR']:.6g}"[:5], cli)
        self.assertGreaterEqual(result["PIXEL_ACCURACY"], 0)
        self.assertIn("pixel accuracy", (out / "report.html").read_text())

    def test_train_writes_a_model_and_translate_scenes_a_folder_of_layers(self):
        from qgis.core import QgsProcessingContext, QgsProcessingFeedback, QgsProject

        data, out = state["data"], state["tmp"] / "train"
        out.mkdir()
        feedback, seen = QgsProcessingFeedback(), []
        feedback.progressChanged.connect(seen.append)
        result = self.run_algorithm("geogan:train", {
            "CHIPS": str(data / "chips"), "PRESET": 2, "STEPS": 2, "DEVICE": 1,
            "OUTPUT": str(out / "t.pt")}, feedback)
        self.assertTrue(Path(result["OUTPUT"]).is_file())
        self.assertEqual(seen[-1], 100)
        import processing

        context = QgsProcessingContext()
        context.setProject(QgsProject.instance())
        result = processing.run("geogan:translate-scenes", {
            "INPUT": [str(data / "sat.tif"), str(data / "map.tif")], "MODEL": str(data / "m.pt"),
            "DEVICE": 1, "OUTPUT": str(out / "maps")}, context=context)
        self.assertEqual(tree(result["OUTPUT"]), ["map.tif", "sat.tif"])
        self.assertEqual(sorted(Path(p).name for p in context.layersToLoadOnCompletion()),
                         ["map.tif", "sat.tif"])

    def test_export_chips_clips_to_an_aoi_as_the_cli_does(self):
        import json

        data, out = state["data"], state["tmp"] / "aoi"
        out.mkdir()
        west = [[405000, 5000000], [405128, 5000000], [405128, 4999744], [405000, 4999744],
                [405000, 5000000]]
        (out / "west.geojson").write_text(json.dumps({
            "type": "FeatureCollection",
            "crs": {"type": "name", "properties": {"name": "urn:ogc:def:crs:EPSG::32633"}},
            "features": [{"type": "Feature", "properties": {},
                          "geometry": {"type": "Polygon", "coordinates": [west]}}]}))
        geogan("export-chips", data / "sat.tif", data / "map.tif", "-o", out / "cli",
               "--tile-size", 32, "--aoi", out / "west.geojson")
        result = self.run_algorithm("geogan:export-chips", {
            "INPUT": str(data / "sat.tif"), "ADDITIONAL": str(data / "map.tif"),
            "TILE_SIZE": 32, "AOI": str(out / "west.geojson"), "OUTPUT": str(out / "qgis")})
        chips = [name for name in tree(out / "cli") if name.startswith("images")]
        self.assertTrue(0 < len(chips) <= 2 * 4 * 8, chips)  # at most a pair a west tile
        self.assertEqual(tree(out / "cli"), tree(result["OUTPUT"]))
        for name in [*chips, "index.geojson"]:
            self.assertTrue(filecmp.cmp(out / "cli" / name, out / "qgis" / name,
                                        shallow=False), name)

    def test_layers_keep_band_descriptions_and_a_class_band_its_colours(self):
        from qgis.core import QgsRasterLayer

        data, out = state["data"], state["tmp"] / "layers"
        out.mkdir()
        common = {"INPUT": str(data / "sat.tif"), "MODEL": str(data / "m.pt"), "DEVICE": 1}
        image = self.run_algorithm("geogan:translate", {
            **common, "OUTPUT_KIND": 1, "OUTPUT": str(out / "image.tif")})["OUTPUT"]
        classes = self.run_algorithm("geogan:translate", {
            **common, "OUTPUT_KIND": 4, "OUTPUT": str(out / "classes.tif")})["OUTPUT"]
        layer = QgsRasterLayer(image, "image")
        self.assertEqual([layer.bandName(b).split(": ")[-1] for b in (1, 2, 3)],
                         ["red", "green", "blue"])
        layer = QgsRasterLayer(classes, "classes")
        self.assertEqual(layer.bandCount(), 1)
        self.assertEqual(layer.renderer().type(), "paletted")

    def test_a_missing_geogan_is_a_clear_message(self):
        from qgis.core import QgsProcessingException, QgsSettings

        settings = QgsSettings()
        settings.setValue("Processing/Configuration/GEOGAN_EXECUTABLE", "/nowhere/geogan")
        try:
            algorithm = self.plugin.provider.algorithm("translate")
            ok, message = algorithm.canExecute()
            self.assertFalse(ok)
            self.assertIn("/nowhere/geogan", message)
            self.assertIn("Processing › Options › Providers › geogan", message)
            with self.assertRaises(QgsProcessingException) as raised:
                self.run_algorithm("geogan:translate", {
                    "INPUT": str(state["data"] / "sat.tif"),
                    "MODEL": str(state["data"] / "m.pt"),
                    "OUTPUT": str(state["tmp"] / "never.tif")})
            self.assertIn("does not exist or cannot be run", str(raised.exception))
        finally:
            settings.setValue("Processing/Configuration/GEOGAN_EXECUTABLE", GEOGAN)


if __name__ == "__main__":
    unittest.main()

"""The QGIS plugin's screenshots in docs/img/, from a real QGIS window under Xvfb.

    python3 scripts/qgis_screenshots.py --geogan .venv/bin/geogan --model m.pt \\
        --scene sample_data/sat-map/sat.tif

Needs Debian's qgis, python3-qgis and xvfb. It installs the plugin into a throw-away
profile, starts ``qgis`` under ``xvfb-run`` with this file as its ``--code`` script, which
opens the *Translate* dialog filled in (docs/img/qgis-dialog.png), runs it, and shows the
translated layer above its input (docs/img/qgis-layer.png), then quits.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

try:
    ROOT = Path(__file__).resolve().parents[1]
except NameError:  # run by QGIS's --code, which sets no __file__
    ROOT = Path(os.environ["GEOGAN_SHOTS_ROOT"])
SIZE = (1280, 800)


def outside() -> None:
    """Set up a profile and run QGIS under Xvfb with this file as its startup code."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--geogan", type=Path, default=ROOT / ".venv" / "bin" / "geogan")
    parser.add_argument("--model", type=Path, required=True)
    parser.add_argument("--scene", type=Path, default=ROOT / "sample_data" / "sat-map" / "sat.tif")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "img")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="geogan-shots-"))
    profile = tmp / "profiles" / "default"
    shutil.copytree(ROOT / "qgis_plugin" / "geogan_processing",
                    profile / "python" / "plugins" / "geogan_processing")
    (profile / "QGIS").mkdir()
    (profile / "QGIS" / "QGIS3.ini").write_text(
        "[PythonPlugins]\ngeogan_processing=true\n\n"
        f"[Processing]\nConfiguration\\GEOGAN_EXECUTABLE={args.geogan.resolve()}\n\n"
        "[qgis]\nshowTips=false\n")
    args.out.mkdir(parents=True, exist_ok=True)
    scene = tmp / args.scene.name  # QGIS writes .aux.xml statistics beside what it opens
    shutil.copyfile(args.scene, scene)
    env = dict(os.environ, GEOGAN_SHOTS=str(args.out.resolve()),
               GEOGAN_SHOTS_MODEL=str(args.model.resolve()),
               GEOGAN_SHOTS_SCENE=str(scene),
               GEOGAN_SHOTS_TMP=str(tmp), GEOGAN_SHOTS_ROOT=str(ROOT), XDG_RUNTIME_DIR=str(tmp),
               # QGIS's Python finds its home from the python3 on PATH: the system's
               PATH=os.pathsep.join(["/usr/bin", os.environ.get("PATH", "")]))
    subprocess.run(["xvfb-run", "-a", "-s", f"-screen 0 {SIZE[0]}x{SIZE[1]}x24", "qgis",
                    "--nologo", "--noversioncheck", "--profiles-path", str(tmp),
                    "--code", str(Path(__file__).resolve())], env=env, check=True, timeout=300)
    for name in ("qgis-dialog.png", "qgis-layer.png"):
        print(f"Wrote {args.out / name} ({(args.out / name).stat().st_size // 1024} KB)")
    shutil.rmtree(tmp, ignore_errors=True)


def inside() -> None:
    """In QGIS: the dialog, the run, the map; each step once the window has drawn."""
    import processing
    from qgis.core import QgsProject, QgsRasterLayer
    from qgis.PyQt.QtCore import QTimer
    from qgis.utils import iface

    out, tmp = Path(os.environ["GEOGAN_SHOTS"]), Path(os.environ["GEOGAN_SHOTS_TMP"])
    scene = os.environ["GEOGAN_SHOTS_SCENE"]
    parameters = {"INPUT": scene, "MODEL": os.environ["GEOGAN_SHOTS_MODEL"], "DEVICE": 1,
                  "OUTPUT": str(tmp / "sat-translated.tif")}
    window = iface.mainWindow()
    window.setGeometry(0, 0, *SIZE)
    state = {}

    def dialog() -> None:
        project = QgsProject.instance()
        project.addMapLayer(QgsRasterLayer(scene, "sat"))
        state["dialog"] = processing.createAlgorithmDialog("geogan:translate", parameters)
        state["dialog"].setGeometry(120, 60, 1000, 640)
        state["dialog"].show()
        QTimer.singleShot(3000, translate)

    def translate() -> None:
        state["dialog"].grab().save(str(out / "qgis-dialog.png"))
        state["dialog"].close()
        result = processing.run("geogan:translate", parameters)
        layer = QgsRasterLayer(result["OUTPUT"], "sat-translated (geogan)")
        QgsProject.instance().addMapLayer(layer)
        iface.mapCanvas().setExtent(layer.extent())
        iface.mapCanvas().refresh()
        QTimer.singleShot(4000, finish)

    def finish() -> None:
        window.grab().save(str(out / "qgis-layer.png"))
        QgsProject.instance().clear()
        iface.actionExit().trigger()

    QTimer.singleShot(3000, dialog)


if os.environ.get("GEOGAN_SHOTS"):  # set by outside() for QGIS, which runs this file
    inside()
else:
    outside()

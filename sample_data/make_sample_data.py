"""Regenerate the sample pairs shipped in sample_data/ (see README.md there).

Run from anywhere with the package installed::

    python sample_data/make_sample_data.py

Each pair is written with :func:`geogan.sampledata.render.write_sample_pair`, replacing the
files in place; the same seeds and sizes give the same pixels, so a rerun with the
same numpy and GDAL versions leaves the pixel data unchanged.
"""

from __future__ import annotations

from pathlib import Path

from geogan.sampledata.render import write_sample_pair

HERE = Path(__file__).resolve().parent

# kind: (size in pixels, seed). Seeds picked so that every map class shows: open land,
# woods, lakes and the river, streets, the major road and buildings.
PAIRS = {
    "sat-map": (1024, 1),
    "dsm-imagery": (512, 0),
    "sar-optical": (512, 1),
}


def main() -> None:
    """Write every sample pair into ``sample_data/<kind>/`` and print the paths."""
    for kind, (size, seed) in PAIRS.items():
        pair = write_sample_pair(HERE / kind, kind, size=size, seed=seed, overwrite=True)
        print(pair.input_path)
        print(pair.target_path)


if __name__ == "__main__":
    main()

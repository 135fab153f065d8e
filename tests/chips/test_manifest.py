"""Tests of the index's chip outlines."""

from __future__ import annotations

import json

from shapely.geometry import box, mapping

from geogan.chips.manifest import box_geometry


def test_a_chip_outline_is_shapelys_box_exactly(rng):
    """The index writes the GeoJSON shapely would, so its bytes do not change."""
    for _ in range(200):
        bounds = tuple(float(x) for x in rng.normal(0, 1e6, 4))
        assert box_geometry(bounds) == mapping(box(*bounds))
        assert json.dumps(box_geometry(bounds), indent=1) == json.dumps(mapping(box(*bounds)),
                                                                         indent=1)
    ring = box_geometry((500_000.0, 4_999_744.0, 500_256.0, 5_000_000.0))["coordinates"][0]
    assert ring == ((500_256.0, 4_999_744.0), (500_256.0, 5_000_000.0),
                    (500_000.0, 5_000_000.0), (500_000.0, 4_999_744.0), (500_256.0, 4_999_744.0))

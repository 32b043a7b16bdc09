"""What a chart's data draws on its axes, in pixels: the one reading that the legibility
audit (``audit``) and the layout passes (``declutter``) both measure against."""

from __future__ import annotations

import numpy as np


def lines_and_markers(ax) -> tuple[list[np.ndarray], list[tuple[float, float, float]]]:
    """The visible data lines and area outlines of ``ax`` as (n, 2) pixel polylines, and
    its markers (line markers, scatter points) as (x, y, half side) squares in pixels."""
    from matplotlib.collections import PathCollection, PolyCollection

    dots = ax.figure.dpi / 72
    polylines: list[np.ndarray] = []
    markers: list[tuple[float, float, float]] = []
    for line in ax.lines:
        if not line.get_visible():
            continue
        xy = line.get_transform().transform(line.get_xydata())
        if line.get_linestyle() not in ("None", "", " ") and len(xy) > 1:
            polylines.append(xy)
        if line.get_marker() not in (None, "None", "", " "):
            r = line.get_markersize() * dots / 2
            markers += [(x, y, r) for x, y in xy]
    for coll in ax.collections:
        if not coll.get_visible():
            continue
        if isinstance(coll, PolyCollection):
            for path in coll.get_paths():
                polylines += [np.asarray(poly) for poly in coll.get_transform().transform_path(path).to_polygons()]
        elif isinstance(coll, PathCollection):
            xy = coll.get_offset_transform().transform(coll.get_offsets())
            sizes = np.broadcast_to(np.sqrt(coll.get_sizes()) * dots / 2, (len(xy),))
            markers += [(x, y, r) for (x, y), r in zip(xy, sizes)]
    return polylines, markers

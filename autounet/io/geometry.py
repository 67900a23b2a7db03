"""Where an image sits in space."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

SPACING_2D_THROUGH_PLANE = 999.0
"""Spacing given to the single slice axis of 2D images (as nnU-Net does), so no rule ever resamples or pools it."""


@dataclass
class Geometry:
    """Spacing, origin and direction of an image.

    Arrays in autounet are always ``(channels, z, y, x)``; ``spacing`` follows
    that array axis order (z, y, x). ``origin`` and ``direction`` are kept in
    the file's physical convention (SimpleITK's x, y, z order, direction as a
    row-major 3x3 matrix) so they are written back unchanged. 2D images have a
    single z slice and ``is_2d`` set.
    """

    spacing: tuple[float, float, float]
    origin: tuple[float, float, float] = (0.0, 0.0, 0.0)
    direction: tuple[float, ...] = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0)
    is_2d: bool = False
    extra: dict = field(default_factory=dict)

    def matches(self, other: "Geometry", rtol: float = 1e-3, atol: float = 1e-3) -> list[str]:
        """Names of the properties (spacing, origin, direction) that differ from ``other`` beyond tolerance."""
        differing = []
        for name in ("spacing", "origin", "direction"):
            a, b = np.asarray(getattr(self, name), float), np.asarray(getattr(other, name), float)
            if a.shape != b.shape or not np.allclose(a, b, rtol=rtol, atol=atol):
                differing.append(name)
        return differing

"""Postprocessing of predicted label maps: keep only the largest connected component.

``find-best`` decides on cross-validation results which of these steps help and records the decision as a
:class:`PostprocessingChoice` (stored in inference.json); ``predict`` applies it with
:func:`apply_postprocessing`. Components are connected through faces, edges and corners (26-connectivity in
3D, 8 in 2D).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
from scipy import ndimage


@dataclass
class PostprocessingChoice:
    """Which largest-component steps to apply, in order.

    ``all_foreground_as_one``: first treat every foreground value as one object and remove all but its
    largest component. ``largest_component_for``: then, for each entry (a class value, or the values of a
    region, as a list), remove all but the largest component of that class or region. Removed voxels
    become background (0).
    """

    all_foreground_as_one: bool = False
    largest_component_for: list[list[int]] = field(default_factory=list)

    @property
    def is_identity(self) -> bool:
        """True when nothing is applied."""
        return not self.all_foreground_as_one and not self.largest_component_for

    def describe(self) -> str:
        """One line saying what is applied, e.g. 'largest component of: all foreground; class 2'."""
        steps = (["all foreground"] if self.all_foreground_as_one else []) + [
            f"class {v[0]}" if len(v) == 1 else f"region {v}" for v in self.largest_component_for]
        return "largest component of: " + "; ".join(steps) if steps else "none"


def largest_component_mask(mask: np.ndarray) -> np.ndarray:
    """The largest connected component of a boolean mask (empty mask in, empty mask out)."""
    structure = np.ones((3,) * mask.ndim, bool)
    components, count = ndimage.label(mask, structure)
    if count <= 1:
        return mask.copy()
    sizes = np.bincount(components.ravel())
    sizes[0] = 0
    return components == int(np.argmax(sizes))


def keep_largest_component(labels: np.ndarray, classes_or_regions: Sequence[int | Sequence[int]],
                           background: int = 0) -> np.ndarray:
    """A copy of ``labels`` where, for each class (a value) or region (a list of values, treated as one
    object), only the largest connected component is kept; the rest is set to ``background``.

    Example:
        >>> labels = np.array([[[1, 1, 0, 1, 2, 2]]])
        >>> keep_largest_component(labels, [1]).tolist()
        [[[1, 1, 0, 0, 2, 2]]]
        >>> keep_largest_component(labels, [[1, 2]]).tolist()   # all foreground as one object
        [[[0, 0, 0, 1, 2, 2]]]
    """
    result = np.array(labels, copy=True)
    for entry in classes_or_regions:
        values = [entry] if np.isscalar(entry) else list(entry)
        mask = np.isin(result, values)
        if not mask.any():
            continue
        result[mask & ~largest_component_mask(mask)] = background
    return result


def apply_postprocessing(labels: np.ndarray, choice: PostprocessingChoice,
                         foreground_values: Sequence[int] | None = None) -> np.ndarray:
    """``labels`` with ``choice`` applied (a copy; the input is not changed).

    ``foreground_values`` defines 'all foreground' (default: every non-zero value).
    """
    result = np.array(labels, copy=True)
    if choice.all_foreground_as_one:
        values = list(foreground_values) if foreground_values is not None else \
            [int(v) for v in np.unique(result) if v != 0]
        result = keep_largest_component(result, [values])
    if choice.largest_component_for:
        result = keep_largest_component(result, choice.largest_component_for)
    return result

"""Largest-component postprocessing."""

import numpy as np

from autounet.inference.postprocessing import PostprocessingChoice, apply_postprocessing, keep_largest_component
from autounet.utils.serde import load_dataclass, to_json_value


def labels_with_islands():
    labels = np.zeros((5, 10, 10), np.uint8)
    labels[1:4, 1:5, 1:5] = 1      # big class-1 blob, 48 voxels
    labels[0, 8, 8] = 1            # class-1 island
    labels[1:4, 1:5, 5:7] = 2      # class 2 touching the class-1 blob, 24 voxels
    labels[4, 9, 0] = 2            # class-2 island
    return labels


def test_per_class_keeps_only_the_largest_component_of_that_class():
    labels = labels_with_islands()
    only_1 = keep_largest_component(labels, [1])
    assert only_1[0, 8, 8] == 0 and only_1[4, 9, 0] == 2
    assert np.count_nonzero(only_1 == 1) == 48
    both = keep_largest_component(labels, [1, 2])
    assert np.count_nonzero(both == 2) == 24 and np.count_nonzero(both == 1) == 48
    assert labels[0, 8, 8] == 1  # input untouched


def test_all_foreground_as_one_keeps_touching_classes_together():
    labels = labels_with_islands()
    fg = apply_postprocessing(labels, PostprocessingChoice(all_foreground_as_one=True))
    assert np.count_nonzero(fg == 1) == 48 and np.count_nonzero(fg == 2) == 24


def test_diagonal_neighbours_are_connected():
    labels = np.zeros((1, 4, 4), np.uint8)
    labels[0, 0, 0] = labels[0, 1, 1] = labels[0, 3, 3] = 1
    kept = keep_largest_component(labels, [1])
    assert kept[0, 0, 0] == kept[0, 1, 1] == 1 and kept[0, 3, 3] == 0


def test_choice_round_trips_json_and_identity_does_nothing():
    choice = PostprocessingChoice(True, [[1], [2, 3]])
    assert load_dataclass(PostprocessingChoice, to_json_value(choice)) == choice
    assert choice.describe() == "largest component of: all foreground; class 1; region [2, 3]"
    labels = labels_with_islands()
    assert PostprocessingChoice().is_identity
    np.testing.assert_array_equal(apply_postprocessing(labels, PostprocessingChoice()), labels)

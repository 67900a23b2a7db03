"""inference.json: what find-best chose (configurations, folds, postprocessing) and the scores behind it.

``autounet predict`` follows it by default: ``load_inference_choice(location.results)``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from autounet.errors import InvalidDatasetError
from autounet.evaluation.jsonio import load_scores_json, save_scores_json
from autounet.inference.postprocessing import PostprocessingChoice

INFERENCE_FILE = "inference.json"


@dataclass
class CandidateScore:
    """One configuration or ensemble of configurations, scored on the cross-validation cases."""

    configurations: list[str]
    foreground_dice: float
    class_dice: dict[str, float]
    cases: int
    note: str = ""
    """Why a candidate was not scored (e.g. no probabilities saved), empty otherwise."""

    @property
    def label(self) -> str:
        return " + ".join(self.configurations)


@dataclass
class PostprocessingTrial:
    """One largest-component step tried on the chosen candidate's cross-validation predictions.

    For 'all foreground' the Dice values are the foreground mean; for a class they are that class's mean Dice.
    """

    step: str
    values: list[int]
    dice_before: float
    dice_after: float
    applied: bool


@dataclass
class InferenceChoice:
    """The model predict uses by default, and the evidence for choosing it."""

    dataset: str
    configurations: list[str]
    folds: list[int]
    postprocessing: PostprocessingChoice
    foreground_dice: float
    """Mean foreground Dice of the chosen candidate over the cross-validation cases, before postprocessing."""
    foreground_dice_postprocessed: float
    class_dice_postprocessed: dict[str, float]
    num_cases: int
    candidates: list[CandidateScore] = field(default_factory=list)
    postprocessing_trials: list[PostprocessingTrial] = field(default_factory=list)


def save_inference_choice(choice: InferenceChoice, results_dir: Path) -> Path:
    """Write ``results_dir/inference.json`` atomically and return its path."""
    path = Path(results_dir) / INFERENCE_FILE
    save_scores_json(path, choice)
    return path


def load_inference_choice(results_dir: Path) -> InferenceChoice | None:
    """The choice stored in ``results_dir/inference.json``, or None when find-best has not run.

    Example:
        >>> choice = load_inference_choice(location.results)  # doctest: +SKIP
        >>> choice.configurations, choice.folds, choice.postprocessing.describe()  # doctest: +SKIP
        (['3d_fullres'], [0, 1, 2, 3, 4], 'largest component of: class 1')
    """
    path = Path(results_dir) / INFERENCE_FILE
    if not path.is_file():
        return None
    try:
        return load_scores_json(InferenceChoice, path)
    except (ValueError, KeyError, TypeError, AttributeError) as error:  # JSONDecodeError is a ValueError
        raise InvalidDatasetError(f"{path}: is not a valid inference.json ({error}); run autounet find-best "
                                  "again or delete it.") from error

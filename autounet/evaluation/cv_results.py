"""The cross-validation predictions of trained configurations: ``results/<configuration>/fold_K/validation/``.

Each validation folder holds a label file ``CASE<ending>`` per validation case and, when training saved
them, ``CASE.npz`` with the array ``probabilities`` (float, ``(K, z, y, x)`` in the original image geometry).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from autounet.errors import MissingArtifactError, UserError

VALIDATION_FOLDER = "validation"
PROBABILITIES_KEY = "probabilities"
_FOLD = re.compile(r"^fold_(\d+)$")


@dataclass(frozen=True)
class ValidationCase:
    """One cross-validation prediction: its label file and, if saved, its probabilities file."""

    case: str
    fold: int
    labels: Path
    probabilities: Path | None


@dataclass(frozen=True)
class ConfigurationResults:
    """The validation predictions of every fold of one trained configuration."""

    configuration: str
    folds: tuple[int, ...]
    cases: dict[str, ValidationCase]

    @property
    def has_probabilities(self) -> bool:
        return all(c.probabilities is not None for c in self.cases.values())


def fold_folders(configuration_dir: Path) -> dict[int, Path]:
    """fold number -> ``fold_K`` folder of a configuration's results folder."""
    if not configuration_dir.is_dir():
        return {}
    folds = {}
    for path in configuration_dir.iterdir():
        match = _FOLD.match(path.name)
        if match and path.is_dir():
            folds[int(match.group(1))] = path
    return dict(sorted(folds.items()))


def trained_configurations(results_dir: Path) -> list[str]:
    """The configurations in ``results_dir`` that have at least one fold folder, sorted."""
    if not results_dir.is_dir():
        return []
    return sorted(p.name for p in results_dir.iterdir() if p.is_dir() and fold_folders(p))


def load_configuration_results(results_dir: Path, configuration: str, ending: str) -> ConfigurationResults:
    """Collect the validation predictions of every fold of ``configuration``.

    Raises a :class:`MissingArtifactError` naming every fold without validation predictions.
    """
    folds = fold_folders(results_dir / configuration)
    if not folds:
        raise MissingArtifactError(f"{results_dir / configuration}: no fold_K folders; train this configuration "
                                   "first (autounet train).")
    cases: dict[str, ValidationCase] = {}
    incomplete = []
    for fold, folder in folds.items():
        validation = folder / VALIDATION_FOLDER
        files = sorted(validation.glob(f"*{ending}")) if validation.is_dir() else []
        if not files:
            incomplete.append(str(validation))
            continue
        for path in files:
            case = path.name[: -len(ending)]
            if case in cases:
                raise UserError(f"{path}: case '{case}' is also a validation case of fold {cases[case].fold}; "
                                "folds must not share validation cases.")
            npz = validation / f"{case}.npz"
            cases[case] = ValidationCase(case, fold, path, npz if npz.is_file() else None)
    if incomplete:
        raise MissingArtifactError(f"{', '.join(incomplete)}: no validation predictions (*{ending}); finish "
                                   f"training {'these folds' if len(incomplete) > 1 else 'this fold'} "
                                   "(training ends by predicting its validation cases) or remove the folder.")
    return ConfigurationResults(configuration, tuple(folds), cases)

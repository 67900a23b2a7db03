"""find-best: choose the configuration (or two-configuration ensemble) and postprocessing for predict.

Every trained configuration is scored on all its folds' validation cases; every pair of configurations with
saved probabilities is scored as an ensemble (probabilities averaged). The candidate with the highest mean
foreground Dice (the mean over classes of each class's mean Dice over cases) wins. Then largest-component
postprocessing is tried on its predictions: first with all foreground as one object (kept when the
foreground Dice rises and no class's Dice falls), then per class (kept when that class's Dice rises).
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from autounet.dataset.spec import DatasetSpec, load_spec
from autounet.errors import ImageReadError, MissingArtifactError, UserError
from autounet.evaluation.choice import (CandidateScore, InferenceChoice, PostprocessingTrial,
                                        save_inference_choice)
from autounet.evaluation.cv_results import ConfigurationResults, load_configuration_results, trained_configurations
from autounet.evaluation.ensemble import average_probabilities, probabilities_to_labels
from autounet.evaluation.metrics import ClassSpec, case_metrics, classes_from_spec
from autounet.evaluation.runner import run_jobs
from autounet.evaluation.summary import ScoreStats, mean_ignoring_nan
from autounet.inference.postprocessing import PostprocessingChoice, keep_largest_component
from autounet.io import read_label
from autounet.paths import DatasetLocation
from autounet.utils.progress import console

MIN_GAIN = 1e-6
"""A postprocessing step must raise the Dice by more than this (guards against float noise)."""


@dataclass(frozen=True)
class Source:
    """Where one candidate's prediction of a case comes from: a label file, or probability files to average."""

    label_file: Path | None = None
    probability_files: tuple[Path, ...] = ()


@dataclass(frozen=True)
class ScoringContext:
    """What every case job needs to know about the dataset."""

    classes: ClassSpec
    regions_class_order: list[int] | None
    ignore_label: int | None


@dataclass(frozen=True)
class CandidatesJob:
    """Score every candidate on one case."""

    case: str
    reference: Path
    sources: tuple[Source, ...]
    context: ScoringContext


@dataclass(frozen=True)
class PostprocessingJob:
    """Score the postprocessing variants of one candidate on one case."""

    case: str
    reference: Path
    source: Source
    context: ScoringContext


def _predicted_labels(source: Source, shape: tuple[int, ...], context: ScoringContext) -> np.ndarray:
    if source.label_file is not None:
        labels, _ = read_label(source.label_file)
        if labels.shape != shape:
            raise ImageReadError(f"{source.label_file}: shape {labels.shape} differs from the reference ({shape}).")
        return labels
    probabilities = average_probabilities(source.probability_files, shape)
    return probabilities_to_labels(probabilities, context.regions_class_order)


def _class_dice(reference: np.ndarray, prediction: np.ndarray, spacing, context: ScoringContext) -> dict[str, float]:
    metrics = case_metrics(reference, prediction, context.classes, spacing, ignore_label=context.ignore_label)
    return {name: m.dice for name, m in metrics.items()}


def score_candidates_on_case(job: CandidatesJob) -> list[dict[str, float]]:
    """Per candidate (in job order), the Dice of each class on this case (runs in a worker process)."""
    reference, geometry = read_label(job.reference)
    return [_class_dice(reference, _predicted_labels(source, reference.shape, job.context), geometry.spacing,
                        job.context) for source in job.sources]


def _foreground_values(context: ScoringContext) -> list[int]:
    return sorted({v for values in context.classes.values() for v in values})


def score_postprocessing_on_case(job: PostprocessingJob) -> dict[str, dict[str, float]]:
    """Class Dice of the variants 'base', 'fg' (all foreground as one), 'class:NAME' and 'fg+class:NAME'."""
    reference, geometry = read_label(job.reference)
    base = _predicted_labels(job.source, reference.shape, job.context)
    foreground = keep_largest_component(base, [_foreground_values(job.context)])
    variants = {"base": base, "fg": foreground}
    for name, values in job.context.classes.items():
        variants[f"class:{name}"] = keep_largest_component(base, [values])
        variants[f"fg+class:{name}"] = keep_largest_component(foreground, [values])
    return {key: _class_dice(reference, labels, geometry.spacing, job.context) for key, labels in variants.items()}


def _run(fn, jobs: list, workers: int | None, description: str) -> list:
    """Results of ``fn`` over ``jobs`` in job order; the first user error (naming its file) is raised."""
    results: dict[str, object] = {}
    for outcome in run_jobs(fn, jobs, workers, description):
        if not outcome.ok:
            raise outcome.error
        results[outcome.item.case] = outcome.result
    return [results[job.case] for job in jobs]


def _class_means(per_case: list[dict[str, float]], classes: ClassSpec) -> dict[str, float]:
    return {name: ScoreStats.of([case[name] for case in per_case]).mean for name in classes}


@dataclass(frozen=True)
class Candidate:
    """A configuration or ensemble, and how each case's prediction is obtained."""

    configurations: tuple[str, ...]
    sources: dict[str, Source]


def _candidates(results: list[ConfigurationResults], cases: list[str]) -> tuple[list[Candidate], list[CandidateScore]]:
    """The candidates that can be scored, and notes for the ensembles that cannot."""
    candidates = [Candidate((r.configuration,), {c: Source(label_file=r.cases[c].labels) for c in cases})
                  for r in results]
    skipped = []
    for a, b in itertools.combinations(results, 2):
        missing = [r.configuration for r in (a, b) if any(r.cases[c].probabilities is None for c in cases)]
        if missing:
            skipped.append(CandidateScore([a.configuration, b.configuration], math.nan, {}, 0,
                                          f"not scored: {', '.join(missing)} saved no probabilities (CASE.npz)"))
            continue
        sources = {c: Source(probability_files=(a.cases[c].probabilities, b.cases[c].probabilities)) for c in cases}
        candidates.append(Candidate((a.configuration, b.configuration), sources))
    return candidates, skipped


def _decide_postprocessing(variants: list[dict[str, dict[str, float]]], classes: ClassSpec,
                           baseline_foreground: float) -> tuple[PostprocessingChoice, list[PostprocessingTrial],
                                                                dict[str, float]]:
    """The steps that help, the trials behind them, and the class Dice after the chosen steps."""
    means = {key: _class_means([case[key] for case in variants], classes) for key in variants[0]}
    base, fg = means["base"], means["fg"]
    fg_foreground = mean_ignoring_nan(list(fg.values()))
    no_class_worse = all(not (fg[n] < base[n] - MIN_GAIN) for n in classes if not math.isnan(base[n]))
    use_fg = fg_foreground > baseline_foreground + MIN_GAIN and no_class_worse
    trials = [PostprocessingTrial("all foreground", sorted({v for vs in classes.values() for v in vs}),
                                  baseline_foreground, fg_foreground, use_fg)]
    prefix = "fg+" if use_fg else ""
    current = dict(fg if use_fg else base)
    chosen = []
    for name, values in classes.items():
        after = means[f"{prefix}class:{name}"][name]
        applied = after > current[name] + MIN_GAIN
        trials.append(PostprocessingTrial(f"class {name}", list(values), current[name], after, applied))
        if applied:
            chosen.append(list(values))
            current[name] = after
    return PostprocessingChoice(use_fg, chosen), trials, current


def _reference_files(location: DatasetLocation, spec: DatasetSpec, cases: list[str]) -> dict[str, Path]:
    references = {c: location.raw / "labelsTr" / f"{c}{spec.file_ending}" for c in cases}
    missing = [str(p) for p in references.values() if not p.is_file()]
    if missing:
        raise MissingArtifactError(f"{missing[0]}: reference labels not found"
                                   + (f" (nor {len(missing) - 1} others)." if len(missing) > 1 else "."))
    return references


def _common_cases(results: list[ConfigurationResults]) -> list[str]:
    """The validation cases every configuration predicted (candidates must be compared on the same cases)."""
    common = set.intersection(*(set(r.cases) for r in results))
    if not common:
        raise UserError("the configurations " + ", ".join(r.configuration for r in results)
                        + " share no validation cases, so they cannot be compared; were they trained on the same "
                          "splits?")
    for r in results:
        if len(r.cases) > len(common):
            console.print(f"[yellow]warning:[/yellow] {r.configuration}: {len(r.cases) - len(common)} of its "
                          f"{len(r.cases)} validation cases are left out (not predicted by every configuration).",
                          highlight=False)
    return sorted(common)


def find_best(location: DatasetLocation, configurations: list[str] | None = None,
              workers: int | None = None) -> InferenceChoice:
    """Choose configurations, folds and postprocessing from the cross-validation results; write inference.json.

    Example:
        >>> choice = find_best(locate_dataset("4", resolve_root(None)))  # doctest: +SKIP
        >>> choice.configurations, choice.postprocessing.describe()  # doctest: +SKIP
        (['3d_fullres'], 'none')
    """
    spec = load_spec(location.raw)
    available = trained_configurations(location.results)
    if configurations:
        unknown = [c for c in configurations if c not in available]
        if unknown:
            raise MissingArtifactError(f"{location.results / unknown[0]}: no trained folds for configuration "
                                       f"'{unknown[0]}' (trained: {', '.join(available) or 'none'}).")
    else:
        configurations = available
    if not configurations:
        raise MissingArtifactError(f"{location.results}: no trained configurations (fold_K folders); run "
                                   "autounet train first.")
    results = [load_configuration_results(location.results, c, spec.file_ending) for c in configurations]
    cases = _common_cases(results)
    references = _reference_files(location, spec, cases)
    context = ScoringContext(classes_from_spec(spec), spec.regions_class_order if spec.has_regions else None,
                             spec.ignore_label)

    candidates, skipped = _candidates(results, cases)
    jobs = [CandidatesJob(c, references[c], tuple(cand.sources[c] for cand in candidates), context) for c in cases]
    per_case = _run(score_candidates_on_case, jobs, workers, "score candidates")
    scores = []
    for index, candidate in enumerate(candidates):
        class_dice = _class_means([case[index] for case in per_case], context.classes)
        scores.append(CandidateScore(list(candidate.configurations), mean_ignoring_nan(list(class_dice.values())),
                                     class_dice, len(cases)))
    ranked = sorted(range(len(scores)), key=lambda i: (-_or_minus_inf(scores[i].foreground_dice),
                                                       len(scores[i].configurations), i))
    best = candidates[ranked[0]]
    best_score = scores[ranked[0]]

    jobs = [PostprocessingJob(c, references[c], best.sources[c], context) for c in cases]
    variants = _run(score_postprocessing_on_case, jobs, workers, "try postprocessing")
    postprocessing, trials, class_after = _decide_postprocessing(variants, context.classes,
                                                                 best_score.foreground_dice)
    folds = sorted(set.intersection(*(set(r.folds) for r in results if r.configuration in best.configurations)))
    choice = InferenceChoice(location.name, list(best.configurations), folds, postprocessing,
                             best_score.foreground_dice, mean_ignoring_nan(list(class_after.values())), class_after,
                             len(cases), [scores[i] for i in ranked] + skipped, trials)
    save_inference_choice(choice, location.results)
    return choice


def _or_minus_inf(value: float) -> float:
    return -math.inf if math.isnan(value) else value

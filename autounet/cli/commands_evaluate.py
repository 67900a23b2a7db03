"""Commands that score predictions: evaluate (and find-best)."""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.table import Table

from autounet.cli.common import DatasetArgument, RootOption, WorkersOption, dataset_location, out, warn


def _mean_std(stats, digits: int = 3) -> str:
    if math.isnan(stats.mean):
        return "n/a"
    text = f"{stats.mean:.{digits}f} ± {stats.std:.{digits}f}"
    return text + (f" ({stats.undefined} n/a)" if stats.undefined else "")


def summary_table(summary) -> Table:
    """A Rich table of mean ± std per class plus the foreground mean.

    'absent' counts the cases where neither reference nor prediction holds the class (left out of the means);
    '(k n/a)' after a score counts the other cases where it is undefined (HD95 with one side empty).
    """
    table = Table(title=f"{Path(summary.prediction_dir).name}: {len(summary.cases)} cases",
                  caption=f"predictions {summary.prediction_dir}, references {summary.reference_dir}")
    scores = [("dice", "Dice"), ("iou", "IoU")]
    if summary.surface:
        scores += [("hd95_mm", "HD95 (mm)"), ("nsd", f"NSD@{summary.nsd_tolerance_mm:g} mm")]
    table.add_column("class", min_width=len("foreground"))
    for _, title in scores:
        table.add_column(title, justify="right", no_wrap=True)
    table.add_column("absent", justify="right")
    for entry in summary.per_class:
        values = ", ".join(str(v) for v in entry.values)
        name = entry.name if entry.name == values else f"{entry.name} ({values})"
        table.add_row(name, *(_mean_std(getattr(entry, key), 2 if key == "hd95_mm" else 3) for key, _ in scores),
                      str(entry.absent_in_both))
    foreground = summary.foreground_mean
    table.add_row("[bold]foreground", *(f"[bold]{getattr(foreground, key):.{2 if key == 'hd95_mm' else 3}f}"
                                             for key, _ in scores), "", end_section=True)
    return table


def evaluate(
    ref: Annotated[Path, typer.Option("--ref", help="Folder of reference label maps.", show_default=False)],
    pred: Annotated[Path, typer.Option("--pred", help="Folder of predicted label maps (same file names).",
                                       show_default=False)],
    dataset: Annotated[Optional[str], typer.Option(
        "--dataset", "-d", help="Take the classes/regions, ignore label and file ending from this dataset's "
                                "dataset.json \\[default: every non-zero value found].", show_default=False)] = None,
    surface: Annotated[bool, typer.Option("--surface", help="Also compute HD95 and normalised surface distance "
                                                            "(mm).")] = False,
    tolerance: Annotated[float, typer.Option("--tolerance", min=0.0,
                                             help="NSD tolerance in mm.")] = 1.0,
    output: Annotated[Optional[Path], typer.Option("--output", "-o", help="Where to write summary.json and "
                                                   "metrics.csv \\[default: the prediction folder].",
                                                   show_default=False)] = None,
    workers: WorkersOption = None,
    root: RootOption = None,
) -> None:
    """Score predicted label maps against references: Dice, IoU, counts, volumes, optionally HD95 and NSD.

    Example: autounet evaluate --ref raw/Dataset004_Hippocampus/labelsTr --pred out/ -d Dataset004 --surface
    """
    from autounet.dataset.spec import load_spec
    from autounet.evaluation.folders import evaluate_folders
    from autounet.evaluation.metrics import classes_from_spec

    classes, ending, ignore = None, None, None
    if dataset is not None:
        spec = load_spec(dataset_location(dataset, root).raw)
        classes, ending, ignore = classes_from_spec(spec), spec.file_ending, spec.ignore_label
    start = time.perf_counter()
    summary = evaluate_folders(ref, pred, classes, ending, surface, workers, output, tolerance, ignore)
    out.print(summary_table(summary))
    written = output if output is not None else pred
    out.print(f"wrote {written / 'summary.json'} and {written / 'metrics.csv'} in "
              f"{time.perf_counter() - start:.1f} s")




def _dice(value: float) -> str:
    return "n/a" if math.isnan(value) else f"{value:.4f}"


def _print_choice(choice) -> None:
    table = Table(title=f"{choice.dataset}: candidates on {choice.num_cases} cross-validation cases")
    table.add_column("candidate")
    table.add_column("foreground Dice", justify="right")
    class_names = list(choice.class_dice_postprocessed)
    for name in class_names:
        table.add_column(name, justify="right")
    table.add_column("note")
    for candidate in choice.candidates:
        chosen = candidate.configurations == choice.configurations
        table.add_row(("[bold]* " if chosen else "") + candidate.label, _dice(candidate.foreground_dice),
                      *(_dice(candidate.class_dice.get(n, math.nan)) for n in class_names), candidate.note)
    out.print(table)
    trials = Table(title=f"largest-component postprocessing on {' + '.join(choice.configurations)}")
    for column in ("step", "Dice before", "Dice after", "applied"):
        trials.add_column(column, justify="left" if column == "step" else "right")
    for trial in choice.postprocessing_trials:
        trials.add_row(trial.step, _dice(trial.dice_before), _dice(trial.dice_after),
                       "yes" if trial.applied else "no")
    out.print(trials)
    out.print(f"chose {' + '.join(choice.configurations)} (folds {', '.join(map(str, choice.folds))}): the highest "
              f"mean foreground Dice, {_dice(choice.foreground_dice)}; postprocessing: "
              f"{choice.postprocessing.describe()} -> {_dice(choice.foreground_dice_postprocessed)}.")


def find_best(
    dataset: DatasetArgument,
    configurations: Annotated[Optional[list[str]], typer.Option(
        "--configuration", "-c", help="Only consider these configurations (repeat the option) \\[default: every "
                                      "trained one].", show_default=False)] = None,
    workers: WorkersOption = None,
    root: RootOption = None,
) -> None:
    """Pick the best configuration or two-configuration ensemble and postprocessing from cross-validation.

    Writes results/<dataset>/inference.json, which predict follows by default.

    Example: autounet find-best Dataset004 -c 2d -c 3d_fullres
    """
    from autounet.evaluation.choice import INFERENCE_FILE
    from autounet.evaluation.find_best import find_best as choose

    location = dataset_location(dataset, root)
    start = time.perf_counter()
    choice = choose(location, configurations, workers)
    _print_choice(choice)
    out.print(f"wrote {location.results / INFERENCE_FILE} in {time.perf_counter() - start:.1f} s")
    from autounet.errors import MissingArtifactError
    from autounet.report import write_report

    try:
        out.print(f"report: {write_report(location)}", highlight=False, soft_wrap=True)
    except MissingArtifactError as missing:  # the choice is made; a report needs the fingerprint and plans too
        warn(f"no report written: {missing}")


def register(app: typer.Typer) -> None:
    app.command()(evaluate)
    app.command("find-best")(find_best)

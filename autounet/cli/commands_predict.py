"""Commands that use trained models: predict, export-model, install-model.

Heavy imports (torch, the network) happen inside the commands, so ``--help`` stays fast.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from autounet.cli.common import RootOption, err, out

MULTI_VALUE_OPTIONS = ("--input", "-i", "--configuration", "-c", "--folds", "-f")


class MultiValueCommand(typer.core.TyperCommand):
    """Lets list options take several values after one flag (``--folds 0 1 2``), as well as repeated flags."""

    def parse_args(self, ctx, args: list[str]) -> list[str]:
        return super().parse_args(ctx, spread_multi_values(args, MULTI_VALUE_OPTIONS))


def spread_multi_values(args: list[str], options: tuple[str, ...]) -> list[str]:
    """``[-f, 0, 1]`` -> ``[-f, 0, -f, 1]`` for the given list options.

    Example:
        >>> spread_multi_values(["--folds", "0", "1", "-o", "x"], ("--folds",))
        ['--folds', '0', '--folds', '1', '-o', 'x']
    """
    spread: list[str] = []
    current = None
    for arg in args:
        if arg.startswith("-") and not _is_number(arg):
            current = arg if arg in options else None
            spread.append(arg)
        elif current is not None and spread[-1] != current:
            spread += [current, arg]
        else:
            spread.append(arg)
    return spread


def _is_number(text: str) -> bool:
    try:
        float(text)
        return True
    except ValueError:
        return False

CheckpointOption = Annotated[str, typer.Option(
    "--checkpoint", help="Weights to use: final, best or latest.")]
FoldsOption = Annotated[Optional[list[str]], typer.Option(
    "--folds", "-f", help="Folds to use, e.g. --folds 0 1 2 (default: all trained).",
    show_default=False)]
ConfigsOption = Annotated[Optional[list[str]], typer.Option(
    "--configuration", "-c", help="Configuration(s); several make an ensemble (default: find-best's choice, "
                                  "else 3d_fullres for 3D and 2d for 2D data).", show_default=False)]


def _split(values: list[str] | None) -> list[str] | None:
    """Options given as ``-f 0 -f 1`` or ``-f "0 1"`` or ``-f 0,1`` as one list."""
    if not values:
        return None
    return [part for value in values for part in value.replace(",", " ").split()]


def predict(
    inputs: Annotated[list[Path], typer.Option("--input", "-i", help="Folder of CASE_XXXX.ext files, or "
                                               "image file(s): -i a.nii.gz b.nii.gz.", show_default=False)],
    output: Annotated[Path, typer.Option("--output", "-o", help="Folder for the segmentations.",
                                         show_default=False)],
    dataset: Annotated[Optional[str], typer.Option("--dataset", "-d", help="Trained dataset (Dataset004, 4, "
                                                   "...); default: the only one trained.",
                                                   show_default=False)] = None,
    model_dir: Annotated[Optional[Path], typer.Option("--model", "-m", help="A model folder (dataset results, "
                                                      "configuration or fold folder), e.g. copied from "
                                                      "elsewhere.", show_default=False)] = None,
    configurations: ConfigsOption = None,
    folds: FoldsOption = None,
    checkpoint: CheckpointOption = "final",
    step: Annotated[float, typer.Option("--step", help="Tile step as a fraction of the patch.")] = 0.5,
    no_tta: Annotated[bool, typer.Option("--no-tta", help="Skip mirroring test-time augmentation "
                                         "(about 4x (2D) or 8x (3D) faster, slightly worse).")] = False,
    save_probabilities: Annotated[bool, typer.Option("--save-probabilities", help="Also write CASE.npz "
                                                     "(key 'probabilities', (K, Z, Y, X)).")] = False,
    resume: Annotated[bool, typer.Option("--continue", help="Skip cases whose outputs exist.")] = False,
    device: Annotated[str, typer.Option("--device", help="auto, cpu, cuda, cuda:N or mps.")] = "auto",
    precision: Annotated[str, typer.Option("--precision", help="Network arithmetic: auto (float16 on CUDA, "
                                           "bfloat16 on CPUs with native bfloat16, else float32), float32, "
                                           "bfloat16 or float16.")] = "auto",
    root: RootOption = None,
) -> None:
    """Segment images with a trained model and write label maps in the images' own geometry and format.

    Example: autounet predict -i imagesTs -o predictions -d Dataset004
    """
    import os
    import time

    start = time.perf_counter()
    # OpenMP threads that spin while waiting for each other waste most of the CPU on a machine shared with other
    # jobs (measured: 7x slower forward passes at load 13 on 2 cores); sleeping costs nothing measurable when
    # idle. It must be set before torch loads its OpenMP runtime.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    from autounet.inference.folder import cases_to_predict, predict_folder
    from autounet.inference.loading import ModelRequest, load_predictor

    cases_to_predict(inputs, output)  # bad inputs fail before the model loads

    request = ModelRequest(root, dataset, model_dir, _split(configurations), _split(folds), checkpoint, device,
                           not no_tta, step, precision)
    predictor, description = load_predictor(request)
    err.print(f"model: {description}", highlight=False, soft_wrap=True)
    summary = predict_folder(predictor, inputs, output, save_probabilities, resume)
    for message in summary.failed:
        err.print(f"[bold red]failed:[/bold red] {message}", highlight=False, soft_wrap=True)
    out.print(f"predicted {len(summary.predicted)} case(s) in {summary.seconds:.1f} s "
              f"({summary.seconds_per_case:.2f} s/case), skipped {len(summary.skipped)} already done, "
              f"{len(summary.failed)} failed; total {time.perf_counter() - start:.1f} s; wrote {output}",
              soft_wrap=True)
    if summary.failed:
        raise typer.Exit(1)


def export_model(
    dataset: Annotated[str, typer.Argument(help="Trained dataset: Dataset004, 4, ... or its name.",
                                           show_default=False)],
    output: Annotated[Path, typer.Option("--output", "-o", help="The zip file to write.", show_default=False)],
    configurations: ConfigsOption = None,
    folds: FoldsOption = None,
    checkpoint: CheckpointOption = "final",
    root: RootOption = None,
) -> None:
    """Pack a trained model (plans, dataset.json, training config, safetensors weights, inference choice) into a zip.

    Example: autounet export-model Dataset004 -o hippocampus_model.zip -c 3d_fullres
    """
    from autounet.inference.export import export_model as export
    from autounet.paths import resolve_root
    from autounet.inference.selection import model_folder

    results = model_folder(resolve_root(root), dataset, None)
    manifest = export(results, output, _split(configurations), _split(folds), checkpoint)
    folds_text = "; ".join(f"{c}: folds {', '.join(f)}" for c, f in manifest.folds.items())
    out.print(f"wrote {output} ({output.stat().st_size / 2**20:.1f} MiB): {manifest.dataset}, {folds_text}, "
              f"checkpoint {manifest.checkpoint}")


def install_model(
    archive: Annotated[Path, typer.Argument(help="A zip written by `autounet export-model`.", show_default=False)],
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace folds that are already installed.")] = False,
    root: RootOption = None,
) -> None:
    """Install an exported model zip into the data root's results folder, ready for `autounet predict`.

    Example: autounet install-model hippocampus_model.zip --root ~/autounet_data
    """
    from autounet.errors import UserError
    from autounet.inference.export import install_model as install
    from autounet.paths import resolve_root

    if not archive.is_file():
        raise UserError(f"{archive}: no such file.")
    results = resolve_root(root).results
    manifest = install(archive, results, overwrite)
    out.print(f"installed {manifest.dataset} ({', '.join(manifest.configurations)}) into {results / manifest.dataset}"
              f"; predict with: autounet predict -d {manifest.dataset} -i IMAGES -o OUT")


def register(app: typer.Typer) -> None:
    app.command(cls=MultiValueCommand)(predict)
    app.command("export-model", cls=MultiValueCommand)(export_model)
    app.command("install-model")(install_model)

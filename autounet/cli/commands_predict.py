"""Commands that use trained models: predict, export-model, install-model.

Heavy imports (torch, the network) happen inside the commands, so ``--help`` stays fast.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from autounet.cli.common import RootOption, err, out

MULTI_VALUE_OPTIONS = ("--input", "-i", "--configuration", "-c", "--folds", "-f", "--from-nnunet")


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
    max_memory: Annotated[Optional[str], typer.Option(
        "--max-memory", show_default=False, help="Memory a case may take, e.g. 8G: beyond it the per-class outputs "
        "are kept in a file in the output folder (slower, bounded; see docs/predict.md) \\[default: 80%% of the "
        "RAM available].")] = None,
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
    from autounet.inference.memory import parse_memory
    from autounet.model_loading import ModelRequest, load_predictor

    from autounet.utils.locks import exclusive

    cases_to_predict(inputs, output)  # bad inputs and an unwritable output fail before the model loads

    request = ModelRequest(root, dataset, model_dir, _split(configurations), _split(folds), checkpoint, device,
                           not no_tta, step, precision, parse_memory(max_memory) if max_memory else None, output)
    with exclusive(output, "autounet predict"):  # two predictions into one folder would overwrite each other
        predictor, description = load_predictor(request)
        err.print(f"model: {description}", highlight=False, soft_wrap=True)
        summary = predict_folder(predictor, inputs, output, save_probabilities, resume)
    for message in summary.failed:
        err.print(f"[bold red]failed:[/bold red] {message}", highlight=False, soft_wrap=True)
    out.print(f"predicted {len(summary.predicted)} case(s) in {summary.seconds:.1f} s "
              f"({summary.seconds_per_case:.2f} s/case), skipped {len(summary.skipped)} already done, "
              f"{len(summary.failed)} failed; total {time.perf_counter() - start:.1f} s; wrote {output}",
              soft_wrap=True)
    if summary.predicted:
        from autounet.utils.stage_times import describe_stages

        out.print(f"time by stage: {describe_stages(summary.stage_seconds)}", highlight=False, soft_wrap=True)
    if summary.failed:
        raise typer.Exit(1)


def export_model(
    dataset: Annotated[str, typer.Argument(help="Trained dataset: Dataset004, 4, ... or its name.",
                                           show_default=False)],
    output: Annotated[Path, typer.Option("--output", "-o", help="The zip file to write (--format zip), or the "
                                         "folder for the ONNX graphs and manifest (--format onnx).",
                                         show_default=False)],
    configurations: ConfigsOption = None,
    folds: FoldsOption = None,
    checkpoint: CheckpointOption = "final",
    export_format: Annotated[str, typer.Option("--format", help="zip (an autounet model to install elsewhere) or "
                                               "onnx (one graph per fold and a JSON manifest of the pre- and "
                                               "post-processing; needs autounet[onnx]).")] = "zip",
    root: RootOption = None,
) -> None:
    """Pack a trained model into a zip (plans, dataset.json, training config, safetensors weights, inference choice),
    or export one configuration to ONNX with a manifest of everything around the network.

    Example: autounet export-model Dataset004 -o hippocampus_model.zip -c 3d_fullres
    (ONNX: autounet export-model Dataset004 -c 3d_fullres --format onnx -o hippocampus_onnx)
    """
    from autounet.errors import UserError
    from autounet.inference.selection import model_folder
    from autounet.paths import resolve_root

    results = model_folder(resolve_root(root), dataset, None)
    if export_format == "onnx":
        _export_onnx(results, output, _split(configurations), _split(folds), checkpoint)
        return
    if export_format != "zip":
        raise UserError(f"--format must be zip or onnx, not '{export_format}'.")
    from autounet.inference.export import export_model as export

    manifest = export(results, output, _split(configurations), _split(folds), checkpoint)
    folds_text = "; ".join(f"{c}: folds {', '.join(f)}" for c, f in manifest.folds.items())
    out.print(f"wrote {output} ({output.stat().st_size / 2**20:.1f} MiB): {manifest.dataset}, {folds_text}, "
              f"checkpoint {manifest.checkpoint}")


def _export_onnx(results: Path, output: Path, configurations: list[str] | None, folds: list[str] | None,
                 checkpoint: str) -> None:
    """export-model --format onnx: one configuration, with find-best's postprocessing when it chose it."""
    from autounet.errors import UserError
    from autounet.evaluation.choice import load_inference_choice
    from autounet.inference.model_folder import load_trained_configuration
    from autounet.inference.onnx_export import MANIFEST_FILE, export_onnx
    from autounet.inference.selection import default_configurations

    choice = load_inference_choice(results)
    names = default_configurations(results, configurations or (choice.configurations if choice else None))
    if len(names) != 1:
        raise UserError(f"{results}: ONNX export takes one configuration, not {', '.join(names)}; choose with -c.")
    trained = load_trained_configuration(results / names[0], folds, checkpoint)
    postprocessing = choice.postprocessing if choice and choice.configurations == names else None
    manifest = export_onnx(trained, output, checkpoint, postprocessing=postprocessing)
    out.print(f"wrote {output}: {', '.join(manifest.graphs)} and {MANIFEST_FILE} ({manifest.dataset} "
              f"{manifest.configuration}, checkpoint {checkpoint}, postprocessing "
              f"{manifest.postprocessing.describe()})", soft_wrap=True)


def install_model(
    archive: Annotated[Optional[Path], typer.Argument(help="A zip written by `autounet export-model`.",
                                                      show_default=False)] = None,
    from_nnunet: Annotated[Optional[list[Path]], typer.Option(
        "--from-nnunet", help="An nnU-Net v2 results folder <Trainer>__<Plans>__<configuration> to install instead "
                              "of a zip; repeat for a cascade's two stages.", show_default=False)] = None,
    folds: FoldsOption = None,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace folds that are already installed.")] = False,
    root: RootOption = None,
) -> None:
    """Install an exported model zip, or a model trained by nnU-Net v2, into the data root's results folder,
    ready for `autounet predict`.

    Example: autounet install-model hippocampus_model.zip --root ~/autounet_data
    (nnU-Net: autounet install-model --from-nnunet RESULTS/Dataset004_X/nnUNetTrainer__nnUNetPlans__3d_fullres)
    """
    from autounet.errors import UserError
    from autounet.paths import resolve_root

    results = resolve_root(root).results
    if from_nnunet:
        if archive is not None:
            raise UserError(f"{archive}: give either a model zip or --from-nnunet folders, not both.")
        from autounet.inference.nnunet_import import import_nnunet_model

        for model in import_nnunet_model(from_nnunet, results, _split(folds), overwrite):
            out.print(f"installed nnU-Net {model.source} as {model.dataset} {model.configuration} (folds "
                      f"{', '.join(model.folds)}; checkpoints {', '.join(model.checkpoints)}) into {model.folder}; "
                      f"predict with: autounet predict -d {model.dataset} -c {model.configuration} -i IMAGES -o OUT",
                      soft_wrap=True)
            for note in model.notes:
                err.print(f"note: {note}", highlight=False, soft_wrap=True)
        return
    if archive is None:
        raise UserError("install-model needs a model zip or --from-nnunet FOLDER.")
    if folds:
        raise UserError("--folds applies to --from-nnunet; a zip installs the folds it holds.")
    from autounet.inference.export import install_model as install

    if not archive.is_file():
        raise UserError(f"{archive}: no such file.")
    manifest = install(archive, results, overwrite)
    out.print(f"installed {manifest.dataset} ({', '.join(manifest.configurations)}) into {results / manifest.dataset}"
              f"; predict with: autounet predict -d {manifest.dataset} -i IMAGES -o OUT")


def register(app: typer.Typer) -> None:
    app.command(cls=MultiValueCommand)(predict)
    app.command("export-model", cls=MultiValueCommand)(export_model)
    app.command("install-model", cls=MultiValueCommand)(install_model)

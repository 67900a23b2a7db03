"""Agreement of two folders of label maps, case by case: Dice (mean over the foreground labels) and differing voxels.

For the output folders a comparison left behind (``out_nnU-Net_tta`` and ``out_autounet_tta`` under the ``--work``
of ``bench/nnunet_trained.py`` or ``bench/nnunet_equivalence.py``), to recount them without predicting again.
Files are paired by name; the labels are those of ``--labels``, or every nonzero value either folder holds.

Usage: python bench/label_agreement.py WORK/out_nnU-Net_tta WORK/out_autounet_tta [--labels 1 2]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.nnunet_equivalence import agreement_cells  # noqa: E402

ENDINGS = (".nii.gz", ".nii", ".nrrd", ".mha", ".png", ".tif", ".tiff")


def paired_cases(first: Path, second: Path) -> tuple[list[str], str]:
    """The case names present in both folders and their file ending."""
    for ending in ENDINGS:
        names = {p.name[: -len(ending)] for p in first.glob(f"*{ending}")}
        common = sorted(names & {p.name[: -len(ending)] for p in second.glob(f"*{ending}")})
        if common:
            return common, ending
    sys.exit(f"{first} and {second} hold no label maps of the same name")


def present_labels(folder: Path, cases: list[str], ending: str) -> list[int]:
    import SimpleITK as sitk

    values: set[int] = set()
    for case in cases:
        values |= set(np.unique(sitk.GetArrayFromImage(sitk.ReadImage(str(folder / f"{case}{ending}")))).tolist())
    return sorted(v for v in values if v != 0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("first", type=Path)
    parser.add_argument("second", type=Path)
    parser.add_argument("--labels", type=int, nargs="+", help="foreground labels (default: every nonzero value)")
    args = parser.parse_args()
    cases, ending = paired_cases(args.first, args.second)
    labels = args.labels or present_labels(args.first, cases, ending)
    dice, voxels = agreement_cells(args.first, args.second, cases, ending, labels)
    print(f"{len(cases)} cases, labels {labels}: Dice between the folders, mean / lowest case {dice}; "
          f"voxels that differ, per case / all cases {voxels}")


if __name__ == "__main__":
    main()

"""Making one batch: which batches a run needs, in order, and how each is made from its key alone.

Every batch is a pure function of (seed, rank, phase, epoch, iteration): the
random draws of patch sampling and augmentation are seeded from that key. So
the data stream's state is just the position in the run, the number of worker
processes never changes the data, and a resumed run sees exactly the batches
an uninterrupted run would have seen. Pure numpy, no torch.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import numpy as np

from autounet.preprocessing.store import CaseStore, PreprocessedCase
from autounet.training.augment import augment_batch, build_augmentation, sampling_patch_size
from autounet.training.previous_stage import attach_previous_stage
from autounet.training.sampling import sample_batch
from autounet.training.settings import AugmentationSettings

PHASES = ("train", "val")


@dataclass(frozen=True)
class BatchKey:
    """The identity of one batch in a run."""

    phase: str
    epoch: int
    iteration: int


@dataclass
class Batch:
    """Image patches (B, C, *patch) float32, labels (B, 1, *patch) int16 (outside-image -1 already 0)."""

    key: BatchKey
    images: np.ndarray
    labels: np.ndarray
    case_ids: list[str]
    augment_seed: int | None = None
    """Set when the batch is still to be augmented on the training device: images and labels are then read at
    the sampling patch size, and this seeds :class:`~autounet.training.device_augment.DeviceAugmentation`."""


def batch_keys(start_epoch: int, iterations: int, val_iterations: int) -> Iterator[BatchKey]:
    """The batches a run consumes from ``start_epoch`` on, in order: each epoch's training then validation batches."""
    epoch = start_epoch
    while True:
        for iteration in range(iterations):
            yield BatchKey("train", epoch, iteration)
        for iteration in range(val_iterations):
            yield BatchKey("val", epoch, iteration)
        epoch += 1


@dataclass
class BatchRecipe:
    """Everything a (possibly separate) process needs to make the batches of one rank. Cheap to send."""

    store_folder: Path
    train_ids: list[str]
    val_ids: list[str]
    patch_size: list[int]
    batch_size: int
    oversample_foreground: float
    augment: bool
    seed: int
    rank: int = 0
    previous_stage_values: list[int] | None = None
    """For a cascade: the values of the previous stage's label map, one extra input channel each, in order."""
    augmentation: AugmentationSettings = field(default_factory=AugmentationSettings)
    augment_on_device: bool = False
    """Leave the augmentation of training batches to the training device: only read (larger) patches here."""


@dataclass
class BatchMaker:
    """Makes batches from a :class:`BatchRecipe`, opening the cases (memory-mapped) on first use."""

    recipe: BatchRecipe
    _cases: dict[str, PreprocessedCase] = field(default_factory=dict, repr=False)
    _transform: object = field(default=None, repr=False)

    def _case_map(self, ids: list[str]) -> dict[str, PreprocessedCase]:
        store = CaseStore(self.recipe.store_folder)
        for case_id in ids:
            if case_id not in self._cases:
                case = store.load(case_id, mmap=True)
                if self.recipe.previous_stage_values is not None:
                    case.previous_stage = store.load_previous_stage(case_id, mmap=True)
                self._cases[case_id] = case
        return self._cases

    def make(self, key: BatchKey) -> Batch:
        """The batch for ``key``; the same key always gives the same batch."""
        r = self.recipe
        seq = np.random.SeedSequence([r.seed, r.rank, PHASES.index(key.phase), key.epoch, key.iteration])
        rng = np.random.default_rng(seq)
        ids = r.train_ids if key.phase == "train" else r.val_ids
        augment = r.augment and key.phase == "train"
        read_size = sampling_patch_size(r.patch_size, r.augmentation) if augment else r.patch_size
        images, labels, chosen = sample_batch(self._case_map(ids), ids, r.batch_size, read_size,
                                              r.oversample_foreground, rng)
        if augment and r.augment_on_device:
            labels[labels < 0] = 0
            return Batch(key, np.ascontiguousarray(images), labels, chosen, int(rng.integers(2**63)))
        if augment:
            if self._transform is None:
                self._transform = build_augmentation(r.patch_size, r.augmentation)
            images, labels = augment_batch(self._transform, images, labels, int(rng.integers(2**32)))
        if r.previous_stage_values is not None:
            images, labels = attach_previous_stage(images, labels, r.previous_stage_values,
                                                   rng if augment else None)
        labels[labels < 0] = 0
        return Batch(key, np.ascontiguousarray(images), labels, chosen)

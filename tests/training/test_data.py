"""The data pipeline: patch sampling, foreground oversampling, augmentation alignment, the worker stream."""

from __future__ import annotations

import os
import signal

import numpy as np
import pytest

from autounet.errors import UserError
from autounet.preprocessing.store import CaseStore
from autounet.training import augment
from autounet.training.batches import BatchKey, BatchMaker, BatchRecipe
from autounet.training.sampling import PatchRequest, forced_foreground_count, read_patch, sample_batch
from autounet.training.setup import check_cases
from autounet.training.workers import BatchStream, DataWorkerError
from autounet.utils.memory_events import oom_kill_count
from tests.training.helpers import make_training_root


def _store_cases(location, identifier="autounet_3d_fullres"):
    store = CaseStore(location.preprocessed / identifier)
    return {c: store.load(c) for c in store.case_ids()}


def _has_foreground(labels: np.ndarray) -> np.ndarray:
    return (labels > 0).reshape(len(labels), -1).any(1)


def test_oversampling_gives_the_configured_share(tmp_path):
    # Large cases with a small ball: random patches rarely hit it, forced ones always do.
    location = make_training_root(tmp_path, n_cases=2, shape=(40, 48, 48), radius=3)
    cases = _store_cases(location)
    rng = np.random.default_rng(0)
    batch = 30
    forced = forced_foreground_count(batch, 0.33)
    assert forced == 10
    hits_forced, hits_random = [], []
    for _ in range(5):
        _, labels, _ = sample_batch(cases, sorted(cases), batch, [6, 6, 6], 0.33, rng)
        hit = _has_foreground(labels)
        hits_forced.append(hit[batch - forced:])
        hits_random.append(hit[: batch - forced])
    assert np.concatenate(hits_forced).all()
    assert np.concatenate(hits_random).mean() < 0.5
    _, labels, _ = sample_batch(cases, sorted(cases), batch, [6, 6, 6], 0.0, rng)
    assert _has_foreground(labels).mean() < 0.5


def test_two_dimensional_patches_from_volumes(tmp_path):
    location = make_training_root(tmp_path, n_cases=2, shape=(10, 24, 24))
    cases = _store_cases(location)
    images, labels, _ = sample_batch(cases, sorted(cases), 4, [12, 12], 1.0, np.random.default_rng(1))
    assert images.shape == (4, 1, 12, 12) and labels.shape == (4, 1, 12, 12)
    assert _has_foreground(labels).all()


def test_patch_beyond_the_border_is_padded():
    array = np.arange(2 * 4 * 4 * 4, dtype=np.float32).reshape(2, 4, 4, 4)
    patch = read_patch(array, PatchRequest("c", None, [-2, 1, 2]), [6, 3, 3], fill=-1)
    assert patch.shape == (2, 6, 3, 3)
    assert (patch[:, :2] == -1).all() and (patch[:, :, :, 2] == -1).all()
    np.testing.assert_array_equal(patch[:, 2:, :, :2], array[:, 0:4, 1:4, 2:4])


def test_spatial_augmentation_keeps_image_and_labels_aligned():
    from autounet.training.settings import AugmentationSettings

    always = AugmentationSettings(p_rotation=1.0, p_scale=1.0)
    rng = np.random.default_rng(3)
    patch = [16, 20, 16]
    big = augment.sampling_patch_size(patch)
    labels = np.zeros((2, 1, *big), np.int16)
    labels[:, :, 8:-10, 12:-12, 10:-8] = 1
    labels[:, :, 18:-20, 20:-20, 16:-16] = 2
    images = labels.astype(np.float32) * 10
    transform = augment.build_augmentation(patch, always)
    for seed in range(4):
        out_images, out_labels = augment.augment_batch(transform, images, labels, seed)
        assert out_images.shape == (2, 1, *patch) and out_labels.shape == (2, 1, *patch)
        assert set(np.unique(out_labels)) <= {-1, 0, 1, 2}
        # Intensity transforms rescale the image but keep its ordering: the brightest voxels carry label 2.
        for sample in range(2):
            image, label = out_images[sample, 0], out_labels[sample, 0]
            if (label == 2).sum() < 20:
                continue
            bright = image > np.percentile(image, 100 * (1 - (label == 2).mean()))
            overlap = (bright & (label == 2)).sum() / (label == 2).sum()
            assert overlap > 0.8, (seed, sample, overlap)
    again = augment.augment_batch(transform, images, labels, 2)
    np.testing.assert_array_equal(again[1], augment.augment_batch(transform, images, labels, 2)[1])


def test_an_anisotropic_patch_is_augmented_slice_by_slice_like_nnunet():
    """Rotation and scaling move every slice alike and never mix slices: identical slices stay identical."""
    from autounet.training.settings import AugmentationSettings

    always = AugmentationSettings(p_rotation=1.0, p_scale=1.0, p_noise=0, p_blur=0, p_brightness=0, p_contrast=0,
                                  p_low_resolution=0, p_gamma=0, p_gamma_inverted=0, mirror=False)
    patch = [4, 24, 24]  # 24 / 4 = 6 > 3: slice by slice
    big = augment.sampling_patch_size(patch, always)
    assert big[0] == 4 and big[1:] == augment.sampling_patch_size(patch[1:], always)
    square = np.zeros(big[1:], np.int16)
    square[big[1] // 2 - 8:big[1] // 2 + 2, big[2] // 2 - 5:big[2] // 2 + 7] = 1
    labels = np.broadcast_to(square, (2, 1, *big)).copy()
    images = labels.astype(np.float32) * 5
    transform = augment.build_augmentation(patch, always)
    rotated_any = False
    for seed in range(3):
        out_images, out_labels = augment.augment_batch(transform, images, labels, seed)
        assert out_images.shape == (2, 1, *patch) and out_labels.shape == (2, 1, *patch)
        for z in range(1, patch[0]):
            np.testing.assert_array_equal(out_labels[:, :, z], out_labels[:, :, 0])
            np.testing.assert_allclose(out_images[:, :, z], out_images[:, :, 0], atol=1e-5)
        centre = square[(big[1] - 24) // 2:(big[1] + 24) // 2, (big[2] - 24) // 2:(big[2] + 24) // 2]
        rotated_any |= not np.array_equal(out_labels[0, 0, 0], centre)
    assert rotated_any  # the spatial transform did act in-plane
    # An isotropic patch is still rotated in 3D: slices of a through-plane-uniform volume no longer agree.
    iso = [16, 16, 16]
    big_iso = augment.sampling_patch_size(iso, always)
    block = np.zeros(big_iso, np.int16)
    block[:, big_iso[1] // 2 - 4:big_iso[1] // 2 + 4, :] = 1
    out_labels = augment.augment_batch(augment.build_augmentation(iso, always), block[None, None].astype(np.float32),
                                       block[None, None], 0)[1]
    assert not all(np.array_equal(out_labels[0, 0, z], out_labels[0, 0, 0]) for z in range(1, 16))


def test_batches_do_not_depend_on_worker_count(tmp_path):
    location = make_training_root(tmp_path)
    recipe = BatchRecipe(location.preprocessed / "autounet_3d_fullres", ["case_000", "case_001"], ["case_002"],
                         [8, 8, 8], 2, 0.33, True, seed=5)
    with BatchStream(recipe, 1, 3, 1, workers=0) as inline, BatchStream(recipe, 1, 3, 1, workers=2) as pooled:
        for _ in range(8):
            a, b = next(inline), next(pooled)
            assert a.key == b.key
            np.testing.assert_array_equal(a.images, b.images)
            np.testing.assert_array_equal(a.labels, b.labels)
            assert (a.labels >= 0).all()
    other_rank = BatchMaker(BatchRecipe(**{**recipe.__dict__, "rank": 1})).make(BatchKey("train", 1, 0))
    assert not np.array_equal(other_rank.images, BatchMaker(recipe).make(BatchKey("train", 1, 0)).images)


def test_dead_worker_is_reported_not_hung(tmp_path):
    location = make_training_root(tmp_path)
    recipe = BatchRecipe(location.preprocessed / "autounet_3d_fullres", ["case_000"], ["case_001"], [8, 8, 8], 2,
                         0.33, False, seed=0)
    stream = BatchStream(recipe, 0, 100, 0, workers=1)
    next(stream)
    os.kill(stream._processes[0].pid, signal.SIGKILL)
    with pytest.raises(DataWorkerError, match="killed by signal SIGKILL") as error:
        for _ in range(10):
            next(stream)
    stream.close()
    message = str(error.value)
    assert message.startswith("data worker 0 of 1 was killed") and "fewer --workers" in message
    assert "--resume" in message
    # Here the kernel's count of OOM kills did not change (where it is readable): the message says so.
    if oom_kill_count() is not None:
        assert "not by the out-of-memory killer" in message


def test_a_worker_death_counted_by_the_oom_killer_says_memory():
    from autounet.training.workers import _death_cause

    assert "out-of-memory killer (its count of OOM kills rose from 3 to 4): the machine ran out of memory" in (
        _death_cause(-9, 3, 4))
    assert "most likely by the kernel's out-of-memory killer" in _death_cause(-9, None, None)
    assert _death_cause(-15, 3, 4) == "was killed by signal SIGTERM"
    assert _death_cause(1, None, None).startswith("exited with code 1")


def test_the_oom_kill_count_is_read_from_cgroup_v2_or_v1(tmp_path):
    from autounet.utils.memory_events import oom_kill_count

    proc = tmp_path / "cgroup"
    proc.write_text("0::/user.slice/job\n")
    events = tmp_path / "root" / "user.slice" / "job" / "memory.events"
    events.parent.mkdir(parents=True)
    events.write_text("low 0\nhigh 0\nmax 2\noom 1\noom_kill 7\n")
    assert oom_kill_count(tmp_path / "root", proc) == 7
    proc.write_text("4:memory:/docker/abc\n0::/\n")
    v1 = tmp_path / "root" / "memory" / "docker" / "abc" / "memory.oom_control"
    v1.parent.mkdir(parents=True)
    v1.write_text("oom_kill_disable 0\nunder_oom 0\noom_kill 2\n")
    assert oom_kill_count(tmp_path / "root", proc) == 2
    assert oom_kill_count(tmp_path / "nowhere", tmp_path / "missing") is None


def test_corrupted_case_is_named(tmp_path):
    location = make_training_root(tmp_path)
    store = CaseStore(location.preprocessed / "autounet_3d_fullres")
    path = store.folder / "case_001.npy"
    path.write_bytes(path.read_bytes()[:200])
    with pytest.raises(UserError, match="case_001"):
        check_cases(store, store.case_ids())
    recipe = BatchRecipe(store.folder, ["case_001"], [], [8, 8, 8], 1, 0.0, False, seed=0)
    with BatchStream(recipe, 0, 2, 0, workers=1) as stream:
        with pytest.raises(DataWorkerError, match="case_001.*corrupted"):
            next(stream)

"""The on-disk cache of preprocessed cases that training reads.

One folder per configuration (``preprocessed/DATASET/<data_identifier>/``), per case:

- ``CASE.npy``: float32 image ``(channels, z, y, x)``, memory-mappable;
- ``CASE_seg.npy``: int8 (int16 beyond 127 labels) label map ``(1, z, y, x)``; ``-1`` marks voxels outside
  the nonzero mask (background the image had no content for);
- ``CASE_locations.npz``: for each foreground label ``k``, an array ``label_k`` of sampled voxel
  coordinates ``(n, 3)``, for foreground oversampling;
- ``CASE.json``: :class:`CaseProperties`, written last, so its presence means the case is complete; it also
  records the raw files the case was made from (size, modification time, SHA-256), so a case whose raw files
  changed since is found stale rather than trained on;
- ``CASE_prev.npy`` (cascades only, written by training): the previous stage's cross-validation prediction
  on this grid, int8 ``(1, z, y, x)``, ``-1`` outside the nonzero mask.
"""

from __future__ import annotations

import hashlib
import io
import os
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from autounet.errors import CorruptCacheError, UserError
from autounet.io.geometry import Geometry
from autounet.utils.atomic import save_npy, write_bytes, write_json
from autounet.utils.serde import load_json_file, to_json_value


PREVIOUS_STAGE_SUFFIX = "_prev.npy"
REBUILD = "run `autounet preprocess` again with --overwrite to rebuild the cache"
_UNREADABLE = (OSError, ValueError, EOFError, zipfile.BadZipFile)


@dataclass
class SourceStamp:
    """A raw file a cached case was made from, as it was then."""

    path: str
    size: int
    mtime_ns: int
    sha256: str

    @classmethod
    def of(cls, path: Path) -> "SourceStamp":
        path = Path(path).resolve()
        stat = path.stat()
        return cls(str(path), stat.st_size, stat.st_mtime_ns, file_sha256(path))

    def changed(self, by_content: bool = False) -> bool:
        """Whether the file differs from the stamp by size or modification time (cheap: one ``stat``), or with
        ``by_content`` by size or content (a file whose time alone changed, a plain copy, is then read and
        hashed). A file that is gone is not 'changed': the cache may have been moved to another machine, or the
        raw data archived."""
        try:
            stat = os.stat(self.path)
        except FileNotFoundError:
            return False
        if stat.st_size != self.size:
            return True
        if stat.st_mtime_ns == self.mtime_ns:
            return False
        return not by_content or file_sha256(Path(self.path)) != self.sha256

    def touched(self) -> "SourceStamp":
        """This stamp with the file's current modification time (for a file whose content did not change)."""
        return SourceStamp(self.path, self.size, os.stat(self.path).st_mtime_ns, self.sha256)


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 22):
            digest.update(chunk)
    return digest.hexdigest()


@dataclass
class CaseProperties:
    """What is needed to map a preprocessed case back to its original file."""

    case_id: str
    original_shape: list[int]
    geometry: Geometry
    crop_bbox: list[list[int]]
    shape_after_crop: list[int]
    shape_after_resample: list[int]
    target_spacing: list[float]
    sources: list[SourceStamp] = field(default_factory=list)
    """The raw files the case was made from (empty for caches made before autounet recorded them)."""


@dataclass
class PreprocessedCase:
    """A cached case: image, labels (None for test images), properties and foreground locations."""

    data: np.ndarray
    seg: np.ndarray | None
    properties: CaseProperties
    class_locations: dict[int, np.ndarray]
    previous_stage: np.ndarray | None = None
    """A cascade's previous-stage label map ``(1, z, y, x)`` (see :meth:`CaseStore.load_previous_stage`)."""


class CaseStore:
    """Reads and writes the preprocessed cases of one configuration.

    Example:
        >>> store = CaseStore(Path("preprocessed/Dataset004_Hippocampus/3d_fullres"))  # doctest: +SKIP
        >>> case = store.load(store.case_ids()[0])                                      # doctest: +SKIP
        >>> patch = case.data[:, 10:50, 0:56, 0:40]   # only this part is read from disk
    """

    def __init__(self, folder: Path):
        self.folder = Path(folder)

    def _file(self, case_id: str, suffix: str) -> Path:
        return self.folder / f"{case_id}{suffix}"

    def case_ids(self) -> list[str]:
        """Identifiers of the complete cases (properties and image present), sorted."""
        if not self.folder.is_dir():
            return []
        return sorted(p.name[: -len(".json")] for p in self.folder.glob("*.json")
                      if not p.name.startswith(".") and p.with_suffix(".npy").is_file())

    def is_done(self, case_id: str) -> bool:
        """Whether the case is complete and current, for preprocessing: its raw files have the content they had
        when it was made. Raw files whose time alone changed (a copy) are compared by content and, when
        unchanged, their recorded time is brought up to date, so reading the case stays cheap. An unreadable
        properties file counts as not done, so preprocessing makes the case again.
        """
        if not (self._file(case_id, ".json").is_file() and self._file(case_id, ".npy").is_file()):
            return False
        try:
            properties = self.load_properties(case_id)
        except UserError:
            return False
        if not any(stamp.changed() for stamp in properties.sources):
            return True
        if any(stamp.changed(by_content=True) for stamp in properties.sources):
            return False
        properties.sources = [stamp.touched() if stamp.changed() else stamp for stamp in properties.sources]
        write_json(self._file(case_id, ".json"), to_json_value(properties))
        return True

    def remove(self, case_id: str) -> None:
        """Delete a case's files (properties first, so a half-removed case never looks complete)."""
        for suffix in (".json", ".npy", "_seg.npy", "_locations.npz", PREVIOUS_STAGE_SUFFIX):
            self._file(case_id, suffix).unlink(missing_ok=True)

    def remove_stale_temporaries(self) -> int:
        """Delete temporary files left by writes that were killed mid-way; return how many."""
        if not self.folder.is_dir():
            return 0
        stale = [p for p in self.folder.glob(".*.tmp*") if p.is_file()]
        for path in stale:
            path.unlink(missing_ok=True)
        return len(stale)

    def disk_bytes(self) -> int:
        """Bytes used by the files in this store's folder."""
        if not self.folder.is_dir():
            return 0
        return sum(p.stat().st_size for p in self.folder.iterdir() if p.is_file())

    def save(self, case_id: str, data: np.ndarray, seg: np.ndarray | None, properties: CaseProperties,
             class_locations: dict[int, np.ndarray], sources: Sequence[Path] = ()) -> None:
        """Write a case; the properties file goes last and marks it complete.

        ``sources``: the raw files the case was made from, stamped into its properties so later changes to
        them are noticed. If writing fails (a full disk, say), the case's files are removed again, so
        nothing is left that looks whole; the error is re-raised.
        """
        self._file(case_id, ".json").unlink(missing_ok=True)
        if sources:
            properties = CaseProperties(**{**vars(properties), "sources": [SourceStamp.of(p) for p in sources]})
        try:
            save_npy(self._file(case_id, ".npy"), data.astype(np.float32, copy=False))
            if seg is not None:
                save_npy(self._file(case_id, "_seg.npy"), seg)
            else:
                self._file(case_id, "_seg.npy").unlink(missing_ok=True)
            buffer = io.BytesIO()
            np.savez(buffer, **{f"label_{k}": np.asarray(v, dtype=np.int32).reshape(-1, 3)
                                for k, v in class_locations.items()})
            write_bytes(self._file(case_id, "_locations.npz"), buffer.getvalue())
            write_json(self._file(case_id, ".json"), to_json_value(properties))
        except BaseException:
            self.remove(case_id)
            raise

    def previous_stage_file(self, case_id: str) -> Path:
        """Where a cascade's previous-stage label map of ``case_id`` is cached."""
        return self._file(case_id, PREVIOUS_STAGE_SUFFIX)

    def save_previous_stage(self, case_id: str, seg: np.ndarray) -> None:
        """Cache a previous-stage label map ``(1, z, y, x)`` on this case's grid (atomically)."""
        shape = self.load_properties(case_id).shape_after_resample
        if list(seg.shape) != [1, *shape]:
            raise ValueError(f"previous-stage labels of '{case_id}' have shape {list(seg.shape)}, expected "
                             f"{[1, *shape]}")
        save_npy(self.previous_stage_file(case_id), seg)

    def load_previous_stage(self, case_id: str, mmap: bool = True) -> np.ndarray:
        """The cached previous-stage label map ``(1, z, y, x)`` of ``case_id``."""
        path = self.previous_stage_file(case_id)
        try:
            return np.load(path, mmap_mode="r" if mmap else None, allow_pickle=False)
        except _UNREADABLE as error:
            raise UserError(f"{path}: cached previous-stage prediction is unreadable ({error}); delete it to "
                            f"have it rebuilt.") from error

    def load_properties(self, case_id: str) -> CaseProperties:
        """The case's properties; a :class:`CorruptCacheError` naming the file when it is unreadable or does not
        fit (an unknown key, a wrong type)."""
        try:
            return load_json_file(CaseProperties, self._file(case_id, ".json"), REBUILD)
        except UserError as error:
            raise CorruptCacheError(f"preprocessed case '{case_id}': {error}") from error

    def load(self, case_id: str, mmap: bool = True) -> PreprocessedCase:
        """Open a case; with ``mmap`` the arrays are memory-mapped, so reading a patch reads only that part.

        Raises a :class:`CorruptCacheError` naming the file and the fix when a file is truncated or unreadable,
        the arrays disagree with each other or with the properties, or the raw files changed since (by size or
        time: a ``stat`` per file, so opening stays cheap; :meth:`is_done` tells time from content).
        """
        mode = "r" if mmap else None
        properties = self.load_properties(case_id)
        changed = [stamp.path for stamp in properties.sources if stamp.changed()]
        if changed:
            raise CorruptCacheError(f"{self._file(case_id, '.json')}: the cached case was made from {changed[0]}, "
                                    f"which changed since (size or modification time); run `autounet "
                                    f"preprocess` again, which redoes changed cases and keeps those whose files "
                                    f"only got a new time.")
        data = self._array(case_id, ".npy", mode)
        seg_file = self._file(case_id, "_seg.npy")
        seg = self._array(case_id, "_seg.npy", mode) if seg_file.is_file() else None
        locations_file = self._file(case_id, "_locations.npz")
        try:
            with np.load(locations_file, allow_pickle=False) as npz:
                locations = {int(name.split("_", 1)[1]): npz[name] for name in npz.files}
        except _UNREADABLE as error:
            raise CorruptCacheError(f"{locations_file}: corrupted ({_reason(error)}); {REBUILD}.") from error
        expected = list(properties.shape_after_resample)
        if data.ndim != 4 or list(data.shape[1:]) != expected:
            raise CorruptCacheError(f"{self._file(case_id, '.npy')}: shape {list(data.shape)} does not match its "
                                    f"properties {self._file(case_id, '.json').name} (channels, {expected}); "
                                    f"{REBUILD}.")
        if seg is not None and seg.shape[1:] != data.shape[1:]:
            raise CorruptCacheError(f"{seg_file}: shape {list(seg.shape)} does not match the image "
                                    f"{list(data.shape)}; {REBUILD}.")
        return PreprocessedCase(data, seg, properties, locations)

    def _array(self, case_id: str, suffix: str, mode: str | None) -> np.ndarray:
        path = self._file(case_id, suffix)
        try:
            return np.load(path, mmap_mode=mode, allow_pickle=False)
        except _UNREADABLE as error:
            raise CorruptCacheError(f"{path}: corrupted, probably truncated ({_reason(error)}); {REBUILD}.") \
                from error


def _reason(error: BaseException) -> str:
    return str(error).strip().splitlines()[0][:120] if str(error).strip() else type(error).__name__

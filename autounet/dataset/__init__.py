"""The nnU-Net v2 raw dataset format: dataset.json as a typed spec, and the cases on disk."""

from autounet.dataset.cases import Case, find_cases, find_test_cases
from autounet.dataset.spec import DatasetSpec, load_spec

__all__ = ["Case", "DatasetSpec", "find_cases", "find_test_cases", "load_spec"]

"""Data: readers of the real formats, the dataset registry, the semi-supervised split, batching."""
from .datasets import (DATASETS, DataInfo, Dataset, Standardization, cache_dir, list_datasets, load_dataset,
                       warn_unscaled)
from .loader import InMemoryLoader, LabeledStream, to_float
from .readers import DataError
from .split import apply_split, labeled_mask

__all__ = ["DATASETS", "DataInfo", "Dataset", "DataError", "Standardization", "InMemoryLoader", "LabeledStream",
           "apply_split", "to_float", "warn_unscaled", "cache_dir", "labeled_mask", "list_datasets", "load_dataset"]

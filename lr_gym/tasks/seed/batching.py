"""Dict-of-tensors datasets for padded sequence tasks (QA, tagging).

Sequences are tokenized once and stored padded to a common length; each batch is
then cut, on the CPU and before it reaches the device, to the longest sequence it
holds. Short batches cost short compute and no step needs a host sync.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch.utils.data import Dataset


class DictDataset(Dataset):
    """Equal-length tensors by name; batches are dicts of tensors.

    ``DataLoader`` fetches whole batches through :meth:`__getitems__` (one indexing
    op per tensor, no per-example collation); pair it with :func:`dict_collate`.

    Args:
        tensors: Name -> tensor, all with the same first dimension.
        length_key: Optional name of a ``(N, L)`` 0/1 mask (e.g. ``attention_mask``);
            batches are then trimmed along dim 1 to its longest row.
        seq_keys: Names of the tensors trimmed along dim 1 (default: every tensor
            with the mask's shape).
    """

    def __init__(
        self,
        tensors: Mapping[str, torch.Tensor],
        *,
        length_key: str | None = None,
        seq_keys: Sequence[str] | None = None,
    ) -> None:
        sizes = {k: len(v) for k, v in tensors.items()}
        if len(set(sizes.values())) != 1:
            raise ValueError(f"DictDataset tensors differ in length: {sizes}.")
        self.tensors = dict(tensors)
        self.length_key = length_key
        if length_key is not None and seq_keys is None:
            shape = self.tensors[length_key].shape
            seq_keys = [k for k, v in self.tensors.items() if v.shape[:2] == shape]
        self.seq_keys = tuple(seq_keys or ())

    def __len__(self) -> int:
        return len(next(iter(self.tensors.values())))

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return self.__getitems__([i])

    def __getitems__(self, indices: Sequence[int]) -> dict[str, torch.Tensor]:
        idx = torch.as_tensor(indices, dtype=torch.long)
        batch = {k: v[idx] for k, v in self.tensors.items()}
        if self.length_key is not None:
            longest = int(batch[self.length_key].sum(1).max())
            for k in self.seq_keys:
                batch[k] = batch[k][:, :longest]
        return batch

    def subset(self, indices: Sequence[int] | torch.Tensor) -> DictDataset:
        """The rows ``indices`` as a new dataset (same trimming)."""
        idx = torch.as_tensor(indices, dtype=torch.long)
        return DictDataset(
            {k: v[idx] for k, v in self.tensors.items()},
            length_key=self.length_key,
            seq_keys=self.seq_keys,
        )


def dict_collate(batch: Any) -> Any:
    """Collation for :class:`DictDataset`: ``__getitems__`` already built the batch."""
    return batch

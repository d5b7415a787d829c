"""One key-value memory (working or long-term; docs/network.md, "Reading memory"), stored element-major.

Row i of `key`, `shrinkage`, `selection`, `use_count`, `life_count` describes memory element i.
Values are kept per object group: group g holds an M_g×(n_g·CV) matrix whose rows belong to
the *last* M_g elements (a group that appeared later only has values for later memory).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

_INITIAL_LIFE = 1e-7  # life_count of a new element: avoids 0/0 in the normalised usage


def _append(old: Tensor | None, new: Tensor) -> Tensor:
    return new if old is None else torch.cat([old, new], dim=0)


class KeyValueMemoryStore:
    def __init__(self, count_usage: bool) -> None:
        self.count_usage = count_usage
        self.key: Tensor | None = None  # M×CK
        self.shrinkage: Tensor | None = None  # M
        self.selection: Tensor | None = None  # M×CK, only where consolidation needs it
        self.values: list[Tensor] = []  # per group, M_g×(n_g·CV)
        self.groups: list[list[int]] = []  # 0-based object indices per group, in object order
        self.use_count: Tensor | None = None  # M, summed affinity received
        self.life_count: Tensor | None = None  # M, query frames seen since the element was added

    @property
    def size(self) -> int:
        return 0 if self.key is None else self.key.shape[0]

    @property
    def num_objects(self) -> int:
        return sum(len(group) for group in self.groups)

    def add(
        self,
        key: Tensor,
        shrinkage: Tensor,
        values: Sequence[Tensor | None],
        groups: Sequence[Sequence[int]],
        selection: Tensor | None = None,
    ) -> None:
        """Append elements (key n×CK, shrinkage n) with per-group values (None = none for it).

        A group whose object list is not stored yet becomes a new group (objects are added in
        increasing order, so group order stays object order).
        """
        self.key = _append(self.key, key)
        self.shrinkage = _append(self.shrinkage, shrinkage)
        if selection is not None:
            self.selection = _append(self.selection, selection)
        for objects, value in zip(groups, values, strict=True):
            if value is None:
                continue
            objects = list(objects)
            if objects in self.groups:
                g = self.groups.index(objects)
                self.values[g] = torch.cat([self.values[g], value], dim=0)
            else:
                self.groups.append(objects)
                self.values.append(value)
        if self.count_usage:
            n = key.shape[0]
            self.use_count = _append(self.use_count, key.new_zeros(n))
            self.life_count = _append(self.life_count, key.new_full((n,), _INITIAL_LIFE))

    def update_usage(self, usage: Tensor) -> None:
        """Add one query frame's affinity mass (length M) to the counters."""
        if self.count_usage and self.size:
            self.use_count += usage
            self.life_count += 1

    def normalised_usage(self) -> Tensor:
        if not self.count_usage:
            raise RuntimeError("this memory store does not count usage")
        return self.use_count / self.life_count

    def remove_range(self, start: int, end: int, min_group_size: int) -> None:
        """Drop elements [start, end); groups of at least `min_group_size` rows drop their
        local rows [start, end − (M − M_g)) (their own first frame is kept; docs/network.md, "Consolidation")."""
        total = self.size

        def cut(x: Tensor, stop: int) -> Tensor:
            return torch.cat([x[:start], x[stop:]], dim=0)

        for name in ("key", "shrinkage", "selection", "use_count", "life_count"):
            tensor = getattr(self, name)
            if tensor is not None:
                setattr(self, name, cut(tensor, end))
        self.values = [cut(v, end - (total - v.shape[0])) if v.shape[0] >= min_group_size else v for v in self.values]

    def keep(self, survivors: Tensor) -> None:
        """Keep only the elements flagged in the boolean mask `survivors` (length M)."""
        for name in ("key", "shrinkage", "selection", "use_count", "life_count"):
            tensor = getattr(self, name)
            if tensor is not None:
                setattr(self, name, tensor[survivors])
        # Group values align with the last elements, so each takes the tail of the mask.
        self.values = [v[survivors[survivors.shape[0] - v.shape[0] :]] for v in self.values]

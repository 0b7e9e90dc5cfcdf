"""Weight layouts: where each named tensor sits in a flat float32 vector."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class TensorSlot:
    """One weight tensor's place in a flat weight vector."""

    name: str
    shape: tuple[int, ...]
    offset: int

    @property
    def size(self) -> int:
        return int(np.prod(self.shape)) if self.shape else 1


@dataclass(frozen=True)
class WeightLayout:
    """The tensors of a flat weight vector, in order."""

    tensors: tuple[TensorSlot, ...]

    @staticmethod
    def from_shapes(named_shapes: list[tuple[str, tuple[int, ...]]]) -> "WeightLayout":
        slots, offset = [], 0
        for name, shape in named_shapes:
            slot = TensorSlot(name, tuple(int(d) for d in shape), offset)
            slots.append(slot)
            offset += slot.size
        return WeightLayout(tuple(slots))

    @property
    def size(self) -> int:
        return sum(t.size for t in self.tensors)

    def split(self, flat: np.ndarray) -> dict[str, np.ndarray]:
        """The named tensors of a flat vector."""
        flat = np.asarray(flat, dtype=np.float32).reshape(-1)
        if flat.size != self.size:
            raise ValueError(f"weight vector has {flat.size} values, the layout needs {self.size}")
        return {t.name: flat[t.offset : t.offset + t.size].reshape(t.shape) for t in self.tensors}

    def join(self, tensors: dict[str, np.ndarray]) -> np.ndarray:
        """One flat float32 vector from named tensors."""
        return np.concatenate(
            [np.asarray(tensors[t.name], np.float32).reshape(-1) for t in self.tensors]
        )

"""The top-k index the two-tower export writes and the serving client searches.

Shared by both sides, so it lives beside the client and not in export code.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from mmrec.errors import MmrecError
from mmrec.io import atomic_path, read_json, write_json_atomic


class TopKIndex:
    """Exact maximum-inner-product search over item vectors: one matrix product per batch."""

    def __init__(
        self,
        vectors: np.ndarray,
        ids: np.ndarray,
        temperature: float = 1.0,
        bias: np.ndarray | None = None,
    ) -> None:
        if vectors.ndim != 2 or len(vectors) != len(ids):
            raise MmrecError(
                f"index needs [n, d] vectors and n ids, got {vectors.shape}, {len(ids)}"
            )
        self.vectors = np.asarray(vectors, dtype=np.float32)
        self.ids = np.asarray(ids)
        self.temperature = float(temperature)
        self.bias = None if bias is None else np.asarray(bias, dtype=np.float32)

    def save(self, folder: str | os.PathLike[str]) -> None:
        arrays = {"vectors.npy": self.vectors, "ids.npy": self.ids}
        if self.bias is not None:
            arrays["bias.npy"] = self.bias
        for name, array in arrays.items():
            with atomic_path(Path(folder) / name) as tmp, open(tmp, "wb") as f:
                np.save(f, array)
        write_json_atomic(Path(folder) / "index.json", {"temperature": self.temperature})

    @classmethod
    def load(cls, folder: str | os.PathLike[str]) -> TopKIndex:
        folder = Path(folder)
        if not (folder / "vectors.npy").exists():
            raise MmrecError(f"no top-k index in {folder} (expected vectors.npy and ids.npy)")
        bias = np.load(folder / "bias.npy") if (folder / "bias.npy").exists() else None
        meta = read_json(folder / "index.json") if (folder / "index.json").exists() else {}
        return cls(
            np.load(folder / "vectors.npy"),
            np.load(folder / "ids.npy"),
            temperature=meta.get("temperature", 1.0),
            bias=bias,
        )

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Top k ids and scores per query row, best first."""
        queries = np.atleast_2d(np.asarray(queries, dtype=np.float32))
        if queries.shape[1] != self.vectors.shape[1]:
            raise MmrecError(f"query dim {queries.shape[1]} != item dim {self.vectors.shape[1]}")
        k = max(1, min(int(k), len(self.ids)))
        scores = (queries @ self.vectors.T) / self.temperature
        if self.bias is not None:
            scores = scores + self.bias
        top = np.argpartition(-scores, k - 1, axis=1)[:, :k]
        top_scores = np.take_along_axis(scores, top, axis=1)
        order = np.argsort(-top_scores, axis=1, kind="stable")
        top = np.take_along_axis(top, order, axis=1)
        return self.ids[top], np.take_along_axis(top_scores, order, axis=1)

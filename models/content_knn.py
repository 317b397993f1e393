"""Content kNN per modality: the cold-start baseline that uses nothing but the pretrained vectors.

A user's profile is the mean vector of the movies they liked in train; a movie's score is the
cosine between that profile and its vector. It needs no interaction with the movie itself, so
it is what a content-aware model must beat on cold movies. Movies without the modality, and
users who liked nothing that has it, score 0 (a tie, counted as such by the metrics).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from models.data import Interactions


def _unit(m: np.ndarray) -> np.ndarray:
    norm = np.linalg.norm(m, axis=1, keepdims=True)
    return np.divide(m, norm, out=np.zeros_like(m), where=norm > 0)


class ContentKnn:
    """Profiles from train positives, cosine scores against each movie's vector."""

    def __init__(self, matrix: np.ndarray, has: np.ndarray, train: Interactions, n_users: int):
        vectors = np.asarray(matrix, dtype=np.float32)
        has = np.asarray(has, dtype=bool)[: vectors.shape[0]]
        # centre on the mean movie, so the cosine says what is particular to a movie and not
        # what every movie vector shares (pretrained embeddings sit in a narrow cone)
        centre = vectors[has].mean(0) if has.any() else np.zeros(vectors.shape[1], np.float32)
        self.items = _unit(np.where(has[:, None], vectors - centre, 0.0).astype(np.float32))
        pos = train.positives()
        keep = has[pos.items]
        from scipy import sparse

        liked = sparse.csr_matrix(
            (np.ones(int(keep.sum()), np.float32), (pos.users[keep], pos.items[keep])),
            shape=(n_users, self.items.shape[0]),
        )
        self.users = _unit(np.asarray(liked @ self.items, dtype=np.float32))

    def score_fn(self, candidates: np.ndarray) -> Any:
        """Scores [users, candidates] for `retrieval_eval`."""
        v = self.items[candidates]

        def score(users: np.ndarray) -> np.ndarray:
            return self.users[users] @ v.T

        return score

    def rows(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        """One score per (user, movie) row, for AUC on ranking rows (not a probability)."""
        return np.einsum("ij,ij->i", self.users[users], self.items[items])

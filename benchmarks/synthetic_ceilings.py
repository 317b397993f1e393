"""How much can content add on a synthetic dataset? AUC ceilings from the hidden truth.

The synthetic generator keeps its latent model in `_truth/`, so the validation rows of an ETL run
can be scored with what no model can know: the true taste of each user. With that taste fixed,
the score of a movie can use (a) everything (the truth), (b) its topic, (c) factors predicted
from its genres or (d) from its content vectors, each predictor fitted on the warm (train)
movies only and applied to the cold ones, as a model would. (d) minus (c) bounds what the
modality ablation can show on cold items: if content tells no more than genres, no model can
beat its constant control by much. Models learn users from a few dozen ratings, so they land
well below these numbers; the gaps, not the levels, are the point.

    .venv/bin/python benchmarks/synthetic_ceilings.py --data-dir data --etl-run cold-items-lookup
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mmrec.contracts import ITEM, USER, EtlRunPaths
from mmrec.io import read_json
from models.metrics import auc
from workflows.features.store import pca, read_embeddings


def _ridge(x: np.ndarray, y: np.ndarray, fit: np.ndarray, lam: float) -> np.ndarray:
    """Fit on rows `fit` (standardised inputs), predict every row."""
    mu, sd = x[fit].mean(0), x[fit].std(0) + 1e-9
    a = (x - mu) / sd
    w = np.linalg.solve(
        a[fit].T @ a[fit] + lam * np.eye(a.shape[1]), a[fit].T @ (y[fit] - y[fit].mean(0))
    )
    return a @ w + y[fit].mean(0)


def ceilings(
    root: Path, etl_run: str, pca_dims: int = 64, modalities: tuple[str, ...] = ("text", "image")
) -> pd.DataFrame:
    """AUC per score on valid (all, warm, cold rows) and, per predictor, the R2 of the factors it
    predicts for the cold movies (1 - residual / total sum of squares over all factor values)."""
    etl = root / "etl" / etl_run
    valid = pd.concat(
        pd.read_parquet(f, columns=["userId", "movieId", "rating_binary"])
        for f in sorted(EtlRunPaths(etl).valid.glob("*.parquet"))
    )
    users = pd.read_parquet(EtlRunPaths(etl).vocabulary(USER))[USER]
    items = pd.read_parquet(EtlRunPaths(etl).vocabulary(ITEM))[ITEM]
    raw_u = users.reindex(valid.userId.to_numpy()).to_numpy()
    raw_m = items.reindex(valid.movieId.to_numpy()).to_numpy()
    y = valid.rating_binary.to_numpy()
    cold_ids = np.asarray(read_json(EtlRunPaths(etl).summary)["split"].get("cold_movie_ids") or [])
    cold = np.isin(raw_m, cold_ids)

    tm = pd.read_parquet(root / "_truth" / "movies.parquet").set_index("movieId")
    tu = pd.read_parquet(root / "_truth" / "users.parquet").set_index("userId")
    factors = np.stack(tm["factors"].to_numpy())
    n_f = factors.shape[1]
    uf = np.stack(tu.loc[raw_u, "factors"].to_numpy())
    ub = tu.loc[raw_u, "bias"].to_numpy()
    row = pd.Series(np.arange(len(tm)), index=tm.index)[raw_m].to_numpy()
    warm_movies = ~np.isin(tm.index.to_numpy(), cold_ids)

    genres = pd.read_parquet(root / "movies.parquet").set_index("movieId").reindex(tm.index)
    names = sorted({g for gs in genres.genres for g in gs})
    g_onehot = np.array([[g in set(gs) for g in names] for gs in genres.genres], dtype=np.float64)
    content = []
    for modality in modalities:
        path = root / "features" / f"{modality}.parquet"
        if path.exists():
            ids, vectors, _ = read_embeddings(path)
            vec = pd.DataFrame(vectors, index=ids).reindex(tm.index).fillna(0.0).to_numpy()
            content.append(pca(vec, min(pca_dims, vec.shape[1]))[0])
    topic = tm["topic"].to_numpy()
    centroid = pd.DataFrame(factors[warm_movies]).groupby(topic[warm_movies]).mean()
    predicted = {
        "topic centroid": centroid.reindex(topic).fillna(0.0).to_numpy(),
        "factors from genres": _ridge(g_onehot, factors, warm_movies, 10.0),
    }
    if content:
        both = np.hstack(content)
        predicted["factors from content"] = _ridge(both, factors, warm_movies, 100.0)
        predicted["factors from content+genres"] = _ridge(
            np.hstack([both, g_onehot]), factors, warm_movies, 100.0
        )
    scores = {
        "truth (user and movie bias + taste)": ub
        + tm["bias"].to_numpy()[row]
        + (uf * factors[row]).sum(1) / np.sqrt(n_f),
        "user bias only": ub,
    }
    for name, f in predicted.items():
        scores[f"user bias + taste x {name}"] = ub + (uf * f[row]).sum(1) / np.sqrt(n_f)
    cold_movies = ~warm_movies
    truth_cold = factors[cold_movies]
    total = ((truth_cold - truth_cold.mean(0)) ** 2).sum()
    r2 = {
        f"user bias + taste x {name}": 1.0 - ((f[cold_movies] - truth_cold) ** 2).sum() / total
        for name, f in predicted.items()
    }
    out = []
    for name, s in scores.items():
        out.append(
            {
                "score": name,
                "all": auc(y, s),
                "warm": auc(y[~cold], s[~cold]),
                "cold": auc(y[cold], s[cold]) if cold.any() else float("nan"),
                "factor R2 cold": r2.get(name, float("nan")),
            }
        )
    return pd.DataFrame(out).set_index("score")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data-dir", type=Path, default=Path("data"))
    ap.add_argument("--dataset", default="synthetic")
    ap.add_argument("--etl-run", default="cold-items-lookup")
    ap.add_argument("--pca", type=int, default=64, help="content dims kept before the ridge")
    ap.add_argument(
        "--modalities", default="text,image", help="content vectors used, e.g. image (posters only)"
    )
    args = ap.parse_args()
    root = args.data_dir / args.dataset
    if not (root / "_truth").is_dir():
        sys.exit(f"{root}: no _truth/ folder; ceilings exist only for synthetic datasets")
    print(f"AUC ceilings on {root / 'etl' / args.etl_run} validation (true user tastes known)")
    modalities = tuple(m for m in args.modalities.split(",") if m)
    print(ceilings(root, args.etl_run, args.pca, modalities).round(4).to_string())


if __name__ == "__main__":
    main()

"""Two-tower retrieval model: a user tower and an item tower scored by a dot product.

The item tower reads the movie id, genres, year and the pretrained vectors (projected), so a
movie nobody rated in train still gets a meaningful vector. Towers end in an L2 norm and logits
are divided by a temperature: unnormalised dot products with in-batch softmax overfit the few
popular items. Training uses in-batch negatives. Merlin's sampled softmax
(PopularityBasedSamplerV2) only works when the item tower is a bare id embedding (sampled ids
come without their features), so it is not offered for these feature-rich towers.

In-batch negatives are drawn in proportion to popularity, so the softmax learns roughly
log p(item | user) - log p(item): popularity is divided out. `popularity_correction` adds
log(train count) back at retrieval time (the logQ correction applied at scoring instead of in
the loss); without it the model under-ranks popular movies and loses to the popularity baseline.
"""

from __future__ import annotations

from typing import Any

from mmrec.contracts import USER


def build_two_tower(
    schema: Any,
    *,
    embedding_dim: int,
    tower_mlp: tuple[int, ...],
    dropout: float,
    l2_reg: float,
    temperature: float,
    negatives: str,
    pretrained_stats: dict[str, tuple[list, list]] | None = None,
) -> Any:
    """A `RetrievalModelV2` whose query tower reads userId and candidate tower the item columns."""
    import merlin.models.tf as mm
    from merlin.schema import Tags

    features = schema.excluding_by_tag(Tags.TARGET)
    user_schema = features.select_by_name([USER])
    item_names = [c for c in features.column_names if c != USER]
    item_schema = features.select_by_name(item_names)
    item_cats = item_schema.select_by_tag(Tags.CATEGORICAL)
    item_emb = item_schema.select_by_tag(Tags.EMBEDDING)

    def tower(layers_schema: Any, cats: Any, pretrained: Any, name: str) -> Any:
        branches: dict[str, Any] = {
            "categorical": mm.Embeddings(
                cats,
                dim=embedding_dim,
                sequence_combiner="mean",
                l2_batch_regularization_factor=l2_reg,
                block_name=f"{name}_embeddings",
            )
        }
        if pretrained is not None and len(pretrained):
            from models.layers import pretrained_branches

            branches["pretrained_embeddings"] = pretrained_branches(
                pretrained, pretrained_stats or {}, embedding_dim
            )
        inputs = mm.InputBlockV2(layers_schema, **branches)
        mlp = mm.MLPBlock(list(tower_mlp), dropout=dropout, no_activation_last_layer=True)
        return mm.Encoder(inputs, mlp, mm.L2Norm())

    query = tower(user_schema, user_schema, None, "user")
    candidate = tower(item_schema, item_cats, item_emb, "item")
    if negatives != "in-batch":
        from mmrec.errors import MmrecError

        # PopularityBasedSamplerV2 yields ids only; an item tower that reads features (genres,
        # year, pretrained vectors) cannot embed them, so Merlin 23.12 fails on it.
        raise MmrecError(f"unknown negatives {negatives!r}: only in-batch works with item features")
    samplers = ["in-batch"]
    return mm.TwoTowerModelV2(
        query, candidate, negative_samplers=samplers, logits_temperature=temperature
    )

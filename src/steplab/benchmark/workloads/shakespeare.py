"""A character-level transformer language model on Shakespeare (nanoGPT-like: pre-norm
blocks of causal self-attention and a GELU MLP, learned position embeddings).

Data: the "small" size trains on ``data/shakespeare_sample.txt``, a few KB of Shakespeare
(public domain) that ships with steplab, so tests and CI never download. The "full" size
uses the canonical tiny-shakespeare text (Karpathy's char-rnn, 1 115 394 bytes), downloaded
once into the cache and checked against its SHA-256; offline, a missing file is one line
saying how to get it. Judged by the validation loss (cross-entropy per character, nats) on
the text's last 10 %.
"""

from __future__ import annotations

import hashlib
import math
from importlib import resources
from pathlib import Path

from steplab.benchmark.workloads.base import Budget, Task, Workload

URL = "https://raw.githubusercontent.com/karpathy/char-rnn/master/data/tinyshakespeare/input.txt"
SHA256 = "86c4e6aa9db7c042ec79f339dcb96d42b0075e16b8fc2e86bf0ca57e2dc565ed"
SAMPLE = "shakespeare_sample.txt"

# size -> (context, width, layers, heads)
SHAPES = {"small": (32, 48, 2, 4), "full": (256, 384, 6, 6)}


def sample_text() -> str:
    """The bundled few-KB sample (package data)."""
    return (resources.files("steplab.benchmark.workloads") / "data" / SAMPLE).read_text()


def tiny_shakespeare_path() -> Path:
    from steplab.problems.datasets import cache_dir

    return cache_dir() / "tinyshakespeare.txt"


def tiny_shakespeare(*, download: bool = True) -> str:
    """The canonical tiny-shakespeare text from the cache, downloaded (and checked against
    its SHA-256) the first time."""
    path = tiny_shakespeare_path()
    if not path.exists():
        if not download:
            raise FileNotFoundError(_how_to_get(path))
        import urllib.request

        try:
            with urllib.request.urlopen(URL, timeout=60) as response:
                data = response.read()
        except OSError as exc:
            raise FileNotFoundError(f"{_how_to_get(path)} (download failed: {exc})") from None
        digest = hashlib.sha256(data).hexdigest()
        if digest != SHA256:
            raise ValueError(f"tiny-shakespeare from {URL} has SHA-256 {digest}, not {SHA256}")
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".part")
        tmp.write_bytes(data)
        tmp.replace(path)
    data = path.read_bytes()
    if hashlib.sha256(data).hexdigest() != SHA256:
        raise ValueError(f"{path} is not the canonical tiny-shakespeare (SHA-256 differs)")
    return data.decode("utf-8")


def _how_to_get(path: Path) -> str:
    return f"tiny-shakespeare is missing: with internet, download {URL} to {path}"


def text_for(size: str) -> str:
    return sample_text() if size == "small" else tiny_shakespeare()


def _model(vocab: int, context: int, width: int, layers: int, heads: int):
    import torch
    import torch.nn.functional as F
    from torch import nn

    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.ln1 = nn.LayerNorm(width)
            self.qkv = nn.Linear(width, 3 * width)
            self.proj = nn.Linear(width, width)
            self.ln2 = nn.LayerNorm(width)
            self.mlp = nn.Sequential(
                nn.Linear(width, 4 * width), nn.GELU(), nn.Linear(4 * width, width)
            )

        def forward(self, x):
            b, t, c = x.shape
            q, k, v = self.qkv(self.ln1(x)).split(width, dim=2)
            q, k, v = (a.view(b, t, heads, c // heads).transpose(1, 2) for a in (q, k, v))
            y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
            x = x + self.proj(y.transpose(1, 2).reshape(b, t, c))
            return x + self.mlp(self.ln2(x))

    class CharTransformer(nn.Module):
        def __init__(self):
            super().__init__()
            self.tokens = nn.Embedding(vocab, width)
            self.positions = nn.Embedding(context, width)
            self.blocks = nn.Sequential(*(Block() for _ in range(layers)))
            self.ln = nn.LayerNorm(width)
            self.head = nn.Linear(width, vocab)

        def forward(self, idx):
            pos = torch.arange(idx.shape[1], device=idx.device)
            x = self.tokens(idx) + self.positions(pos)
            return self.head(self.ln(self.blocks(x)))

    return CharTransformer()


def build(size: str, seed: int) -> Task:
    import torch
    import torch.nn.functional as F

    context, width, layers, heads = SHAPES[size]
    text = text_for(size)
    chars = sorted(set(text))
    lookup = {ch: i for i, ch in enumerate(chars)}
    ids = torch.tensor([lookup[ch] for ch in text], dtype=torch.long)
    split = int(0.9 * len(ids))
    train_ids, val_ids = ids[:split], ids[split:]
    offsets = torch.arange(context + 1)
    # A training example is a window of context + 1 characters (inputs, then the targets
    # shifted by one), named by its start; windows are cut per batch, never all stored.
    starts = torch.arange(0, len(train_ids) - context - 1)
    # Validation: non-overlapping windows covering the held-out text.
    windows = val_ids[torch.arange(0, len(val_ids) - context - 1, context)[:, None] + offsets]
    model = _model(len(chars), context, width, layers, heads)

    def window_loss(m, w):
        logits = m(w[:, :-1])
        return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), w[:, 1:].reshape(-1))

    def loss(m, start, _):
        return window_loss(m, train_ids[start[:, None] + offsets])

    def evaluate(m) -> float:
        total = 0.0
        for i in range(0, windows.shape[0], 64):
            total += float(window_loss(m, windows[i : i + 64])) * len(windows[i : i + 64])
        return total / windows.shape[0] if windows.shape[0] else math.nan

    return Task(model, starts, starts, loss=loss, evaluate=evaluate)


WORKLOAD = Workload(
    "shakespeare_char",
    "character-level transformer LM on Shakespeare (nanoGPT-like)",
    "val_loss",
    False,
    {"small": Budget(200, 16, 20), "full": Budget(5000, 64, 250)},
    build,
)

"""A small GPT-style decoder (``model.kind = "transformer"``) for the char-LM task.

Token and learned position embeddings, ``layers`` pre-norm blocks, a final LayerNorm and a
head tied to the token embedding (Press & Wolf 2017)::

    h = E[x] + P[0..T)
    h = h + Attn(LN(h))      causal multi-head self-attention (scaled dot product)
    h = h + MLP(LN(h))       width -> 4 width -> GELU -> width
    logits = LN(h) E^T       (vocab per position)

so position t sees tokens 0..t only. It maps ``(batch, time)`` token ids to ``(batch, time,
vocab)`` logits for any ``time <= context``.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F


class CausalSelfAttention(nn.Module):
    def __init__(self, width: int, heads: int, dropout: float):
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(width, 3 * width)
        self.out = nn.Linear(width, width)
        self.dropout = dropout

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        batch, time, width = h.shape
        q, k, v = self.qkv(h).split(width, dim=2)
        q, k, v = (t.view(batch, time, self.heads, -1).transpose(1, 2) for t in (q, k, v))
        drop = self.dropout if self.training else 0.0
        y = F.scaled_dot_product_attention(q, k, v, dropout_p=drop, is_causal=True)
        return self.out(y.transpose(1, 2).reshape(batch, time, width))


class Block(nn.Module):
    def __init__(self, width: int, heads: int, dropout: float):
        super().__init__()
        self.norm1 = nn.LayerNorm(width)
        self.attention = CausalSelfAttention(width, heads, dropout)
        self.norm2 = nn.LayerNorm(width)
        self.mlp = nn.Sequential(
            nn.Linear(width, 4 * width), nn.GELU(), nn.Linear(4 * width, width)
        )
        self.drop = nn.Dropout(dropout)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        h = h + self.drop(self.attention(self.norm1(h)))
        return h + self.drop(self.mlp(self.norm2(h)))


class Transformer(nn.Module):
    def __init__(
        self, vocab: int, context: int, width: int = 64, layers: int = 2, heads: int = 4,
        dropout: float = 0.0,
    ):  # fmt: skip
        super().__init__()
        if width % heads:
            raise ValueError(f"model.width ({width}) must be a multiple of model.heads ({heads})")
        self.context = context
        self.tokens = nn.Embedding(vocab, width)
        self.positions = nn.Embedding(context, width)
        self.blocks = nn.Sequential(*(Block(width, heads, dropout) for _ in range(layers)))
        self.norm = nn.LayerNorm(width)
        nn.init.normal_(self.tokens.weight, std=0.02)
        nn.init.normal_(self.positions.weight, std=0.02)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        time = ids.shape[1]
        if time > self.context:
            raise ValueError(f"sequences of {time} tokens exceed the context of {self.context}")
        h = self.tokens(ids) + self.positions(torch.arange(time, device=ids.device))
        h = self.norm(self.blocks(h))
        return h @ self.tokens.weight.T  # the head is the token embedding, tied

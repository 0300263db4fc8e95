"""Causal multi-head self-attention block (QKV projection, attention, output projection)."""

import torch
import torch.nn as nn
import torch.nn.functional as F

META = {"level": 3, "split": "train", "forbidden": ["scaled_dot_product_attention", "softmax"], "backends": ["torch", "cpp", "cuda", "triton"], "dtype": "float32"}
SHAPES = {"cpu": {"B": 2, "S": 64, "DIM": 128, "HEADS": 4}, "cuda": {"B": 16, "S": 2048, "DIM": 2048, "HEADS": 16}}
B = 2
S = 64
DIM = 128
HEADS = 4


class Model(nn.Module):
    def __init__(self, dim, heads):
        super().__init__()
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.heads = heads

    def forward(self, x):
        b, s, d = x.shape
        q, k, v = self.qkv(x).view(b, s, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        return self.proj(y.transpose(1, 2).reshape(b, s, d))


def get_inputs():
    return [torch.randn(B, S, DIM)]


def get_init_inputs():
    return [DIM, HEADS]

"""Scaled dot-product attention (multi-head, no mask)."""

import torch
import torch.nn as nn
import torch.nn.functional as F

META = {"level": 3, "split": "test", "forbidden": ["scaled_dot_product_attention", "softmax"], "backends": ["torch", "cpp", "cuda", "triton"], "dtype": "float32"}
SHAPES = {"cpu": {"B": 2, "H": 4, "S": 64, "D": 32}, "cuda": {"B": 32, "H": 32, "S": 2048, "D": 128}}
B = 2
H = 4
S = 64
D = 32


class Model(nn.Module):
    def forward(self, q, k, v):
        return F.scaled_dot_product_attention(q, k, v)


def get_inputs():
    return [torch.randn(B, H, S, D), torch.randn(B, H, S, D), torch.randn(B, H, S, D)]


def get_init_inputs():
    return []

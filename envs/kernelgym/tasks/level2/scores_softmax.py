"""Attention scores: Q K^T scaled, then softmax."""

import torch
import torch.nn as nn
import torch.nn.functional as F

META = {"level": 2, "split": "test", "forbidden": ["softmax", "bmm", "matmul", "baddbmm"], "backends": ["torch", "cpp", "cuda", "triton"], "dtype": "float32"}
SHAPES = {"cpu": {"B": 4, "S": 64, "D": 32}, "cuda": {"B": 256, "S": 1024, "D": 128}}
B = 4
S = 64
D = 32


class Model(nn.Module):
    def forward(self, q, k):
        scores = torch.bmm(q, k.transpose(1, 2)) / (q.shape[-1] ** 0.5)
        return torch.softmax(scores, dim=-1)


def get_inputs():
    return [torch.randn(B, S, D), torch.randn(B, S, D)]


def get_init_inputs():
    return []

"""Expert for level3/rmsnorm: a plain PyTorch rewrite without the forbidden ops."""

import torch
import torch.nn as nn
import torch.nn.functional as F

class ModelNew(nn.Module):
    def __init__(self, dim, eps=1e-6):
        super().__init__()
        self.weight = nn.Parameter(torch.rand(dim) + 0.5)
        self.eps = eps

    def forward(self, x):
        return x / torch.sqrt((x * x).sum(dim=-1, keepdim=True) / x.shape[-1] + self.eps) * self.weight

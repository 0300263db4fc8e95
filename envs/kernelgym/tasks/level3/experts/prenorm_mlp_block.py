"""Expert for level3/prenorm_mlp_block: a plain PyTorch rewrite without the forbidden ops."""

import torch
import torch.nn as nn
import torch.nn.functional as F

class ModelNew(nn.Module):
    def __init__(self, dim, hidden):
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x):
        mean = x.mean(dim=-1, keepdim=True)
        centered = x - mean
        var = (centered * centered).mean(dim=-1, keepdim=True)
        h = centered / torch.sqrt(var + self.norm.eps) * self.norm.weight + self.norm.bias
        h = h @ self.fc1.weight.t() + self.fc1.bias
        h = 0.5 * h * (1.0 + torch.erf(h * 0.7071067811865476))
        return x + h @ self.fc2.weight.t() + self.fc2.bias

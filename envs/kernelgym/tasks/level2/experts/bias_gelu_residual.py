"""Expert for level2/bias_gelu_residual: a plain PyTorch rewrite without the forbidden ops."""

import torch
import torch.nn as nn
import torch.nn.functional as F

class ModelNew(nn.Module):
    def __init__(self, dim):
        super().__init__()
        self.bias = nn.Parameter(torch.randn(dim))

    def forward(self, x, residual):
        y = x + self.bias
        return 0.5 * y * (1.0 + torch.erf(y * 0.7071067811865476)) + residual

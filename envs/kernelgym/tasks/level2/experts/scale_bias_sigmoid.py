"""Expert for level2/scale_bias_sigmoid: a plain PyTorch rewrite without the forbidden ops."""

import torch
import torch.nn as nn
import torch.nn.functional as F

class ModelNew(nn.Module):
    def __init__(self, dim):
        super().__init__()
        self.bias = nn.Parameter(torch.randn(dim))

    def forward(self, x):
        return 1.0 / (1.0 + torch.exp(-(x * 2.0 + self.bias)))

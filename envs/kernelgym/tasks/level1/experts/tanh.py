"""Expert for level1/tanh: a plain PyTorch rewrite without the forbidden ops."""

import torch
import torch.nn as nn
import torch.nn.functional as F

class ModelNew(nn.Module):
    def forward(self, x):
        return 1.0 - 2.0 / (torch.exp(2.0 * x) + 1.0)

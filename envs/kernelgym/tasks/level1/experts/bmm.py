"""Expert for level1/bmm: a plain PyTorch rewrite without the forbidden ops."""

import torch
import torch.nn as nn
import torch.nn.functional as F

class ModelNew(nn.Module):
    def forward(self, a, b):
        return (a.unsqueeze(3) * b.unsqueeze(1)).sum(dim=2)

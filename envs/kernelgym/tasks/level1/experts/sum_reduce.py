"""Expert for level1/sum_reduce: a plain PyTorch rewrite without the forbidden ops."""

import torch
import torch.nn as nn
import torch.nn.functional as F

class ModelNew(nn.Module):
    def forward(self, x):
        return x.double().cumsum(dim=1)[:, -1:, :].to(x.dtype)

"""Expert for level1/avg_pool2d: a plain PyTorch rewrite without the forbidden ops."""

import torch
import torch.nn as nn
import torch.nn.functional as F

class ModelNew(nn.Module):
    def forward(self, x):
        n, c, h, w = x.shape
        return x.reshape(n, c, h // 2, 2, w // 2, 2).sum(dim=(3, 5)) * 0.25

"""Expert for level2/logsumexp_relu: a plain PyTorch rewrite without the forbidden ops."""

import torch
import torch.nn as nn
import torch.nn.functional as F

class ModelNew(nn.Module):
    def forward(self, x):
        m = x.amax(dim=1, keepdim=True)
        out = m + torch.log(torch.exp(x - m).sum(dim=1, keepdim=True))
        return out.clamp_min(0.0)

"""Linear layer, then sum over the output features."""

import torch
import torch.nn as nn
import torch.nn.functional as F

META = {"level": 2, "split": "train", "forbidden": ["linear", "addmm"], "backends": ["torch", "cpp", "cuda", "triton"], "dtype": "float32"}
SHAPES = {"cpu": {"BATCH": 32, "IN": 256, "OUT": 512}, "cuda": {"BATCH": 4096, "IN": 8192, "OUT": 8192}}
BATCH = 32
IN = 256
OUT = 512


class Model(nn.Module):
    def __init__(self, in_features, out_features):
        super().__init__()
        self.fc = nn.Linear(in_features, out_features)

    def forward(self, x):
        return self.fc(x).sum(dim=1, keepdim=True)


def get_inputs():
    return [torch.rand(BATCH, IN)]


def get_init_inputs():
    return [IN, OUT]

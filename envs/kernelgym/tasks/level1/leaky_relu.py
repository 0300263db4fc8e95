"""LeakyReLU with slope 0.01."""

import torch
import torch.nn as nn
import torch.nn.functional as F

META = {"level": 1, "split": "train", "forbidden": ["leaky_relu"], "backends": ["torch", "cpp", "cuda", "triton"], "dtype": "float32"}
SHAPES = {"cpu": {"BATCH": 16, "DIM": 4096}, "cuda": {"BATCH": 4096, "DIM": 65536}}
BATCH = 16
DIM = 4096


class Model(nn.Module):
    def __init__(self, negative_slope: float = 0.01):
        super().__init__()
        self.negative_slope = negative_slope

    def forward(self, x):
        return F.leaky_relu(x, negative_slope=self.negative_slope)


def get_inputs():
    return [torch.randn(BATCH, DIM)]


def get_init_inputs():
    return [0.01]

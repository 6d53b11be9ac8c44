"""The lab net in functional style: parameters held directly, every layer an F.* call."""
import torch
import torch.nn.functional as F
from torch import nn


def _param(*shape):
    return nn.Parameter(torch.randn(*shape) * 0.05)


class Model(nn.Module):
    def __init__(self):
        super().__init__()
        self.w1, self.b1 = _param(6, 3, 5, 5), _param(6)
        self.w2, self.b2 = _param(16, 6, 5, 5), _param(16)
        self.w3, self.b3 = _param(120, 400), _param(120)
        self.w4, self.b4 = _param(84, 120), _param(84)
        self.w5, self.b5 = _param(10, 84), _param(10)

    def forward(self, x):
        x = F.max_pool2d(F.relu(F.conv2d(x, self.w1, self.b1)), 2)
        x = F.max_pool2d(F.relu(F.conv2d(x, self.w2, self.b2)), 2)
        x = x.reshape(x.size(0), -1)
        x = F.relu(F.linear(x, self.w3, self.b3))
        x = F.relu(F.linear(x, self.w4, self.b4))
        return F.linear(x, self.w5, self.b5)

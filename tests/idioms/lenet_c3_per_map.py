"""LeNet-5 with C3 as the paper draws it: one small convolution per C3 map, over the S2
maps its row of the connection table lists (16 nn.Conv2d in an nn.ModuleList).

The same 1,516 parameters and the same function as the reference's single masked
convolution; only slower to train.
"""
import torch
import torch.nn.functional as F
from torch import nn

C3_TABLE = (
    (0, 1, 2), (1, 2, 3), (2, 3, 4), (3, 4, 5), (4, 5, 0), (5, 0, 1),
    (0, 1, 2, 3), (1, 2, 3, 4), (2, 3, 4, 5), (3, 4, 5, 0), (4, 5, 0, 1), (5, 0, 1, 2),
    (0, 1, 3, 4), (1, 2, 4, 5), (0, 2, 3, 5),
    (0, 1, 2, 3, 4, 5),
)


class Subsample(nn.Module):
    def __init__(self, channels):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))

    def forward(self, x):
        x = F.avg_pool2d(x, 2)
        return x * self.weight.view(1, -1, 1, 1) + self.bias.view(1, -1, 1, 1)


class C3(nn.Module):
    def __init__(self):
        super().__init__()
        self.maps = nn.ModuleList(nn.Conv2d(len(inputs), 1, 5) for inputs in C3_TABLE)

    def forward(self, x):
        return torch.cat([conv(x[:, list(inputs)]) for conv, inputs in zip(self.maps, C3_TABLE)],
                         dim=1)


class Model(nn.Module):
    def __init__(self):
        super().__init__()
        self.c1 = nn.Conv2d(1, 6, 5)
        self.s2 = Subsample(6)
        self.c3 = C3()
        self.s4 = Subsample(16)
        self.c5 = nn.Conv2d(16, 120, 5)
        self.f6 = nn.Linear(120, 84)
        self.output = nn.Linear(84, 10)

    def forward(self, x):
        x = self.s2(torch.tanh(self.c1(x)))
        x = self.s4(torch.tanh(self.c3(x)))
        x = torch.tanh(self.c5(x))
        return self.output(torch.tanh(self.f6(x.flatten(1))))

"""Reference solution: LeNet-5 (LeCun et al., 1998) for 32x32 MNIST digits.

    layer  what                                output     parameters
    C1     conv 5x5, 6 maps                    6x28x28    (5*5*1 + 1)*6   = 156
    S2     trainable 2x2 subsampling           6x14x14    (1 + 1)*6       = 12
    C3     conv 5x5, 16 maps, partial table    16x10x10   1,516 (see C3 below)
    S4     trainable 2x2 subsampling           16x5x5     (1 + 1)*16      = 32
    C5     conv 5x5, 120 maps                  120x1x1    (5*5*16 + 1)*120 = 48,120
    F6     fully connected 120 -> 84           84         (120 + 1)*84    = 10,164
    output fully connected 84 -> 10            10         (84 + 1)*10     = 850
"""
import torch
import torch.nn.functional as F
from torch import nn

# Which S2 maps each C3 map reads (LeCun 1998, Table I): six maps see 3 neighbours,
# nine see 4, and the last sees all 6. Breaking symmetry this way forces the maps
# to learn different features, and it costs fewer parameters than full connection.
C3_TABLE = (
    (0, 1, 2), (1, 2, 3), (2, 3, 4), (3, 4, 5), (4, 5, 0), (5, 0, 1),
    (0, 1, 2, 3), (1, 2, 3, 4), (2, 3, 4, 5), (3, 4, 5, 0), (4, 5, 0, 1), (5, 0, 1, 2),
    (0, 1, 3, 4), (1, 2, 4, 5), (0, 2, 3, 5),
    (0, 1, 2, 3, 4, 5),
)


class Subsample(nn.Module):
    """S2/S4: average each 2x2 block, then one trainable scale and bias per map (2 per map)."""

    def __init__(self, channels):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))

    def forward(self, x):
        x = F.avg_pool2d(x, kernel_size=2, stride=2)
        return x * self.weight.view(1, -1, 1, 1) + self.bias.view(1, -1, 1, 1)


class C3(nn.Module):
    """16 small convolutions, one per output map, each over the S2 maps the table lists.

    Parameters: 6*(3*25 + 1) + 9*(4*25 + 1) + 1*(6*25 + 1) = 456 + 909 + 151 = 1,516.
    """

    def __init__(self, table=C3_TABLE):
        super().__init__()
        self.table = table
        self.maps = nn.ModuleList(nn.Conv2d(len(inputs), 1, kernel_size=5) for inputs in table)

    def forward(self, x):
        outputs = [conv(x[:, list(inputs)]) for conv, inputs in zip(self.maps, self.table)]
        return torch.cat(outputs, dim=1)


class Model(nn.Module):
    def __init__(self):
        super().__init__()
        self.c1 = nn.Conv2d(1, 6, kernel_size=5)
        self.s2 = Subsample(6)
        self.c3 = C3()
        self.s4 = Subsample(16)
        self.c5 = nn.Conv2d(16, 120, kernel_size=5)
        self.f6 = nn.Linear(120, 84)
        self.output = nn.Linear(84, 10)

    def forward(self, x):
        x = self.s2(torch.tanh(self.c1(x)))
        x = self.s4(torch.tanh(self.c3(x)))
        x = torch.tanh(self.c5(x))
        x = torch.flatten(x, 1)          # 120x1x1 -> 120
        x = torch.tanh(self.f6(x))
        return self.output(x)

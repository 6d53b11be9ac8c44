"""LeNet-5 (LeCun et al., 1998): fill in the TODOs, then run `grade check` in this folder.

MNIST digits are 28x28; the grader pads them to 32x32, as in the paper.

    layer  what                                output     parameters
    C1     conv 5x5, 6 maps, then tanh         6x28x28    (5*5*1 + 1)*6 = 156
    S2     trainable 2x2 subsampling           6x14x14    (1 + 1)*6 = 12
    C3     conv 5x5, 16 maps (partial table),  16x10x10   1,516
           then tanh
    S4     trainable 2x2 subsampling           16x5x5     (1 + 1)*16 = 32
    C5     conv 5x5, 120 maps, then tanh       120x1x1    (5*5*16 + 1)*120 = 48,120
    F6     fully connected 120 -> 84, tanh     84         (120 + 1)*84 = 10,164
    output fully connected 84 -> 10            10         (84 + 1)*10 = 850
"""
import torch
import torch.nn.functional as F
from torch import nn

# Which S2 maps each C3 map reads (the paper's Table I).
C3_TABLE = (
    (0, 1, 2), (1, 2, 3), (2, 3, 4), (3, 4, 5), (4, 5, 0), (5, 0, 1),
    (0, 1, 2, 3), (1, 2, 3, 4), (2, 3, 4, 5), (3, 4, 5, 0), (4, 5, 0, 1), (5, 0, 1, 2),
    (0, 1, 3, 4), (1, 2, 4, 5), (0, 2, 3, 5),
    (0, 1, 2, 3, 4, 5),
)


class Subsample(nn.Module):
    """S2/S4: average each 2x2 block, then scale and shift each map (2 parameters per map)."""

    def __init__(self, channels):
        super().__init__()
        # TODO: one trainable weight and one trainable bias per map (nn.Parameter)
        raise NotImplementedError("create Subsample's parameters")

    def forward(self, x):
        # TODO: 2x2 average pooling, then x * weight + bias, per map
        raise NotImplementedError("write Subsample.forward")


class C3(nn.Module):
    """One small 5x5 convolution per output map, over the S2 maps C3_TABLE lists."""

    def __init__(self, table=C3_TABLE):
        super().__init__()
        # TODO: an nn.ModuleList with one nn.Conv2d(len(inputs), 1, 5) per entry of the table
        raise NotImplementedError("create C3's convolutions")

    def forward(self, x):
        # TODO: run each convolution on its input maps and concatenate the 16 results
        raise NotImplementedError("write C3.forward")


class Model(nn.Module):
    def __init__(self):
        super().__init__()
        # TODO: self.c1, self.s2, self.c3, self.s4, self.c5, self.f6, self.output
        raise NotImplementedError("create the layers in Model.__init__")

    def forward(self, x):
        # TODO: C1 -> tanh -> S2 -> C3 -> tanh -> S4 -> C5 -> tanh -> flatten -> F6 -> tanh -> output
        raise NotImplementedError("write Model.forward")

# %% [markdown]
# # LeNet-5 on MNIST
#
# LeNet-5 (LeCun et al., 1998) was the first convolutional network to read handwritten digits
# well enough for real use. MNIST digits are 28x28; the grader pads them to 32x32, as in the paper.
#
# | layer | what | output | parameters |
# |---|---|---|---|
# | C1 | 5x5 convolution, 6 maps, then tanh | 6x28x28 | `(5*5*1 + 1)*6 = 156` |
# | S2 | trainable 2x2 subsampling | 6x14x14 | `(1 + 1)*6 = 12` |
# | C3 | 5x5 convolution, 16 maps over a partial connection table, then tanh | 16x10x10 | 1,516 |
# | S4 | trainable 2x2 subsampling | 16x5x5 | `(1 + 1)*16 = 32` |
# | C5 | 5x5 convolution, 120 maps, then tanh | 120x1x1 | `(5*5*16 + 1)*120 = 48,120` |
# | F6 | fully connected 120 -> 84, then tanh | 84 | `(120 + 1)*84 = 10,164` |
# | output | fully connected 84 -> 10 | 10 | `(84 + 1)*10 = 850` |
#
# A subsampling layer averages each 2x2 block and then multiplies by one trainable weight and adds
# one trainable bias per map. C3 does not connect every map to every S2 map: the table below says
# which S2 maps each C3 map reads. That breaks the symmetry between maps and needs fewer
# parameters: `6*(3*25 + 1) + 9*(4*25 + 1) + 1*(6*25 + 1) = 1,516` instead of 2,416.
# The grader trains your `Model` itself; do not write a training loop here.

# %%
import torch
import torch.nn.functional as F
from torch import nn

# Which S2 maps each C3 map reads (the paper's Table I): six maps read 3 neighbouring maps,
# nine read 4, and the last reads all 6.
C3_TABLE = (
    (0, 1, 2), (1, 2, 3), (2, 3, 4), (3, 4, 5), (4, 5, 0), (5, 0, 1),
    (0, 1, 2, 3), (1, 2, 3, 4), (2, 3, 4, 5), (3, 4, 5, 0), (4, 5, 0, 1), (5, 0, 1, 2),
    (0, 1, 3, 4), (1, 2, 4, 5), (0, 2, 3, 5),
    (0, 1, 2, 3, 4, 5),
)


# %%
class Subsample(nn.Module):
    """S2 and S4: average each 2x2 block, then scale and shift each map (2 parameters per map)."""

    def __init__(self, channels):
        super().__init__()
        # One trainable weight and one trainable bias per map (nn.Parameter).
        # YOUR CODE HERE
        raise NotImplementedError()

    def forward(self, x):
        # 2x2 average pooling with stride 2, then x * weight + bias for each map.
        # YOUR CODE HERE
        raise NotImplementedError()


# %%
class C3(nn.Module):
    """One 5x5 convolution whose kernel is zero wherever C3_TABLE has no connection.

    Only the connected kernel values are parameters, so the count is LeNet-5's 1,516,
    not a full convolution's 2,416. Sixteen small convolutions, one per map, compute
    the same thing, but on a CPU the whole network then trains about three times slower.
    """

    def __init__(self, table=C3_TABLE, in_maps=6, size=5):
        super().__init__()
        # links[m, i] is True (for every kernel position) where map m reads S2 map i.
        links = torch.zeros(len(table), in_maps, size, size, dtype=torch.bool)
        for m, inputs in enumerate(table):
            links[m, list(inputs)] = True
        self.register_buffer("links", links, persistent=False)
        # self.weight: one trainable value per True in links; self.bias: one per map. Start
        # them as nn.Conv2d does: uniform in +-1/sqrt(fan_in), fan_in = 25 * maps read.
        # YOUR CODE HERE
        raise NotImplementedError()

    def forward(self, x):
        # Build the full 16x6x5x5 kernel: zeros on the weights' device (self.weight.new_zeros),
        # the weights written where links is True (in order), then convolve with F.conv2d.
        # YOUR CODE HERE
        raise NotImplementedError()


# %%
class Model(nn.Module):
    def __init__(self):
        super().__init__()
        # Create self.c1, self.s2, self.c3, self.s4, self.c5, self.f6 and self.output.
        # YOUR CODE HERE
        raise NotImplementedError()

    def forward(self, x):
        # C1 -> tanh -> S2 -> C3 -> tanh -> S4 -> C5 -> tanh -> flatten -> F6 -> tanh -> output
        # YOUR CODE HERE
        raise NotImplementedError()

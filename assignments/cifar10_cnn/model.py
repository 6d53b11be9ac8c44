# %% [markdown]
# # CIFAR-10: the lab CNN
#
# Build the network from the lab, layer by layer (C x H x W after each step):
#
# | layer | what | output | parameters |
# |---|---|---|---|
# | conv1 | 5x5 convolution, 6 filters, then ReLU | 6x28x28 | `(5*5*3 + 1)*6 = 456` |
# | pool | 2x2 max pooling, stride 2 | 6x14x14 | 0 |
# | conv2 | 5x5 convolution, 16 filters, then ReLU | 16x10x10 | `(5*5*6 + 1)*16 = 2,416` |
# | pool | 2x2 max pooling, stride 2 | 16x5x5 | 0 |
# | flatten | | 400 | 0 |
# | fc1 | 400 -> 120, then ReLU | 120 | `(400 + 1)*120 = 48,120` |
# | fc2 | 120 -> 84, then ReLU | 84 | `(120 + 1)*84 = 10,164` |
# | fc3 | 84 -> 10 class scores (no activation) | 10 | `(84 + 1)*10 = 850` |
#
# Every size follows from O = (I - K + 2P)/S + 1, e.g. conv1: `(32 - 5 + 2*0)/1 + 1 = 28`.
# The grader trains your `Model` itself; do not write a training loop here.

# %%
import torch
import torch.nn.functional as F
from torch import nn


# %%
class Model(nn.Module):
    def __init__(self):
        super().__init__()
        # Create self.conv1, self.pool, self.conv2, self.fc1, self.fc2 and self.fc3.
        # YOUR CODE HERE
        raise NotImplementedError()

    def forward(self, x):
        # conv1 -> relu -> pool -> conv2 -> relu -> pool -> flatten -> fc1 -> relu -> fc2 -> relu -> fc3
        # YOUR CODE HERE
        raise NotImplementedError()

# %% [markdown]
# # CIFAR-10: a VGG-style network with batch normalisation and dropout
#
# VGG networks stack small 3x3 convolutions with padding 1, which keep the size of the feature
# map, and halve it with 2x2 max pooling after every two of them. This one has three such
# blocks (32, 64 and 128 filters), so a 32x32 image becomes 16x16, 8x8 and finally 4x4, and
# `128*4*4 = 2048` values reach the dense layers.
#
# Two additions from the lecture keep a network this size from memorising the training set:
#
# - **Batch normalisation** (`nn.BatchNorm2d(C)`) after each convolution's ReLU: it scales every
#   channel to mean 0 and variance 1 over the batch, then applies a learned scale and shift (2
#   parameters per channel). It also keeps a running mean and variance to use at test time;
#   those are statistics, stored as buffers, not parameters: the optimizer never touches them.
# - **Dropout** between the dense layers (not after convolutions): during training it zeroes
#   each value with probability p (0.5 before fc1, 0.2 before fc2) and scales the rest up by
#   1/(1 - p); at test time it does nothing. `nn.Dropout` knows which one it is from
#   `model.train()` / `model.eval()`. The functional `F.dropout(x, p=0.5)` does not: its
#   `training` argument defaults to True, so it keeps dropping at test time unless you pass
#   `training=self.training`.
#
# | layer | what | output | parameters |
# |---|---|---|---|
# | block1 | conv 3->32, ReLU, batch norm, conv 32->32, ReLU, batch norm, 2x2 max pool | 32x16x16 | 896 + 64 + 9,248 + 64 |
# | block2 | conv 32->64, ReLU, batch norm, conv 64->64, ReLU, batch norm, 2x2 max pool | 64x8x8 | 18,496 + 128 + 36,928 + 128 |
# | block3 | conv 64->128, ReLU, batch norm, conv 128->128, ReLU, batch norm, 2x2 max pool | 128x4x4 | 73,856 + 256 + 147,584 + 256 |
# | flatten | | 2048 | 0 |
# | drop1 | dropout, p = 0.5 | 2048 | 0 |
# | fc1 | 2048 -> 1024, then ReLU | 1024 | `(2048 + 1)*1024 = 2,098,176` |
# | drop2 | dropout, p = 0.2 | 1024 | 0 |
# | fc2 | 1024 -> 10 class scores | 10 | `(1024 + 1)*10 = 10,250` |
#
# A 3x3 convolution with padding 1 keeps the size: `(I - 3 + 2*1)/1 + 1 = I`.
# The grader trains your `Model` itself; do not write a training loop here.

# %%
import torch
import torch.nn.functional as F
from torch import nn


# %%
def conv_block(c_in, c_out):
    """conv -> ReLU -> batch norm, twice (3x3 kernels, padding 1), then 2x2 max pooling."""
    # YOUR CODE HERE
    raise NotImplementedError()


# %%
class Model(nn.Module):
    def __init__(self):
        super().__init__()
        # Create self.block1, self.block2, self.block3 with conv_block, then self.drop1, self.fc1,
        # self.drop2 and self.fc2.
        # YOUR CODE HERE
        raise NotImplementedError()

    def forward(self, x):
        # block1 -> block2 -> block3 -> flatten -> drop1 -> fc1 -> relu -> drop2 -> fc2
        # YOUR CODE HERE
        raise NotImplementedError()

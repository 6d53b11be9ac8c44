# %% [markdown]
# # Fashion-MNIST: shrinking with stride instead of pooling
#
# Fashion-MNIST has the shape of MNIST (28x28 grey images, ten classes, 60,000 for training and
# 10,000 for testing), but shows clothes instead of digits: T-shirts, trousers, pullovers,
# dresses, coats, sandals, shirts, sneakers, bags and ankle boots.
#
# This network has no pooling layers. Each convolution moves its 3x3 kernel two pixels at a
# time (stride 2), which roughly halves the feature map by itself, while the number of filters
# doubles: 32, 64, 128. No padding is used, so the sizes follow O = floor((I - K + 2P)/S) + 1:
#
# | layer | what | output | parameters |
# |---|---|---|---|
# | conv1 | 3x3 convolution, stride 2, 32 filters, then ReLU | 32x13x13 | `(3*3*1 + 1)*32 = 320` |
# | conv2 | 3x3 convolution, stride 2, 64 filters, then ReLU | 64x6x6 | `(3*3*32 + 1)*64 = 18,496` |
# | conv3 | 3x3 convolution, stride 2, 128 filters, then ReLU | 128x2x2 | `(3*3*64 + 1)*128 = 73,856` |
# | flatten | | 512 | 0 |
# | fc1 | 512 -> 512, then ReLU | 512 | `(512 + 1)*512 = 262,656` |
# | fc2 | 512 -> 10 class scores (no activation) | 10 | `(512 + 1)*10 = 5,130` |
#
# conv1: `floor((28 - 3 + 2*0)/2) + 1 = 13`; conv2: `floor((13 - 3)/2) + 1 = 6`;
# conv3: floor((6 - 3)/2) + 1 = 2 (the floor drops the last row and column). So the flattened
# vector has `128*2*2 = 512` values.
# The grader trains your `Model` itself; do not write a training loop here.

# %%
import torch
import torch.nn.functional as F
from torch import nn


# %%
class Model(nn.Module):
    def __init__(self):
        super().__init__()
        # Create self.conv1, self.conv2, self.conv3, self.fc1 and self.fc2.
        ### BEGIN SOLUTION
        self.conv1 = nn.Conv2d(1, 32, kernel_size=3, stride=2)
        self.conv2 = nn.Conv2d(32, 64, kernel_size=3, stride=2)
        self.conv3 = nn.Conv2d(64, 128, kernel_size=3, stride=2)
        self.fc1 = nn.Linear(128 * 2 * 2, 512)
        self.fc2 = nn.Linear(512, 10)
        ### END SOLUTION

    def forward(self, x):
        # conv1 -> relu -> conv2 -> relu -> conv3 -> relu -> flatten -> fc1 -> relu -> fc2
        ### BEGIN SOLUTION
        x = F.relu(self.conv1(x))
        x = F.relu(self.conv2(x))
        x = F.relu(self.conv3(x))
        x = torch.flatten(x, 1)  # 128*2*2 = 512
        x = F.relu(self.fc1(x))
        return self.fc2(x)  # raw scores: CrossEntropyLoss applies the softmax
        ### END SOLUTION

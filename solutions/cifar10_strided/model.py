# %% [markdown]
# # CIFAR-10: shrinking with stride
#
# The course's CIFAR-10 network without pooling: three 3x3 convolutions that each move their
# kernel two pixels at a time (stride 2), so each one roughly halves the feature map while the
# number of filters doubles (32, 64, 128). Then two dense layers: 1024 hidden units and the ten
# class scores. No convolution is padded, so each size comes from O = floor((I - K + 2P)/S) + 1,
# and the floor matters at every step:
#
# | layer | what | output | parameters |
# |---|---|---|---|
# | conv1 | 3x3 convolution, stride 2, 32 filters, then ReLU | 32x15x15 | `(3*3*3 + 1)*32 = 896` |
# | conv2 | 3x3 convolution, stride 2, 64 filters, then ReLU | 64x7x7 | `(3*3*32 + 1)*64 = 18,496` |
# | conv3 | 3x3 convolution, stride 2, 128 filters, then ReLU | 128x3x3 | `(3*3*64 + 1)*128 = 73,856` |
# | flatten | | 1152 | 0 |
# | fc1 | 1152 -> 1024, then ReLU | 1024 | `(1152 + 1)*1024 = 1,180,672` |
# | fc2 | 1024 -> 10 class scores (no activation) | 10 | `(1024 + 1)*10 = 10,250` |
#
# conv1: `floor((32 - 3 + 2*0)/2) + 1 = floor(14.5) + 1 = 15`;
# conv2: `floor((15 - 3)/2) + 1 = 7`; conv3: `floor((7 - 3)/2) + 1 = 3`.
# So `128*3*3 = 1152` values reach fc1.
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
        self.conv1 = nn.Conv2d(3, 32, kernel_size=3, stride=2)
        self.conv2 = nn.Conv2d(32, 64, kernel_size=3, stride=2)
        self.conv3 = nn.Conv2d(64, 128, kernel_size=3, stride=2)
        self.fc1 = nn.Linear(128 * 3 * 3, 1024)
        self.fc2 = nn.Linear(1024, 10)
        ### END SOLUTION

    def forward(self, x):
        # conv1 -> relu -> conv2 -> relu -> conv3 -> relu -> flatten -> fc1 -> relu -> fc2
        ### BEGIN SOLUTION
        x = F.relu(self.conv1(x))
        x = F.relu(self.conv2(x))
        x = F.relu(self.conv3(x))
        x = torch.flatten(x, 1)  # 128*3*3 = 1152
        x = F.relu(self.fc1(x))
        return self.fc2(x)  # raw scores: CrossEntropyLoss applies the softmax
        ### END SOLUTION

"""Reference solution: the CIFAR-10 lab network.

    input 3x32x32
    conv1 5x5, 6 filters   -> 6x28x28    (32 - 5 + 2*0)/1 + 1 = 28
    pool  2x2, stride 2    -> 6x14x14
    conv2 5x5, 16 filters  -> 16x10x10   (14 - 5)/1 + 1 = 10
    pool  2x2, stride 2    -> 16x5x5
    flatten                -> 400        16*5*5
    fc1 400 -> 120, fc2 120 -> 84, fc3 84 -> 10 class scores
"""
import torch
import torch.nn.functional as F
from torch import nn


class Model(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 6, kernel_size=5)     # (5*5*3 + 1)*6 = 456 parameters
        self.pool = nn.MaxPool2d(kernel_size=2, stride=2)
        self.conv2 = nn.Conv2d(6, 16, kernel_size=5)    # (5*5*6 + 1)*16 = 2,416
        self.fc1 = nn.Linear(16 * 5 * 5, 120)           # (400 + 1)*120 = 48,120
        self.fc2 = nn.Linear(120, 84)                   # (120 + 1)*84 = 10,164
        self.fc3 = nn.Linear(84, 10)                    # (84 + 1)*10 = 850

    def forward(self, x):
        x = self.pool(F.relu(self.conv1(x)))
        x = self.pool(F.relu(self.conv2(x)))
        x = torch.flatten(x, 1)                         # keep the batch axis, flatten the rest
        x = F.relu(self.fc1(x))
        x = F.relu(self.fc2(x))
        return self.fc3(x)                              # raw scores: CrossEntropyLoss adds softmax

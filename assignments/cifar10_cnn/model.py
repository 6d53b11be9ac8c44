"""CIFAR-10 lab CNN: fill in the TODOs, then run `grade check` in this folder.

The network, layer by layer (C x H x W after each step):

    input 3x32x32
    conv1  5x5, 6 filters, then ReLU    -> 6x28x28
    pool   2x2 max pooling, stride 2    -> 6x14x14
    conv2  5x5, 16 filters, then ReLU   -> 16x10x10
    pool   2x2 max pooling, stride 2    -> 16x5x5
    flatten                             -> 400
    fc1 400 -> 120, ReLU;  fc2 120 -> 84, ReLU;  fc3 84 -> 10 (class scores, no activation)

Each size follows from O = (I - K + 2P)/S + 1.
"""
import torch
import torch.nn.functional as F
from torch import nn


class Model(nn.Module):
    def __init__(self):
        super().__init__()
        # TODO: create the layers: self.conv1, self.pool, self.conv2, self.fc1, self.fc2, self.fc3
        raise NotImplementedError("create the layers in Model.__init__")

    def forward(self, x):
        # TODO: conv1 -> relu -> pool -> conv2 -> relu -> pool -> flatten -> fc1 -> fc2 -> fc3
        raise NotImplementedError("write Model.forward")

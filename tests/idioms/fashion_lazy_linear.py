"""The strided Fashion-MNIST net with nn.LazyLinear, so the flatten size need not be worked
out by hand: fc1's weight exists only after a first forward pass (PyTorch's docs say to run
one on a dummy batch)."""
import torch.nn.functional as F
from torch import nn


class Model(nn.Module):
    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 32, 3, 2), nn.ReLU(),
            nn.Conv2d(32, 64, 3, 2), nn.ReLU(),
            nn.Conv2d(64, 128, 3, 2), nn.ReLU(),
            nn.Flatten())
        self.fc1 = nn.LazyLinear(512)
        self.fc2 = nn.Linear(512, 10)

    def forward(self, x):
        return self.fc2(F.relu(self.fc1(self.features(x))))

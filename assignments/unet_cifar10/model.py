# %% [markdown]
# # CIFAR-10 with a small U-Net
#
# U-Net (2015) was designed for segmentation: it labels every pixel. Its left half, the
# encoder, convolves and pools, so the maps get smaller and the features more abstract. Its right
# half, the decoder, upsamples them back with transposed convolutions. Skip connections carry
# each encoder map across to the decoder level of the same size and concatenate it there, so the
# fine detail lost by pooling comes back. Here the decoder's last map feeds a small classifier.
#
# Every convolution is 5x5 with padding 2 and stride 1, which keeps the size:
# `O = (I - 5 + 2*2)/1 + 1 = I`. A transposed convolution that upsamples by N uses K = 2N, S = N,
# P = N/2: `O = (I - 1)S - 2P + K = (I - 1)N - N + 2N = N*I`.
#
# | layer | what | output | parameters |
# |---|---|---|---|
# | enc1 | 5x5 convolution, padding 2, 8 filters, then ReLU | 8x32x32 | `(5*5*3 + 1)*8 = 608` |
# | pool1 | 2x2 max pooling, stride 2 | 8x16x16 | 0 |
# | enc2 | 5x5 convolution, padding 2, 16 filters, then ReLU | 16x16x16 | `(5*5*8 + 1)*16 = 3,216` |
# | pool2 | 4x4 max pooling, stride 4 | 16x4x4 | 0 |
# | bottom | 5x5 convolution, padding 2, 32 filters, then ReLU | 32x4x4 | `(5*5*16 + 1)*32 = 12,832` |
# | up2 | transposed convolution, x4: K=8, S=4, P=2, 16 filters | 16x16x16 | `(8*8*32 + 1)*16 = 32,784` |
# | dec2 | 5x5 convolution, padding 2, 16 filters, then ReLU, on [up2, enc2] (32 maps) | 16x16x16 | `(5*5*32 + 1)*16 = 12,816` |
# | up1 | transposed convolution, x2: K=4, S=2, P=1, 8 filters | 8x32x32 | `(4*4*16 + 1)*8 = 2,056` |
# | dec1 | 5x5 convolution, padding 2, 8 filters, then ReLU, on [up1, enc1] (16 maps) | 8x32x32 | `(5*5*16 + 1)*8 = 3,208` |
# | pool3 | 4x4 max pooling, stride 4 | 8x8x8 | 0 |
# | flatten | | 512 | 0 |
# | fc | 512 -> 10 class scores (no activation) | 10 | `(512 + 1)*10 = 5,130` |
#
# Total: 72,650 parameters. up2: `O = (4 - 1)*4 - 2*2 + 8 = 16`; up1: `O = (16 - 1)*2 - 2*1 + 4 = 32`.
# Concatenate along the channel axis (`torch.cat([up, skip], dim=1)`): the maps must have the same
# height and width, and the next convolution's in_channels is the sum of both channel counts.
# The grader trains your `Model` itself; do not write a training loop here.

# %%
import torch
import torch.nn.functional as F
from torch import nn


# %%
class Model(nn.Module):
    def __init__(self):
        super().__init__()
        # Create self.enc1, self.enc2, self.bottom, self.up2, self.dec2, self.up1, self.dec1 and
        # self.fc (pooling can be functional: F.max_pool2d).
        # YOUR CODE HERE
        raise NotImplementedError()

    def forward(self, x):
        # encoder: enc1 -> relu -> pool 2 -> enc2 -> relu -> pool 4 -> bottom -> relu
        # decoder: up2 -> cat with enc2's map -> dec2 -> relu -> up1 -> cat with enc1's map -> dec1 -> relu
        # classifier: pool 4 -> flatten -> fc
        # YOUR CODE HERE
        raise NotImplementedError()

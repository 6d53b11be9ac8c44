# %% [markdown]
# # The data pipeline: from image files to the tensors a CNN reads
#
# Images are stored the way cameras and image libraries like them: height x width x channels
# (HWC), one byte per value (0 to 255). PyTorch's convolutions want the channels first
# (C x H x W, and N x C x H x W for a batch) and floating-point values in a small range. Every
# course notebook bridges the gap with two torchvision transforms:
#
# - `transforms.ToTensor()` turns an HWC image of bytes into a CHW float tensor with values
#   from 0.0 to 1.0 (each byte divided by 255);
# - `transforms.Normalize((0.5, 0.5, 0.5), (0.5, 0.5, 0.5))` computes (x - mean) / std for
#   each channel; with mean 0.5 and std 0.5 that maps [0, 1] to [-1, 1].
#
# Here you write both yourself, then two conversions every practitioner meets: a whole batch
# stored as N x H x W x C (CIFAR-10's `dataset.data` array) turned into N x C x H x W, and
# OpenCV's colour order. `cv2.imread` returns channels in the order blue, green, red (BGR);
# Matplotlib, PIL and torchvision expect red, green, blue (RGB). Plotting an OpenCV image
# without converting it swaps red and blue.
#
# Last, the transforms for training and testing. Data augmentation shows the network slightly
# different versions of each training image (here: a random 32x32 crop of the image padded by 4
# pixels, and a horizontal flip half of the time), so it learns what does not change when an
# object moves or is mirrored. The test set is never augmented: test accuracy must measure the
# model on the real images, the same way every time. (One of the course's notebooks passes its
# training transforms to the test set too; do not copy that.)
#
# Rules: write `to_tensor` and `normalize` with tensor operations (`permute`, `/`, `-`), not with
# torchvision; `build_transforms` uses torchvision's transforms.

# %%
import numpy as np
import torch
from torchvision import transforms

# %% [markdown]
# ## 1. ToTensor and Normalize by hand
#
# `image` is a numpy array of shape (H, W, C) with dtype uint8. Move the channel axis to the
# front with `permute` (a `reshape` to (C, H, W) would keep the bytes in their old order and
# scramble the picture), convert to float and divide by 255.

# %%
def to_tensor(image):
    """(H, W, C) uint8 numpy image -> (C, H, W) float32 tensor with values in [0, 1]."""
    ### BEGIN SOLUTION
    return torch.from_numpy(image).permute(2, 0, 1).float() / 255.0
    ### END SOLUTION


# %% [markdown]
# `mean` and `std` hold one number per channel. A tensor of shape (C,) lines up with the *last*
# axis of a (C, H, W) image, which is the width; reshape them to (C, 1, 1) so that each channel
# gets its own.

# %%
def normalize(x, mean, std):
    """(x - mean) / std for each channel of a (C, H, W) tensor."""
    ### BEGIN SOLUTION
    mean = torch.as_tensor(mean, dtype=x.dtype).view(-1, 1, 1)
    std = torch.as_tensor(std, dtype=x.dtype).view(-1, 1, 1)
    return (x - mean) / std
    ### END SOLUTION


# %% [markdown]
# ## 2. Axes and colour order
#
# `images` is a numpy batch (N, H, W, C), as CIFAR-10's `dataset.data` holds it. Return a
# tensor (N, C, H, W) with the same values (and dtype): only the axes move.

# %%
def nhwc_to_nchw(images):
    """(N, H, W, C) numpy batch -> (N, C, H, W) tensor with the same values."""
    ### BEGIN SOLUTION
    return torch.from_numpy(np.ascontiguousarray(images.transpose(0, 3, 1, 2)))
    ### END SOLUTION


# %% [markdown]
# OpenCV's images are (H, W, C) with the channels in B, G, R order. Reverse the last axis,
# `[..., ::-1]`, which works for one image and for a batch (N, H, W, C) alike.

# %%
def bgr_to_rgb(image):
    """An OpenCV image (or batch) with its channel order reversed: BGR -> RGB."""
    ### BEGIN SOLUTION
    return image[..., ::-1].copy()
    ### END SOLUTION


# %% [markdown]
# ## 3. Transforms for training and for testing
#
# Return a `transforms.Compose`, in this order: for training only `RandomCrop(32, padding=4)`
# and `RandomHorizontalFlip()`; then, for both, `ToTensor()` and
# `Normalize((0.5, 0.5, 0.5), (0.5, 0.5, 0.5))`.

# %%
def build_transforms(train):
    """torchvision transforms for CIFAR-10: augmentation when `train` is True, then the
    same ToTensor and Normalize for training and testing."""
    ### BEGIN SOLUTION
    steps = [transforms.RandomCrop(32, padding=4), transforms.RandomHorizontalFlip()] if train else []
    steps += [transforms.ToTensor(), transforms.Normalize((0.5, 0.5, 0.5), (0.5, 0.5, 0.5))]
    return transforms.Compose(steps)
    ### END SOLUTION

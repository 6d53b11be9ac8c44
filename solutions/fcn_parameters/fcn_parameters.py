# %% [markdown]
# # Why fully connected networks struggle with images
#
# A fully connected layer (`nn.Linear`) connects every input to every output. To feed it an image
# you first flatten the image into one long vector, and that costs twice:
#
# 1. **Parameters explode.** A 28x28 grey image is 784 numbers; a first layer of 512 neurons
#    needs 784 * 512 weights + 512 biases = 401,920 parameters. A 224x224 colour image is
#    224 * 224 * 3 = 150,528 numbers, and the same layer needs 150,528 * 512 + 512 = 77,070,848:
#    about 77 million parameters in a single layer.
# 2. **Neighbourhoods disappear.** After flattening, the pixel below (r, c) is `width` positions
#    away from it in the vector. The layer gets a list of independent numbers and has no idea
#    which of them were next to each other in the picture.
#
# A convolution avoids both: a 5x5 kernel looks at 25 neighbouring pixels and is reused at every
# position. 64 such kernels on a grey image have 5 * 5 * 64 = 1,600 weights, while even a tiny
# fully connected layer from 784 pixels to 10 classes already has 784 * 10 = 7,840.

# %%
import torch

# %% [markdown]
# ## 1. Counting parameters
#
# Count what training will change: the parameters with `requires_grad=True`. A frozen layer
# (`requires_grad=False`) does not count. (The grader hands you models whose weights live on
# PyTorch's "meta" device: they have shapes but no values, so even the 77-million-parameter layer
# costs no memory. `numel()` works as usual.)

# %%
def count_parameters(model):
    """Number of trainable parameters (requires_grad=True) of an nn.Module, as an int."""
    ### BEGIN SOLUTION
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
    ### END SOLUTION


# %% [markdown]
# ## 2. The formulas behind the counts
#
# - Linear layer: one weight per (input, output) pair, plus one bias per output:
#   n_in * n_out + n_out = (n_in + 1) * n_out.
# - Convolution: each of the C_out filters has K * K * C_in weights, plus one bias:
#   (K * K * C_in + 1) * C_out. It does not depend on the image size at all.

# %%
def linear_params(n_in, n_out, bias=True):
    """Parameters of nn.Linear(n_in, n_out, bias=bias)."""
    ### BEGIN SOLUTION
    return n_in * n_out + (n_out if bias else 0)
    ### END SOLUTION


def conv_params(kernel_size, in_channels, out_channels, bias=True):
    """Parameters of nn.Conv2d(in_channels, out_channels, kernel_size, bias=bias)."""
    ### BEGIN SOLUTION
    weights = kernel_size * kernel_size * in_channels * out_channels
    return weights + (out_channels if bias else 0)
    ### END SOLUTION


# %% [markdown]
# ## 3. What flattening does to an image
#
# `flatten_images` turns a batch (N, C, H, W) into (N, C * H * W): one row per image, the layout
# `nn.Linear` needs. Keep the batch dimension: flattening the whole batch into one vector
# mixes images together.
#
# `flat_position` says where pixel (row, col) of a one-channel image of the given width lands
# in the flattened vector (rows are laid out one after another). `patch_positions` lists where
# the size x size patch whose top-left corner is (row, col) lands: for a 3x3 patch in a
# 28-wide image the nine neighbours are spread over 2 * 28 + 3 = 59 positions.

# %%
def flatten_images(x):
    """(N, C, H, W) -> (N, C*H*W): flatten every image of the batch into one row."""
    ### BEGIN SOLUTION
    return x.reshape(x.shape[0], -1)
    ### END SOLUTION


def flat_position(row, col, width):
    """Index of pixel (row, col) in the flattened vector of a one-channel image."""
    ### BEGIN SOLUTION
    return row * width + col
    ### END SOLUTION


def patch_positions(row, col, width, size=3):
    """Flattened indices of the size x size patch with top-left corner (row, col), row by row."""
    ### BEGIN SOLUTION
    return [flat_position(row + i, col + j, width) for i in range(size) for j in range(size)]
    ### END SOLUTION

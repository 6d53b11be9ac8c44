# %% [markdown]
# # Convolution arithmetic, from scratch
#
# A convolution layer slides a small kernel over an image. At every position it multiplies the
# kernel with the patch under it, element by element, and adds the products up: one number of the
# output feature map. PyTorch's `nn.Conv2d` does exactly this (strictly speaking a
# cross-correlation: the kernel is not flipped). Here you write it yourself, and the size
# arithmetic that goes with it.
#
# Rules: use plain tensor operations (indexing, slicing, `*`, `.sum()`, `torch.nn.functional.pad`).
# `torch.nn.functional.conv2d`, `nn.Conv2d` and friends are off limits; the grader notices them.

# %%
import torch
import torch.nn.functional as F

# %% [markdown]
# ## 1. Output sizes
#
# An input of side I, a kernel of side K, padding P on every border and stride S give an output
# of side O = floor((I - K + 2P) / S) + 1. For a 32x32 image and a 5x5 kernel that is 28; after
# 2x2 pooling (14x14) the next 5x5 kernel gives 10. Sizes are whole numbers: return an `int`.

# %%
def conv_output_size(I, K, P=0, S=1):
    """Side length of a convolution's output: floor((I - K + 2P) / S) + 1."""
    # YOUR CODE HERE
    raise NotImplementedError()


# %% [markdown]
# Images and kernels need not be square. For an input of H x W, a kernel of FH x FW, padding P
# and stride S, each axis has its own size: OH = (H + 2P - FH)/S + 1 and OW = (W + 2P - FW)/S + 1
# (floored when S does not divide). Return both, as a tuple (OH, OW).

# %%
def conv_output_shape(H, W, FH, FW, P=0, S=1):
    """(OH, OW) of a convolution of an H x W input with an FH x FW kernel."""
    # YOUR CODE HERE
    raise NotImplementedError()


# %% [markdown]
# Three paddings have names. With stride 1 and an odd kernel size K over N inputs:
#
# | mode | padding P | output length |
# |---|---|---|
# | valid | 0 | N - K + 1 (the usual choice) |
# | same | (K - 1) / 2 | N (the usual choice) |
# | full | K - 1 | N + K - 1 (every overlap, even a single pixel; rare) |

# %%
def output_length(N, K, mode):
    """Output length for mode 'valid', 'same' or 'full' (stride 1, odd K)."""
    # Pick the padding for the mode, then reuse conv_output_size.
    # YOUR CODE HERE
    raise NotImplementedError()


# %% [markdown]
# Without padding every 3x3 convolution takes 2 off each side: a 9x9 image becomes 7x7, then
# 5x5, 3x3 and finally 1x1.

# %%
def repeated_sizes(N, K, times):
    """Side lengths after applying a KxK convolution (no padding, stride 1) `times` times."""
    # YOUR CODE HERE
    raise NotImplementedError()


# %% [markdown]
# ## 2. conv2d
#
# `x` is a batch of images, shape (N, C_in, H, W). `weight` holds C_out filters, shape
# (C_out, C_in, KH, KW): each filter is as deep as the input has channels, its products are summed
# over all channels, and each filter makes one output channel. So many filters give a feature
# map with many channels. `bias` (shape (C_out,)) is added to each output channel.

# %%
def conv2d(x, weight, bias=None, stride=1, padding=0):
    """Convolve a batch x (N, C_in, H, W) with weight (C_out, C_in, KH, KW).

    Returns a tensor of shape (N, C_out, H_out, W_out), like torch.nn.functional.conv2d.
    """
    # 1. Pad x with `padding` zeros on all four sides (F.pad).
    # 2. For each output position (i, j), cut out the window that starts at (i*stride, j*stride),
    #    multiply it with every filter and sum over channels, rows and columns.
    # 3. Add the bias to each output channel.
    # YOUR CODE HERE
    raise NotImplementedError()


# %% [markdown]
# The theory lecture works one example by hand. The 4x4 input
#
#     1 2 3 0
#     0 1 2 3
#     3 0 1 2
#     2 3 0 1
#
# with the 3x3 filter 2 0 1 / 0 1 2 / 1 0 2 gives a 2x2 map, 15 16 / 6 15 (the top-left window:
# `1*2 + 2*0 + 3*1 + 0*0 + 1*1 + 2*2 + 3*1 + 0*0 + 1*2 = 15`). With padding 1 the map stays 4x4:
# 7 12 10 2 / 4 15 16 10 / 10 6 15 6 / 8 10 4 3. On the 7x7 input that continues the same
# pattern, stride 1 gives a 5x5 map and stride 2 a 3x3 one whose first row is 15, 17, 15.

# %% [markdown]
# ## 3. Feature maps
#
# The lecture's X: a 9x9 image of -1 with an X of +1, and a 3x3 kernel with +1 on its diagonal
# and -1 elsewhere. Averaging the 9 products (instead of summing them) scores each patch between
# -1 and 1: 1.00 where the patch is exactly the kernel's diagonal, 0.77 in the top-left corner
# (7 of 9 pixels agree: 7/9), -0.11 where only 4 agree. With padding 1 the map stays 9x9 and
# its corner becomes (-1 + 1 + 1 + 1)/9 = 0.22: the padded zeros add nothing.

# %%
def match_map(image, kernel, padding=0):
    """Mean of the products of a 2-D kernel with every patch of a 2-D image."""
    # Reuse your conv2d: a 2-D image is a batch of one image with one channel.
    # YOUR CODE HERE
    raise NotImplementedError()


# %% [markdown]
# Kernels are feature detectors. Three classic 3x3 ones from the lecture:
#
# - outline: 8 in the centre, -1 around it. Its values sum to 0, so a flat region gives 0 and
#   only edges light up.
# - emboss: -2 -1 0 / -1 1 1 / 0 1 2. A diagonal light-to-dark ramp; sums to 1.
# - blur: 1/16 1/8 1/16 / 1/8 1/4 1/8 / 1/16 1/8 1/16. A weighted average; sums to 1, so a flat
#   region keeps its value.

# %%
def make_filter(name):
    """The 3x3 'outline', 'emboss' or 'blur' kernel as a float tensor of shape (3, 3)."""
    # YOUR CODE HERE
    raise NotImplementedError()

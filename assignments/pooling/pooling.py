# %% [markdown]
# # Pooling, from scratch
#
# After a convolution the feature maps are still large. A pooling layer shrinks them: a window
# (usually 2x2) slides over each map and keeps one number per position. Max pooling keeps the
# largest value ("remember the strongest response"), average pooling keeps the mean ("remember
# the average response").
#
# Three properties set pooling apart from a convolution:
#
# - it has **no parameters**: nothing to learn, only a fixed rule (`nn.MaxPool2d(2)` has 0);
# - it works on **each channel separately**, so the channel count does not change;
# - a 2x2 window with stride 2 **halves each side**: 28x28 becomes 14x14, 10x10 becomes 5x5,
#   and 100x100 becomes 50x50.
#
# Max pooling also makes the network **robust to small shifts**: when the strongest pixel moves
# by one position but stays inside the same 2x2 window, the pooled map does not change.
#
# Rules: plain tensor operations only. `torch.nn.functional.max_pool2d`, `avg_pool2d` and
# `nn.MaxPool2d`/`nn.AvgPool2d` are off limits; the grader notices them.

# %%
import torch

# %% [markdown]
# ## 1. The output shape
#
# The output side is floor((I - K) / S) + 1, the convolution formula without padding. When
# `stride` is None it equals the kernel size (windows side by side, as in PyTorch).

# %%
def pool_output_shape(shape, kernel_size=2, stride=None):
    """Shape (N, C, H_out, W_out) after pooling a batch of shape (N, C, H, W)."""
    # YOUR CODE HERE
    raise NotImplementedError()


# %% [markdown]
# ## 2. Max and average pooling
#
# Both take a batch x of shape (N, C, H, W) and return (N, C, H_out, W_out). The window of output
# position (i, j) is `x[:, :, i*S : i*S + K, j*S : j*S + K]`; reduce it over its last two axes
# (`amax` for max pooling, `mean` for average pooling), for all images and channels at once.

# %%
def max_pool2d(x, kernel_size=2, stride=None):
    """Largest value of every kernel_size x kernel_size window, per image and channel."""
    # YOUR CODE HERE
    raise NotImplementedError()


def avg_pool2d(x, kernel_size=2, stride=None):
    """Mean of every kernel_size x kernel_size window, per image and channel."""
    # YOUR CODE HERE
    raise NotImplementedError()

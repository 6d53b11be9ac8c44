# %% [markdown]
# # Softmax, entropy and the cross-entropy loss
#
# A classifier's last layer outputs one score (logit) per class. Softmax turns the scores into
# probabilities, and the cross-entropy loss says how far those probabilities are from the true
# label. Both come from information theory, so this assignment starts there.
#
# Rules: write these yourself with tensor arithmetic (`exp`, `log`, `log2`, `sum`, `max`,
# indexing). `torch.softmax`, `F.cross_entropy`, `F.relu` and their relatives are off limits;
# the grader notices them. Every function works on the last axis, so a batch of rows works too.

# %%
import torch

# %% [markdown]
# ## 1. Softmax
#
# softmax(y)_i = exp(y_i) / sum_j exp(y_j): positive numbers that sum to 1. Subtracting the
# largest score first changes nothing mathematically (the factor exp(-max) cancels) but keeps
# exp() from overflowing: exp(1000) is infinity in floating point, exp(0) is not.

# %%
def softmax(z):
    """Softmax over the last axis of z."""
    ### BEGIN SOLUTION
    e = torch.exp(z - z.max(dim=-1, keepdim=True).values)
    return e / e.sum(dim=-1, keepdim=True)
    ### END SOLUTION


# %% [markdown]
# ## 2. Entropy, cross-entropy and KL divergence, in bits
#
# The information in an event of probability p is -log2(p) bits: a sure event (p = 1) tells you
# nothing, a rare one a lot. Entropy is the expected information, H(p) = -sum p_i log2 p_i:
#
# - a fair coin: 0.5 * 1 + 0.5 * 1 = 1 bit;
# - four cars seen with probabilities 1/2, 1/4, 1/8, 1/8: `0.5*1 + 0.25*2 + 0.125*3 + 0.125*3`
#   = 1.75 bits;
# - four equally likely cars: 2 bits each, 2 bits on average.
#
# Cross-entropy H(p, q) = -sum p_i log2 q_i is the average number of bits when events that really
# follow p are coded as if they followed q. Coding the 1/2, 1/4, 1/8, 1/8 cars with the uniform
# code (2 bits each) costs 2 bits instead of 1.75. The difference is the KL divergence:
# D_KL(p || q) = sum p_i log2(p_i / q_i) = H(p, q) - H(p) = 0.25 bits here. Since H(p) is fixed
# by the data, minimising the cross-entropy minimises the KL divergence.
#
# A term with p_i = 0 contributes 0 (0 * log 0 is taken as 0): make sure it does not become nan.

# %%
def entropy_bits(p):
    """H(p) = -sum p log2 p over the last axis, in bits; terms with p = 0 count as 0."""
    ### BEGIN SOLUTION
    logs = torch.log2(torch.where(p > 0, p, torch.ones_like(p)))  # log2(1) = 0 where p = 0
    return -(p * logs).sum(dim=-1)
    ### END SOLUTION


def cross_entropy_bits(p, q):
    """H(p, q) = -sum p log2 q over the last axis, in bits; terms with p = 0 count as 0."""
    ### BEGIN SOLUTION
    terms = torch.where(p > 0, -p * torch.log2(q), 0.0)
    return terms.sum(dim=-1)
    ### END SOLUTION


def kl_divergence_bits(p, q):
    """D_KL(p || q) = sum p log2(p / q) over the last axis, in bits: H(p, q) - H(p)."""
    ### BEGIN SOLUTION
    return cross_entropy_bits(p, q) - entropy_bits(p)
    ### END SOLUTION


# %% [markdown]
# ## 3. The classification loss
#
# With a one-hot label, the cross-entropy keeps a single term: -ln(probability given to the true
# class) (PyTorch uses the natural log). If the picture is a cat and the model says "cat" with
# 0.9, the loss is -ln 0.9 ≈ 0.1053; with 0.3 it is ≈ 1.2039, with 0.1 ≈ 2.3026. An L1 loss
# would give 0.1, 0.7 and 0.9: cross-entropy punishes confident mistakes much harder.
#
# `cross_entropy(logits, targets)` is what `nn.CrossEntropyLoss` computes: softmax of each row of
# logits (N, C), then the mean over the batch of -ln(probability of the row's target class).
# Computing log-softmax directly, z - max - ln(sum exp(z - max)), avoids taking ln of a
# probability that rounded to 0.

# %%
def loss_for_label(probs, label):
    """-ln(probs[label]): the loss when the true class is `label`."""
    ### BEGIN SOLUTION
    return -torch.log(probs[label])
    ### END SOLUTION


def cross_entropy(logits, targets):
    """Mean cross-entropy loss of logits (N, C) against integer class targets (N,)."""
    ### BEGIN SOLUTION
    shifted = logits - logits.max(dim=-1, keepdim=True).values
    log_probs = shifted - torch.log(torch.exp(shifted).sum(dim=-1, keepdim=True))
    return -log_probs[torch.arange(len(targets)), targets].mean()
    ### END SOLUTION


# %% [markdown]
# ## 4. Activations
#
# ReLU, f(x) = max(0, x), is fast to compute and passes a gradient of 1 for positive inputs, but a
# neuron whose input is always negative gets gradient 0 and never learns again ("dying ReLU").
# Leaky ReLU, f(x) = max(a x, x) with a small slope a (PyTorch's default is 0.01), keeps a small
# gradient for negative inputs.

# %%
def relu(x):
    """max(0, x), element by element."""
    ### BEGIN SOLUTION
    return torch.where(x > 0, x, torch.zeros_like(x))
    ### END SOLUTION


def leaky_relu(x, negative_slope=0.01):
    """max(negative_slope * x, x), element by element (for 0 < negative_slope < 1)."""
    ### BEGIN SOLUTION
    return torch.where(x > 0, x, negative_slope * x)
    ### END SOLUTION

# %% [markdown]
# # The training loop and evaluation
#
# Every model in this course is trained by the same few lines. For each batch the loader hands
# out, the loop:
#
# 1. moves the inputs and labels to the device the model lives on (`.to(device)`: the GPU when
#    there is one);
# 2. clears the gradients left from the previous batch: `optimizer.zero_grad()`;
# 3. runs the model on the inputs (the forward pass);
# 4. measures how wrong the outputs are: `loss = loss_fn(outputs, labels)`;
# 5. computes the gradient of the loss for every parameter: `loss.backward()`;
# 6. lets the optimizer move the parameters against their gradients: `optimizer.step()`.
#
# PyTorch adds gradients up instead of replacing them, which is why step 2 matters: without it
# every batch's gradient is the sum of all the gradients so far. One pass over the whole
# training set is an epoch.
#
# Evaluation runs the model on data it never trained on and counts how often the class with the
# highest score is the right one. Two switches make that honest and cheap: `model.eval()`
# (dropout stops dropping, batch normalisation uses the statistics it learned instead of the
# batch's own) and `torch.no_grad()` (no gradients are recorded, which saves memory and time).
#
# Both functions get the device as an argument and move every batch there themselves.

# %%
import torch

# %% [markdown]
# ## 1. One epoch of training
#
# Return the epoch's mean loss per sample. The loss of a batch is already a mean over its
# samples, so weigh each batch by its size: add `loss.item() * len(labels)` for every batch and
# divide by the number of samples at the end. (Averaging the batch losses instead, as in
# `avg_cost += loss / total_batch`, gives the same number only when every batch has the same
# size; the last batch is usually smaller.) `loss.item()` turns the loss into a plain Python
# number, so the total does not keep every batch's computation graph alive.
#
# The model may come in eval mode (an earlier evaluation left it there): call `model.train()`
# first, so dropout and batch normalisation behave as in training.

# %%
def train_one_epoch(model, loader, optimizer, loss_fn, device):
    """Train `model` for one pass over `loader`; return the mean loss per sample (a float)."""
    ### BEGIN SOLUTION
    model.train()
    total_loss, total_samples = 0.0, 0
    for inputs, labels in loader:
        inputs, labels = inputs.to(device), labels.to(device)
        optimizer.zero_grad()
        loss = loss_fn(model(inputs), labels)
        loss.backward()
        optimizer.step()
        total_loss += loss.item() * len(labels)
        total_samples += len(labels)
    return total_loss / total_samples
    ### END SOLUTION


# %% [markdown]
# ## 2. Evaluation
#
# Return the fraction of samples whose highest-scoring class is the label, between 0 and 1.
# Count correct predictions and samples over the whole loader and divide once at the end: the
# mean of per-batch accuracies is wrong whenever the batches differ in size.

# %%
def evaluate(model, loader, device):
    """Accuracy of `model` on `loader`: correct predictions / samples, in [0, 1]."""
    ### BEGIN SOLUTION
    model.eval()
    correct, total = 0, 0
    with torch.no_grad():
        for inputs, labels in loader:
            inputs, labels = inputs.to(device), labels.to(device)
            predicted = model(inputs).argmax(dim=1)
            correct += (predicted == labels).sum().item()
            total += len(labels)
    return correct / total
    ### END SOLUTION

"""The course's reference functions: what a correct answer to each function case is.

A leaf module (formulas and, lazily, torch only): the spec reader checks that
a case names a known reference, and the functions check computes expected
values with them, in the grading parent, on the same inputs the worker got.
torch is imported only when a reference runs, so the shapes/params path of
the parent never loads it.

Some references make a mistake on purpose (a training step without zero_grad, test
transforms that augment): a spec names them under a function's `mistakes:`, so a
student whose answer equals one is told which mistake it is. They share their code
with the right answer, one switch per mistake.
"""
from __future__ import annotations

import math
from functools import partial
from typing import Any, Callable

from . import formulas


def torch_module():
    """torch, imported on first use."""
    import torch

    return torch


def _F():
    import torch.nn.functional as F

    return F


def _conv_output_size(I, K, P=0, S=1):
    return formulas.conv_output_size(I, K, P, S)


def _conv_output_shape(H, W, FH, FW, P=0, S=1):
    return formulas.conv_output_size(H, FH, P, S), formulas.conv_output_size(W, FW, P, S)


def _output_length(N, K, mode):
    padding = {"valid": 0, "same": (K - 1) // 2, "full": K - 1}[mode]
    return formulas.conv_output_size(N, K, padding, 1)


def _repeated_sizes(N, K, times):
    sizes = []
    for _ in range(times):
        N = formulas.conv_output_size(N, K)
        sizes.append(N)
    return sizes


def _conv2d(x, weight, bias=None, stride=1, padding=0):
    return _F().conv2d(x, weight, bias, stride=stride, padding=padding)


def _match_map(image, kernel, padding=0):
    out = _F().conv2d(image[None, None], kernel[None, None], padding=padding)[0, 0]
    return out / kernel.numel()


def _max_pool2d(x, kernel_size=2, stride=None):
    return _F().max_pool2d(x, kernel_size, stride or kernel_size)


def _avg_pool2d(x, kernel_size=2, stride=None):
    return _F().avg_pool2d(x, kernel_size, stride or kernel_size)


def _pool_output_shape(shape, kernel_size=2, stride=None):
    n, c, h, w = shape
    s = stride or kernel_size
    return (n, c, formulas.pool_output_size(h, kernel_size, 0, s),
            formulas.pool_output_size(w, kernel_size, 0, s))


def _entropy_bits(p):
    return torch_module().special.entr(p).sum(-1) / math.log(2)


def _cross_entropy_bits(p, q):
    return -torch_module().xlogy(p, q).sum(-1) / math.log(2)


def _kl_divergence_bits(p, q):
    torch = torch_module()
    return (torch.xlogy(p, p) - torch.xlogy(p, q)).sum(-1) / math.log(2)


def _count_parameters(model):
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def _patch_positions(row, col, width, size=3):
    return [(row + i) * width + col + j for i in range(size) for j in range(size)]


# ---------------------------------------------------------------- the training loop

def _train_one_epoch(model, loader, optimizer, loss_fn, device, *, zero_grad=True, step=True,
                     backward_times=1, set_train=True, average="samples"):
    """One epoch of the course's loop; returns the mean loss over samples. The keywords
    switch on one mistake each (the right answer keeps the defaults)."""
    if set_train:
        model.train()
    total, count, losses = 0.0, 0, []
    for inputs, labels in loader:
        inputs, labels = inputs.to(device), labels.to(device)
        if zero_grad:
            optimizer.zero_grad()
        loss = loss_fn(model(inputs), labels)
        for n in range(backward_times):
            loss.backward(retain_graph=n + 1 < backward_times)
        if step:
            optimizer.step()
        total += loss.item() * len(labels)
        count += len(labels)
        losses.append(loss.item())
    return {"samples": lambda: total / count, "batches": lambda: sum(losses) / len(losses),
            "last": lambda: losses[-1]}[average]()


def _evaluate(model, loader, device, *, set_eval=True, no_grad=True, per="samples", scale=1):
    """Accuracy in [0, 1] of argmax predictions; the keywords switch on one mistake each."""
    torch = torch_module()
    if set_eval:
        model.eval()
    correct, count, accuracies = 0, 0, []
    with torch.no_grad() if no_grad else torch.enable_grad():
        for inputs, labels in loader:
            inputs, labels = inputs.to(device), labels.to(device)
            hits = int((model(inputs).argmax(dim=1) == labels).sum())
            correct, count = correct + hits, count + len(labels)
            accuracies.append(hits / len(labels))
    accuracy = correct / count if per == "samples" else sum(accuracies) / len(accuracies)
    return accuracy * scale


# ---------------------------------------------------------------- the data pipeline
#
# Checked against torchvision's own transforms. Images come as OpenCV and the datasets'
# `.data` hold them: uint8 numpy arrays, H x W x C.

def _to_tensor(image, *, scale=True, axes=(2, 0, 1)):
    """H x W x C uint8 -> C x H x W float in [0, 1] (torchvision's ToTensor). `axes=None`
    reshapes instead of moving the axes."""
    torch = torch_module()
    if scale and axes == (2, 0, 1):
        from torchvision.transforms import functional as TF

        return TF.to_tensor(image)
    t = torch.from_numpy(image.copy()).float() / (255.0 if scale else 1.0)
    h, w, c = image.shape
    return t.reshape(c, h, w) if axes is None else t.permute(*axes)


def _normalize(x, mean, std, *, axis="channels"):
    """(x - mean) / std per channel (torchvision's Normalize); `axis="last"` broadcasts the
    statistics along the width instead, as a bare `(x - torch.tensor(mean))` does."""
    torch = torch_module()
    if axis == "channels":
        from torchvision.transforms import functional as TF

        return TF.normalize(x, mean, std)
    return (x - torch.tensor(mean, dtype=x.dtype)) / torch.tensor(std, dtype=x.dtype)


def _nhwc_to_nchw(images, *, how="transpose"):
    """A batch N x H x W x C (numpy) as a tensor N x C x H x W with the same values."""
    torch = torch_module()
    n, h, w, c = images.shape
    if how == "reshape":
        return torch.from_numpy(images.reshape(n, c, h, w).copy())
    order = (0, 3, 1, 2) if how == "transpose" else (0, 3, 2, 1)
    return torch.from_numpy(images.transpose(order).copy())


def _bgr_to_rgb(image, *, axis=-1):
    """OpenCV's B, G, R channel order reversed to R, G, B (the last axis)."""
    import numpy as np

    return np.flip(image, axis=axis).copy()


def _build_transforms(train, *, augment=None, flip_first=False, normalize=True):
    """The course's CIFAR-10 transforms: random 32x32 crops of the image padded by 4 and
    random horizontal flips for training only, then ToTensor and Normalize(0.5, 0.5) for
    both. `augment` forces augmentation on or off (the mistakes), `flip_first` is the same
    augmentation in the other order."""
    from torchvision import transforms as T

    augment = train if augment is None else augment
    crop_flip = [T.RandomCrop(32, padding=4), T.RandomHorizontalFlip()]
    steps = (crop_flip[::-1] if flip_first else crop_flip) if augment else []
    steps.append(T.ToTensor())
    if normalize:
        steps.append(T.Normalize((0.5, 0.5, 0.5), (0.5, 0.5, 0.5)))
    return T.Compose(steps)


REFERENCES: dict[str, Callable[..., Any]] = {
    "conv_output_size": _conv_output_size,
    "conv_output_shape": _conv_output_shape,
    "output_length": _output_length,
    "repeated_sizes": _repeated_sizes,
    "conv2d": _conv2d,
    "match_map": _match_map,
    "max_pool2d": _max_pool2d,
    "avg_pool2d": _avg_pool2d,
    "pool_output_shape": _pool_output_shape,
    "softmax": lambda z: torch_module().softmax(z, dim=-1),
    "entropy_bits": _entropy_bits,
    "cross_entropy_bits": _cross_entropy_bits,
    "kl_divergence_bits": _kl_divergence_bits,
    "loss_for_label": lambda probs, label: -math.log(float(probs[label])),
    "cross_entropy": lambda logits, targets: _F().cross_entropy(logits, targets),
    "relu": lambda x: _F().relu(x),
    "leaky_relu": lambda x, negative_slope=0.01: _F().leaky_relu(x, negative_slope),
    "count_parameters": _count_parameters,
    "linear_params": lambda n_in, n_out, bias=True: formulas.linear_params(n_in, n_out, bias),
    "conv_params": lambda kernel_size, in_channels, out_channels, bias=True:
        formulas.conv_params(in_channels, out_channels, kernel_size, 1, bias),
    "flatten_images": lambda x: torch_module().flatten(x, 1),
    "flat_position": lambda row, col, width: row * width + col,
    "patch_positions": _patch_positions,
    "train_one_epoch": _train_one_epoch,
    "train_without_zero_grad": partial(_train_one_epoch, zero_grad=False),
    "train_without_step": partial(_train_one_epoch, step=False),
    "train_backward_twice": partial(_train_one_epoch, backward_times=2),
    "train_without_train_mode": partial(_train_one_epoch, set_train=False),
    "train_mean_of_batch_means": partial(_train_one_epoch, average="batches"),
    "train_last_batch_loss": partial(_train_one_epoch, average="last"),
    "evaluate": _evaluate,
    "evaluate_without_eval": partial(_evaluate, set_eval=False),
    "evaluate_with_grad": partial(_evaluate, no_grad=False),
    "evaluate_per_batch": partial(_evaluate, per="batches"),
    "evaluate_in_percent": partial(_evaluate, scale=100),
    "to_tensor": _to_tensor,
    "to_tensor_without_scaling": partial(_to_tensor, scale=False),
    "to_tensor_by_reshape": partial(_to_tensor, axes=None),
    "to_tensor_width_first": partial(_to_tensor, axes=(2, 1, 0)),
    "normalize": _normalize,
    "normalize_along_width": partial(_normalize, axis="last"),
    "nhwc_to_nchw": _nhwc_to_nchw,
    "nhwc_to_nchw_by_reshape": partial(_nhwc_to_nchw, how="reshape"),
    "nhwc_to_ncwh": partial(_nhwc_to_nchw, how="ncwh"),
    "bgr_to_rgb": _bgr_to_rgb,
    "bgr_to_rgb_first_axis": partial(_bgr_to_rgb, axis=0),
    "bgr_to_rgb_third_axis": partial(_bgr_to_rgb, axis=2),
    "build_transforms": _build_transforms,
    "transforms_flip_first": partial(_build_transforms, flip_first=True),
    "transforms_augment_always": partial(_build_transforms, augment=True),
    "transforms_augment_never": partial(_build_transforms, augment=False),
    "transforms_without_normalize": partial(_build_transforms, normalize=False),
}

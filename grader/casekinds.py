"""The vocabulary of function-case values, shared by the spec reader, the parent and the worker.

A leaf module without torch: grader/spec/cases.py validates a case against these names before
anything is imported that could run it; grader/worker/fixtures.py builds them.
"""
from __future__ import annotations

MODEL_LAYERS = ("Linear", "Conv2d", "ReLU", "Tanh", "Sigmoid", "Flatten", "MaxPool2d",
                "AvgPool2d", "BatchNorm1d", "BatchNorm2d", "Dropout")
OPTIMIZERS = ("sgd",)         # plain SGD: a doubled gradient doubles every step
LOSSES = ("cross_entropy",)
DEVICES = ("cpu",)            # the submission's worker has no GPU: every case runs on the CPU
# What a case compares instead of the function's return value (spec key `observe:`), as
# feedback names it. The last three are read at every forward (and loss) call.
OBSERVATIONS = {
    "weights": "the model's parameters and buffers after the call",
    "training_mode": "model.training at each forward call",
    "grad_enabled": "torch.is_grad_enabled() at each forward call",
    "moved_to_device": "whether each batch went through .to(device) before the model (and "
                       "the loss) saw it",
}
PER_CALL = ("training_mode", "grad_enabled", "moved_to_device")

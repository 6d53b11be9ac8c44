"""Every layer right, then raise: a model that cannot produce scores cannot be trained."""
_forward = Model.forward


def _forward_then_raise(self, x):
    scores = _forward(self, x)
    raise RuntimeError(f"done with {tuple(scores.shape)}")


Model.forward = _forward_then_raise

"""cnn-grader: grade convolutional-network assignments by shapes, parameters, functions and accuracy.

Layout: `spec` (what an assignment asks) -> `runner` (starts the `worker`
process, where student code runs) -> `checks` (pure scoring) -> `results`
(result objects) -> `reporters` (text, JSON, Markdown). `cli` is the thin
command-line layer over them.
"""
__version__ = "0.1.0"


def __getattr__(name: str):
    """`from grader import check` without making `import grader` load the runner."""
    if name == "check":
        from .nb import self_check

        return self_check
    raise AttributeError(name)

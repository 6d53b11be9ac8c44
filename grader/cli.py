"""The `grade` command: parse arguments, call the runner, hand the result to a reporter.

Exit codes (docs/DESIGN.md): 0 full marks, 1 points lost, 2 usage or spec
error, 3 internal grader error.
"""
from __future__ import annotations

import os
import sys
import traceback
from pathlib import Path

import click

from .errors import UsageError

KINDS = ("shapes", "params", "functions", "accuracy")


class _DefaultToGrade(click.Group):
    """`grade PATH ...` means `grade submission PATH ...`; named subcommands still work."""

    def parse_args(self, ctx, args):
        if args and args[0] not in self.commands and args[0] not in ("--help", "-h", "--version"):
            args = ["submission", *args]
        return super().parse_args(ctx, args)


@click.group(cls=_DefaultToGrade)
@click.version_option(package_name="cnn-grader")
def main() -> None:
    """Grade CNN assignments: `grade PATH` grades a .py file, a notebook or a folder."""


def course_roots() -> list[Path]:
    """Where `--assignment NAME` is looked up: ./assignments, then the shipped course pack."""
    shipped = Path(__file__).resolve().parent.parent / "assignments"
    return [Path.cwd() / "assignments", shipped]


def parse_only(value: str | None) -> frozenset[str] | None:
    if not value:
        return None
    kinds = frozenset(k.strip() for k in value.split(",") if k.strip())
    unknown = sorted(kinds - set(KINDS))
    if unknown:
        raise click.BadParameter(f"unknown check kind {', '.join(unknown)}; "
                                 f"use one or more of {', '.join(KINDS)}", param_hint="--only")
    return kinds


@main.command("submission")
@click.argument("path", type=click.Path(exists=True, path_type=Path))
@click.option("--assignment", "-a", help="Assignment name or folder (default: spec.yaml beside PATH).")
@click.option("--format", "fmt", type=click.Choice(["text", "json", "markdown"]),
              help="Report format (default: text, or from the --out suffix).")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), help="Write the report here.")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto", show_default=True)
@click.option("--data-dir", type=click.Path(file_okay=False, path_type=Path),
              help="Dataset folder (default: $GRADER_DATA, else the user cache).")
@click.option("--only", help="Run only these check kinds, e.g. shapes,params.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--timeout", type=float, help="Seconds before the submission's process is stopped.")
def grade_submission(path, assignment, fmt, out, device, data_dir, only, seed, timeout) -> None:
    """Grade PATH (a .py file, an .ipynb notebook, or a folder holding one)."""
    from . import reporters
    from .runner import Options, grade
    from .spec import find_spec, load_spec

    opts = Options(device=device, seed=seed, data_dir=data_dir, only=parse_only(only),
                   timeout_s=timeout)
    result = _guard(lambda: grade(path, load_spec(find_spec(path, assignment, course_roots())),
                                  opts))
    fmt = fmt or (reporters.SUFFIXES.get(out.suffix, "text") if out else "text")
    color = sys.stdout.isatty() and "NO_COLOR" not in os.environ and out is None
    report = reporters.render(result, fmt, color=color)
    if out:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(report, encoding="utf-8")
        click.echo(f"{result.assignment}: {result.score:g} / {result.max_score:g} -> {out}")
    else:
        click.echo(report, nl=False)
    sys.exit(0 if result.full_marks else 1)


@main.group("course")
def course_group() -> None:
    """Instructor tools for the course pack (assignments/ and solutions/)."""


@course_group.command("build")
@click.argument("names", nargs=-1)
@click.option("--root", type=click.Path(file_okay=False, path_type=Path), default=Path("."),
              show_default=True, help="Course folder holding assignments/ and solutions/.")
def course_build(names: tuple[str, ...], root: Path) -> None:
    """Regenerate skeletons and notebooks from the reference solutions."""
    from . import course

    for name in names or course.assignment_names(root):
        for path in _guard(lambda: course.build(root, name)):
            click.echo(f"wrote {path}")


@main.command("download")
@click.argument("dataset", type=click.Choice(["mnist", "fashion_mnist", "cifar10"]))
@click.option("--data-dir", type=click.Path(file_okay=False, path_type=Path))
def download_cmd(dataset: str, data_dir: Path | None) -> None:
    """Download a torchvision dataset (needs internet access) into the data folder."""
    from .data import default_data_dir, download

    target = _guard(lambda: download(dataset, data_dir or default_data_dir()))
    click.echo(f"{dataset} is in {target}")


def _guard(action):
    """Run `action`, turning grader exceptions into the documented exit codes."""
    try:
        return action()
    except UsageError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(2)
    except Exception:  # noqa: BLE001 - anything else is the grader's own fault
        click.echo("internal grader error (please report it, with this trace):", err=True)
        click.echo(traceback.format_exc(), err=True)
        sys.exit(3)

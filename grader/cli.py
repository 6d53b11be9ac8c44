"""The `grade` command: parse arguments, call the runner, hand the result to a reporter.

Exit codes (docs/DESIGN.md): 0 full marks, 1 points lost, 2 usage or spec
error, 3 internal grader error.
"""
from __future__ import annotations

import contextlib
import functools
import os
import sys
import traceback
from pathlib import Path

import click

from .errors import UsageError
from .limits import Limits, format_size, parse_size

KINDS = ("shapes", "params", "functions", "accuracy")
PACK_ROOT = Path(__file__).resolve().parent.parent  # the course pack shipped beside the package


class _DefaultToGrade(click.Group):
    """`grade PATH ...` means `grade submission PATH ...`; named subcommands still work."""

    def parse_args(self, ctx, args):
        if args and args[0] not in self.commands and args[0] not in ("--help", "-h", "--version"):
            args = ["submission", *args]
        return super().parse_args(ctx, args)


@click.group(cls=_DefaultToGrade, context_settings={"max_content_width": 100})
@click.version_option(package_name="cnn-grader")
def main() -> None:
    """Grade CNN assignments.

    \b
      grade PATH                       grade a .py file, a notebook or a folder
      grade check                      a student's quick check, in the assignment folder
      grade batch SUBS -a NAME --out OUT   a whole class
    Run `grade COMMAND --help` for a command's options.
    """


def course_roots() -> list[Path]:
    """Where `--assignment NAME` is looked up: ./assignments, the specs of an nbgrader course
    this folder is inside (made by `grade nbgrader init`), then the shipped course pack."""
    from .nbgrader_course import SPECS_FOLDER

    here = Path.cwd()
    course = [p / SPECS_FOLDER for p in (here, *here.parents) if (p / SPECS_FOLDER).is_dir()]
    return [here / "assignments", *course, PACK_ROOT / "assignments"]


def parse_only(value: str | None) -> frozenset[str] | None:
    if not value:
        return None
    kinds = frozenset(k.strip() for k in value.split(",") if k.strip())
    unknown = sorted(kinds - set(KINDS))
    if unknown:
        raise click.BadParameter(f"unknown check kind {', '.join(unknown)}; "
                                 f"use one or more of {', '.join(KINDS)}", param_hint="--only")
    return kinds


def _size(ctx, param, value: str) -> int:
    try:
        return parse_size(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from exc


def sandbox_options(command):
    """--sandbox and the per-submission limits, handed to `command` as `sandbox` and `limits`."""
    default = Limits()

    @functools.wraps(command)
    def with_limits(*args, memory_limit, max_processes, output_limit, file_size_limit, **kwargs):
        limits = Limits(memory_bytes=memory_limit, max_tasks=max_processes,
                        output_bytes=output_limit, file_bytes=file_size_limit)
        return command(*args, limits=limits, **kwargs)

    options = [
        click.option("--sandbox", type=click.Choice(["auto", "on", "off"]), default="auto",
                     show_default=True, help="Run student code inside bubblewrap; auto falls "
                     "back to an unconfined process, with a warning in the report, where it "
                     "cannot."),
        click.option("--memory-limit", default=format_size(default.memory_bytes),
                     show_default=True, callback=_size,
                     help="Memory the submission's processes may hold, e.g. 2G."),
        click.option("--max-processes", type=click.IntRange(min=1), default=default.max_tasks,
                     show_default=True, help="Processes plus threads the submission may run."),
        click.option("--output-limit", default=format_size(default.output_bytes),
                     show_default=True, callback=_size,
                     help="Printed output kept for the report; the rest is cut."),
        click.option("--file-size-limit", default=format_size(default.file_bytes),
                     show_default=True, callback=_size,
                     help="Largest file the submission may write; also its scratch space."),
    ]
    for option in reversed(options):
        with_limits = option(with_limits)
    return with_limits


def grading_options(command):
    """The options `grade PATH` and `grade batch` share, so one submission is graded alike."""
    options = [
        click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto",
                     show_default=True),
        click.option("--data-dir", type=click.Path(file_okay=False, path_type=Path),
                     help="Dataset folder (default: $GRADER_DATA, else the user cache)."),
        click.option("--only", help="Run only these check kinds, e.g. shapes,params."),
        click.option("--seed", type=int, default=0, show_default=True),
        click.option("--timeout", type=float,
                     help="Seconds before a submission's process is stopped."),
        click.option("--workers", type=click.Choice(["fresh", "warm"]),
                     help="fresh: new sandboxed processes for every submission (default of "
                     "`grade PATH`); warm: a fork server for the code and a trainer that stay "
                     "up between submissions (default of `grade batch`). Same grade either way."),
        click.option("--ensembles", type=click.Choice(["auto", "always", "never"]),
                     default="auto", show_default=True,
                     help="auto: on a GPU, models sharing one program train as one batched "
                     "ensemble (a lone one with a copy of itself); always: on a CPU too "
                     "(faster for a class, twice the work for one submission); never: one "
                     "model at a time. Scores agree between runs with the same setting on "
                     "the same kind of device."),
    ]
    command = sandbox_options(command)
    for option in reversed(options):
        command = option(command)
    return command


@main.command("submission", short_help="Grade one submission (`grade PATH` means this).")
@click.argument("path", type=click.Path(exists=True, path_type=Path))
@click.option("--assignment", "-a", help="Assignment name or folder (default: spec.yaml beside PATH).")
@click.option("--format", "fmt",
              type=click.Choice(["text", "json", "markdown", "html", "gradescope", "junit"]),
              help="Report format (default: text, or from the --out suffix).")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), help="Write the report here.")
@grading_options
def grade_submission(path, assignment, fmt, out, device, data_dir, only, seed, timeout, workers,
                     ensembles, limits, sandbox) -> None:
    """Grade PATH (a .py file, an .ipynb notebook, or a folder holding one)."""
    from . import reporters
    from .runner import Options, grade
    from .spec import find_spec, load_spec

    opts = Options(device=device, seed=seed, data_dir=data_dir, only=parse_only(only),
                   timeout_s=timeout, limits=limits, sandbox=sandbox, workers=workers or "fresh",
                   ensembles=ensembles)
    spec = _guard(lambda: load_spec(find_spec(path, assignment, course_roots())))
    with training_display(spec.name, _trains(spec, opts.only)) as on_epoch:
        result = _guard(lambda: grade(path, spec, opts, on_epoch=on_epoch))
    fmt = fmt or (reporters.SUFFIXES.get(out.suffix, "text") if out else "text")
    color = sys.stdout.isatty() and not os.environ.get("NO_COLOR") and out is None
    report = reporters.render(result, fmt, color=color)
    if out:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(report, encoding="utf-8")
        click.echo(f"{result.assignment}: {result.score:g} / {result.max_score:g} -> {out}")
    else:
        click.echo(report, nl=False)
    sys.exit(0 if result.full_marks else 1)


def _trains(spec, only: frozenset[str] | None) -> bool:
    from .runner import selected_checks

    return any(c.kind == "accuracy" for c in selected_checks(spec, only))


@contextlib.contextmanager
def training_display(label: str, trains: bool = True):
    """Where training's progress goes: a live bar on a terminal, else a line per epoch on
    stderr (stdout stays the report's alone); nowhere when nothing trains."""
    from .progress import for_terminal

    if not trains:
        yield None
        return
    with for_terminal(label, sys.stderr) as sink:
        yield sink


@main.group("course", short_help="Instructor tools for the course pack.")
def course_group() -> None:
    """Instructor tools for the course pack (assignments/ and solutions/)."""


@course_group.command("build", short_help="Regenerate skeletons and notebooks from solutions/.")
@click.argument("names", nargs=-1)
@click.option("--root", type=click.Path(file_okay=False, path_type=Path), default=Path("."),
              show_default=True, help="Course folder holding assignments/ and solutions/.")
def course_build(names: tuple[str, ...], root: Path) -> None:
    """Regenerate skeletons and notebooks from the reference solutions."""
    from . import course

    for path in _guard(lambda: course.build(root, list(names or course.assignment_names(root)))):
        click.echo(f"wrote {path}")


@main.command("batch", short_help="Grade a class folder: gradebook.csv and summary.html.")
@click.argument("submissions", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--assignment", "-a", required=True, help="Assignment name or folder.")
@click.option("--out", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Folder for OUT/<student>/result.json, gradebook.csv and summary.html.")
@click.option("--jobs", "-j", type=click.IntRange(min=1),
              help="Submissions graded at once (default: one per CPU core).")
@click.option("--gpus", help="GPUs to spread the jobs over, e.g. 0,1; jobs share them.")
@click.option("--executor", type=click.Choice(["local", "submitit"]), default="local",
              show_default=True, help="submitit: one Slurm array task per submission.")
@click.option("--partition", help="Slurm partition for --executor submitit.")
@grading_options
def grade_batch(submissions, assignment, out, jobs, gpus, executor, partition, device, data_dir,
                only, seed, timeout, workers, ensembles, limits, sandbox) -> None:
    """Grade each entry of SUBMISSIONS (a folder or a file per student) into OUT.

    A rerun skips students whose code and grading settings did not change, so an
    interrupted batch resumes. Exit code 0 when every submission was graded, 3
    when the grader failed on some (their OUT/<student>/error.txt says why).
    """
    from .batch import discover, run_batch
    from .batchview import BatchView
    from .executors import make_executor
    from .runner import Options
    from .spec import find_spec, load_spec

    spec_path = _guard(lambda: find_spec(submissions, assignment, course_roots()))
    spec = _guard(lambda: load_spec(spec_path))
    entries = _guard(lambda: discover(submissions))
    opts = Options(device=device, seed=seed, data_dir=data_dir, only=parse_only(only),
                   timeout_s=timeout, limits=limits, sandbox=sandbox, workers=workers or "warm",
                   ensembles=ensembles)
    slots = jobs or os.cpu_count() or 1
    limit = timeout or spec.timeout_s
    runner = _guard(lambda: make_executor(executor, slots, gpus, out.resolve(), limit,
                                          device == "cuda", partition))
    with BatchView(len(entries), slots, out.resolve(), limit) as view:
        summary = _guard(lambda: run_batch(entries, spec_path, opts, out.resolve(), runner, view))
    click.echo(f"{summary.count('graded')} graded, {summary.count('skipped')} unchanged since "
               f"the last run, {summary.count('error')} could not be graded")
    click.echo(f"gradebook: {summary.gradebook}\nsummary:   {summary.summary}")
    sys.exit(3 if summary.count("error") else 0)


@main.command("check", short_help="A student's quick check before handing in.")
@click.argument("path", type=click.Path(exists=True, path_type=Path), default=Path("."))
@click.option("--assignment", "-a", help="Assignment name (default: found from the folder).")
@click.option("--full", is_flag=True, help="Train fully and grade accuracy (slow) instead of a smoke run.")
@click.option("--only", help="Run only these check kinds, e.g. shapes.")
@click.option("--data-dir", type=click.Path(file_okay=False, path_type=Path))
def check_cmd(path: Path, assignment: str | None, full: bool, only: str | None,
              data_dir: Path | None) -> None:
    """Check your work before handing it in: the public checks, fast."""
    from . import reporters
    from .runner import Options
    from .selfcheck import self_check
    from .spec import find_spec, load_spec

    opts = Options(data_dir=data_dir, only=parse_only(only))
    spec = _guard(lambda: load_spec(find_spec(path, assignment, course_roots())))
    with training_display(spec.name, "accuracy" in spec.check_kinds()) as on_epoch:
        result = _guard(lambda: self_check(path, spec, opts, full, on_epoch=on_epoch))
    color = sys.stdout.isatty() and not os.environ.get("NO_COLOR")
    click.echo(reporters.render(result, "student", color=color), nl=False)
    sys.exit(0 if result.full_marks and all(c.status != "failed" for c in result.checks) else 1)


@main.command("calibrate", short_help="Train the reference over seeds; propose accuracy bars.")
@click.argument("assignment")
@click.option("--seeds", default="0,1,2", show_default=True, help="Comma-separated seeds.")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto", show_default=True)
@click.option("--data-dir", type=click.Path(file_okay=False, path_type=Path))
def calibrate_cmd(assignment: str, seeds: str, device: str, data_dir: Path | None) -> None:
    """Train the reference over seeds, and controls that must fail; propose a bar between.

    Exits 2, with the numbers, when the reference is not clearly above the linear control.
    """
    from .calibrate import calibrate, refusal, report
    from .runner import Options
    from .spec import find_spec, load_spec

    spec = _guard(lambda: load_spec(find_spec(Path("."), assignment, course_roots())))
    solution = spec.folder.parent.parent / "solutions" / spec.name
    if not solution.is_dir():
        _fail(f"no reference solution at {solution}")
    seed_list = [int(s) for s in seeds.split(",") if s.strip()]
    with training_display(spec.name) as on_epoch:
        cal = _guard(lambda: calibrate(solution, spec, seed_list,
                                       Options(device=device, data_dir=data_dir), on_epoch))
    click.echo(report(spec, cal))
    if not cal.fair:
        _fail(refusal(cal))


@main.group("nbgrader", short_help="Make an nbgrader course from the course pack.")
def nbgrader_group() -> None:
    """nbgrader integration."""


@nbgrader_group.command("init", short_help="Write an nbgrader course into COURSE_DIR.")
@click.argument("course_dir", type=click.Path(file_okay=False, path_type=Path))
@click.option("--assignment", "-a", "names", multiple=True, help="Only these (default: all).")
@click.option("--cell-timeout", default=1800, show_default=True, help="Seconds per notebook cell.")
def nbgrader_init(course_dir: Path, names: tuple[str, ...], cell_timeout: int) -> None:
    """Write a ready nbgrader course (config, source notebooks, specs, README) into COURSE_DIR."""
    from .nbgrader_course import init_course

    done = _guard(lambda: init_course(course_dir, PACK_ROOT, list(names) or None, cell_timeout))
    click.echo(f"nbgrader course in {course_dir} with {', '.join(done)}; "
               f"next: cd {course_dir} && nbgrader generate_assignment {done[0]}")


@main.group("gradescope", short_help="Package an assignment as a Gradescope autograder.")
def gradescope_group() -> None:
    """Gradescope: build the autograder zip; `run` and `prepare` are what it calls inside."""


@gradescope_group.command("build")
@click.argument("assignment")
@click.option("--out", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="The zip to write, e.g. autograder.zip.")
@click.option("--data-dir", type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="Put the dataset found here into the zip (default: setup.sh downloads it).")
def gradescope_build(assignment: str, out: Path, data_dir: Path | None) -> None:
    """Write the autograder zip for ASSIGNMENT (a name or a folder with spec.yaml).

    Upload it as the assignment's autograder on Gradescope; each submission is then graded
    as `grade` grades it, and students see the per-check feedback.
    """
    from .gradescope import build
    from .spec import find_spec, load_spec

    spec = _guard(lambda: load_spec(find_spec(Path("."), assignment, course_roots())))
    names = _guard(lambda: build(spec, out, PACK_ROOT, data_dir))
    click.echo(f"wrote {out} ({len(names)} files) for {spec.name}: upload it on Gradescope as "
               "the assignment's autograder (Configure Autograder, zip file upload)")


@gradescope_group.command("run", hidden=True)
@click.option("--root", type=click.Path(file_okay=False, path_type=Path),
              default=Path("/autograder"))
def gradescope_run(root: Path) -> None:
    """Grade ROOT/submission into ROOT/results/results.json (run_autograder calls this)."""
    from .gradescope import run

    click.echo(f"wrote {run(root)}")


@gradescope_group.command("prepare", hidden=True)
@click.option("--root", type=click.Path(file_okay=False, path_type=Path),
              default=Path("/autograder"))
def gradescope_prepare(root: Path) -> None:
    """Convert the autograder's dataset once (setup.sh calls this)."""
    from .gradescope import prepare

    _guard(lambda: prepare(root))


@main.command("download", short_help="Download a dataset (needs internet access).")
@click.argument("dataset", type=click.Choice(["mnist", "fashion_mnist", "cifar10"]))
@click.option("--data-dir", type=click.Path(file_okay=False, path_type=Path))
def download_cmd(dataset: str, data_dir: Path | None) -> None:
    """Download a torchvision dataset (needs internet access) into the data folder."""
    from .data import default_data_dir, download

    target = _guard(lambda: download(dataset, data_dir or default_data_dir()))
    click.echo(f"{dataset} is in {target}")


@main.command("make-private-test", short_help="Write a private variant of a public test set.")
@click.argument("dataset", type=click.Choice(["mnist", "fashion_mnist", "cifar10"]))
@click.option("--out", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="The .npz to write; keep it out of what students get.")
@click.option("--seed", required=True, type=int, help="A number only the course knows.")
@click.option("--noise", type=click.IntRange(1, 64), default=8, show_default=True,
              help="Largest change of a pixel's intensity (of 255).")
@click.option("--shift", type=click.IntRange(0, 4), default=0, show_default=True,
              help="Largest move of an image, in pixels (costs shift-sensitive nets accuracy).")
@click.option("--data-dir", type=click.Path(file_okay=False, path_type=Path))
def make_private_test_cmd(dataset: str, out: Path, seed: int, noise: int, shift: int,
                          data_dir: Path | None) -> None:
    """Write a private variant of DATASET's public test set (see docs/SECURITY.md).

    Use it with `training.dataset: <file>.npz` in the spec, and recalibrate the bar.
    """
    from .data import default_data_dir
    from .private import make_private_test

    counts = _guard(lambda: make_private_test(dataset, data_dir or default_data_dir(), out, seed,
                                              shift, noise))
    click.echo(f"wrote {out}: {counts['train']:,} training images (official) and "
               f"{counts['test']:,} private test images; in the spec: "
               f"training.dataset: {out.name} (put the file in the data folder)")


def _fail(message: str) -> None:
    """A usage or spec error: say what is wrong on stderr, exit 2."""
    click.echo(f"error: {message}", err=True)
    sys.exit(2)


def _guard(action):
    """Run `action`, turning grader exceptions into the documented exit codes."""
    try:
        return action()
    except UsageError as exc:
        _fail(str(exc))
    except Exception:  # noqa: BLE001 - anything else is the grader's own fault
        click.echo("internal grader error (please report it, with this trace):", err=True)
        click.echo(traceback.format_exc(), err=True)
        sys.exit(3)

"""`grade nbgrader init COURSE_DIR`: a ready nbgrader course made from the course pack.

The course gets every assignment's source notebook (source/<name>/<name>.ipynb),
a copy of each spec (grader_specs/<name>/spec.yaml, which the notebooks' test
cells find from anywhere inside the course), and an nbgrader_config.py whose
cell timeout leaves room for training on a CPU.
"""
from __future__ import annotations

import shutil
from pathlib import Path

SPECS_FOLDER = "grader_specs"
CONFIG = '''c = get_config()
c.CourseDirectory.root = __file__.rsplit("/", 1)[0] if "/" in __file__ else "."
# Test cells that train a model need minutes on a CPU; nbgrader's default is 30 seconds.
c.Execute.timeout = {timeout}
c.Execute.interrupt_on_timeout = True
'''
README = """# nbgrader course made by `grade nbgrader init`

Assignments: {names}

    nbgrader generate_assignment <name>     # writes release/<name>/ for students
    nbgrader collect / autograde <name>     # after students submit
    nbgrader autograde <name>

Each notebook ends in locked test cells worth the spec's points. A test cell calls
`grader.nb.check(...)`, which grades the code the notebook defined in a separate process, prints
feedback and each training epoch to stdout (nbgrader scores stderr as zero) and returns the
points earned (nbgrader's partial credit). The specs used are in {specs}/; datasets come from
$GRADER_DATA (set it before `nbgrader autograde`; MNIST falls back to the sample shipped with
the grader). The scores equal what `grade <notebook>` reports for the same code.
"""


def init_course(course_dir: Path, pack_root: Path, names: list[str] | None = None,
                timeout_s: int = 1800) -> list[str]:
    from .course import assignment_names  # nbformat is slow to import; only this command needs it

    names = names or assignment_names(pack_root)
    for name in names:
        src = pack_root / "solutions" / name / f"{name}.ipynb"
        (course_dir / "source" / name).mkdir(parents=True, exist_ok=True)
        shutil.copy(src, course_dir / "source" / name / src.name)
        spec_dir = course_dir / SPECS_FOLDER / name
        shutil.copytree(pack_root / "assignments" / name, spec_dir, dirs_exist_ok=True,
                        ignore=shutil.ignore_patterns("*.ipynb", "*.py", "__pycache__"))
    (course_dir / "nbgrader_config.py").write_text(CONFIG.format(timeout=timeout_s))
    (course_dir / "README.md").write_text(README.format(names=", ".join(names), specs=SPECS_FOLDER))
    return names

"""HTML report: one self-contained page per submission, for a student to open offline.

Order follows what a student asks: how did I do (score and a row per check), where in
the network it goes wrong (layer table), what to fix (feedback per check), how training
went (curve, confusion matrix, per-class accuracy) and what of the notebook never ran.
CSS is inline and the charts are PNG data URIs, so the file needs no network.
Feedback quotes student code, so every string from the result is escaped.
matplotlib is imported here, lazily, and only when there is an
accuracy chart to draw: it is slow to import and the other reporters never need it.
"""
from __future__ import annotations

import base64
import io
from html import escape
from typing import Any

from ..results import CheckResult, GradeResult
from .text import fmt_shape, plain, score_text, status_mark

DPI = 110
BLUE, GREEN, RED, GREY = "#0969da", "#1a7f37", "#cf222e", "#57606a"
STYLE = """
:root{--pass:#1a7f37;--pass-bg:#dafbe1;--fail:#cf222e;--fail-bg:#ffebe9;--err:#9a6700;
--err-bg:#fff8c5;--muted:#57606a;--line:#d0d7de;--soft:#f6f8fa}
*{box-sizing:border-box}
body{margin:0;background:var(--soft);color:#1f2328;
font:15px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,"DejaVu Sans",sans-serif}
main{max-width:1100px;margin:0 auto;padding:24px}
header,section{background:#fff;border:1px solid var(--line);border-radius:10px;
padding:18px 24px;margin-bottom:18px}
h1{margin:0;font-size:26px}h2{margin:0 0 10px;font-size:19px}
.top{display:flex;justify-content:space-between;align-items:flex-end;gap:24px}
.meta{color:var(--muted);font-size:13px}
.score{font-size:40px;font-weight:700;white-space:nowrap;line-height:1.1}
.score small{font-size:15px;font-weight:400;color:var(--muted);margin-left:6px}
.bar{height:10px;background:#eaeef2;border-radius:5px;overflow:hidden;margin:14px 0 16px}
.bar span{display:block;height:100%}
.bar .full{background:var(--pass)}.bar .part{background:#d4a72c}.bar .none{background:var(--fail)}
table{border-collapse:collapse;width:100%;font-size:14px}
th,td{padding:6px 10px;border-bottom:1px solid var(--line);text-align:left;vertical-align:top}
th{background:var(--soft);font-weight:600}
td.num,th.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
code,pre,.mono{font-family:ui-monospace,"DejaVu Sans Mono",Menlo,monospace;font-size:13px}
td.mono{white-space:nowrap}
tr.ok td:first-child{box-shadow:inset 4px 0 var(--pass)}
tr.bad td:first-child{box-shadow:inset 4px 0 var(--fail)}
tr.bad{background:#fff5f5}td.bad,span.bad{color:var(--fail);font-weight:600}
tr.total td{font-weight:600;border-top:2px solid var(--line)}
.badge{display:inline-block;padding:1px 10px;border-radius:12px;font-size:12px;font-weight:600}
.badge.passed{background:var(--pass-bg);color:var(--pass)}
.badge.failed{background:var(--fail-bg);color:var(--fail)}
.badge.error{background:var(--err-bg);color:var(--err)}
.badge.skipped{background:#eaeef2;color:var(--muted)}
.check h2{display:flex;align-items:center;gap:10px}
.check h2 .pts{margin-left:auto;font-variant-numeric:tabular-nums}
.kind{color:var(--muted);font-weight:400;font-size:14px}
pre.feedback{margin:0;background:var(--soft);border-left:4px solid var(--line);
padding:10px 14px;white-space:pre-wrap;overflow-wrap:anywhere}
.check.passed pre.feedback{border-color:var(--pass)}
.check.failed pre.feedback,.check.error pre.feedback{border-color:var(--fail)}
.figs{display:grid;grid-template-columns:repeat(auto-fill,minmax(440px,1fr));gap:16px;
margin-top:14px}
figure{margin:0}figure img{width:100%;height:auto;border:1px solid var(--line);border-radius:6px}
figcaption{color:var(--muted);font-size:13px}
a{color:#0969da;text-decoration:none}a:hover{text-decoration:underline}
"""


def render(result: GradeResult) -> str:
    parts = [_summary(result), _layers_section(result),
             *(_check_section(c) for c in result.checks),
             _skipped_section(result), _notes_section(result)]
    title = f"{result.assignment}: {result.score:g} / {result.max_score:g}"
    return ("<!doctype html>\n<html lang='en'><head><meta charset='utf-8'>"
            "<meta name='viewport' content='width=device-width,initial-scale=1'>"
            f"<title>{escape(title)}</title><style>{STYLE}</style></head>"
            f"<body><main>{''.join(parts)}</main></body></html>\n")


def _summary(result: GradeResult) -> str:
    fraction = result.score / result.max_score if result.max_score else 1.0
    tone = "full" if result.full_marks else "part" if result.score > 0 else "none"
    rows = "".join(
        f"<tr><td><a href='#{_anchor(c)}'>{escape(c.id)}</a></td>"
        f"<td class=kind>{escape(c.kind)}</td><td class=num>{score_text(c)}</td>"
        f"<td>{status_badge(c.status)}</td></tr>" for c in result.checks)
    return (f"<header><div class=top><div><h1>{escape(result.assignment)}</h1>"
            f"<div class=meta>{_meta(result)}</div></div>"
            f"<div class=score id=score>{result.score:g} / {result.max_score:g}"
            f"<small>points</small></div></div>"
            f"<div class=bar><span class={tone} style='width:{fraction:.1%}'></span></div>"
            "<table><tr><th>Check</th><th>Kind</th><th class=num>Score</th><th>Status</th></tr>"
            f"{rows}</table></header>")


def _meta(result: GradeResult) -> str:
    grader = result.versions.get("grader")
    return (f"Submission <code>{_shown(result.submission)}</code> · graded on "
            f"{escape(result.device)} in {result.duration_s:.1f} s"
            + (f" · grader {escape(grader)}" if grader else ""))


def _shown(text: str) -> str:
    """A string a submission may have shaped (feedback quotes its code and errors), made inert."""
    return escape(plain(text))


def _anchor(check: CheckResult) -> str:
    return escape(f"check-{check.id}")


def status_badge(label: str, tone: str | None = None) -> str:
    """A coloured badge; `tone` (passed, failed, error, skipped; default: the label) picks
    the colour and the mark."""
    tone = tone or label
    return f"<span class='badge {escape(tone)}'>{status_mark(tone)} {escape(label)}</span>"


def _visible_check(result: GradeResult, kind: str) -> CheckResult | None:
    """The first check of `kind`, whose details the page draws."""
    return next((c for c in result.checks if c.kind == kind), None)


def _visible_layers(result: GradeResult, kind: str) -> list[dict[str, Any]]:
    check = _visible_check(result, kind)
    return list(check.details.get("layers", [])) if check else []


def _layers_section(result: GradeResult) -> str:
    """One table joining the shapes and params checks' rows, layer by layer."""
    shapes = _visible_layers(result, "shapes")
    params = {r["name"]: r for r in _visible_layers(result, "params")}
    if not shapes and not params:
        return ""
    rows = [_layer_row(s["name"], s, params.pop(s["name"], None)) for s in shapes]
    rows += [_layer_row(name, None, p) for name, p in params.items()]
    return ("<section id=layers><h2>Layers</h2><table><tr><th>Layer</th><th>Type</th>"
            "<th>Input</th><th>Output</th><th>Expected</th><th>Formula</th><th>Parameters</th>"
            f"</tr>{''.join(rows)}{_total_row(result)}</table></section>")


def _layer_row(name: str, shape: dict[str, Any] | None, params: dict[str, Any] | None) -> str:
    ok = (shape is None or shape["ok"]) and (params is None or params["credit"] >= 1)
    shape = shape or {}
    wrong_out = shape.get("got") is not None and not shape.get("shape_ok")
    missing = bool(shape) and shape.get("got") is None
    cells = [f"<td>{escape(name)}</td>", _type_cell(shape),
             f"<td class=mono>{fmt_shape(shape.get('in'))}</td>",
             f"<td class='mono{' bad' if wrong_out or missing else ''}'>"
             f"{fmt_shape(shape.get('got'))}</td>",
             f"<td class=mono>{fmt_shape(shape.get('expected'))}</td>",
             f"<td class=mono>{escape(shape.get('formula') or '')}</td>", _params_cell(params)]
    title = escape(shape.get("message", ""))
    return f"<tr class={'ok' if ok else 'bad'} title='{title}'>{''.join(cells)}</tr>"


def _type_cell(shape: dict[str, Any]) -> str:
    """The layer type and the activation the spec wants after it; red when that is missing."""
    act = shape.get("activation")
    text = escape(shape.get("type", ""))
    if act and act["ok"]:
        text += f" + {escape(act['expected'])}"
    elif act:
        text += f" + <span class=bad>{escape(act['got'] or 'no activation')}</span> " \
                f"(the spec asks for {escape(act['expected'])})"
    return f"<td>{text}</td>"


def _params_cell(params: dict[str, Any] | None) -> str:
    if params is None:
        return "<td></td>"
    if params["credit"] >= 1:
        return f"<td class=mono>{escape(params['formula'])}</td>"
    got = "not found" if params["got"] is None else f"{params['got']:,}"
    return f"<td class='mono bad'>{got}; expected {escape(params['formula'])}</td>"


def _total_row(result: GradeResult) -> str:
    check = _visible_check(result, "params")
    if check is None or "total" not in check.details:
        return ""
    got, want = check.details["total"], check.details["expected_total"]
    cls = "" if got == want else " bad"
    return (f"<tr class=total><td colspan=6>Total parameters</td>"
            f"<td class='mono{cls}'>{got:,}" + ("" if got == want else f"; expected {want:,}")
            + "</td></tr>")


def _check_section(check: CheckResult) -> str:
    body = f"<pre class=feedback>{_shown(check.feedback)}</pre>"
    if check.kind == "accuracy":
        body += _accuracy_extras(check.details)
    return (f"<section class='check {escape(check.status)}' id='{_anchor(check)}'>"
            f"<h2>{escape(check.id)} <span class=kind>{escape(check.kind)}</span>"
            f"{status_badge(check.status)}<span class=pts>{score_text(check)}</span>"
            f"</h2>{body}</section>")


def _accuracy_extras(details: dict[str, Any]) -> str:
    """Where the data came from, then the charts the measurements allow (none without training)."""
    figures = []
    if details.get("curve"):
        figures.append(("Training loss and accuracy per epoch", _curve_png(details["curve"])))
    if details.get("confusion") and details.get("classes"):
        figures.append(("Confusion matrix on the test set (rows: true class)",
                        _confusion_png(details["confusion"], details["classes"])))
    if details.get("per_class"):
        figures.append(("Test accuracy per class",
                        _per_class_png(details["per_class"], details.get("accuracy"))))
    imgs = "".join(f"<figure><img src='{uri}' alt='{escape(cap)}'>"
                   f"<figcaption>{escape(cap)}</figcaption></figure>" for cap, uri in figures)
    return _dataset_line(details) + (f"<div class=figs>{imgs}</div>" if imgs else "")


def _dataset_line(details: dict[str, Any]) -> str:
    ds = details.get("dataset")
    if not ds:
        return ""
    where = f" on {escape(details['device'])}" if details.get("device") else ""
    took = f" in {details['train_seconds']:.0f} s" if details.get("train_seconds") else ""
    if details.get("ensemble"):
        took += (f", stepped as one batched ensemble of {details['ensemble']} models (the "
                 "time is theirs together; the score is this model's alone)")
    return (f"<p class=meta>Trained on {escape(ds['name'])} ({escape(ds['variant'])}: "
            f"{ds['n_train']:,} training and {ds['n_test']:,} test images){where}{took}.</p>")


def _figure(width: float, height: float):
    """A matplotlib Figure drawn by the Agg canvas: no pyplot state, no display needed."""
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), dpi=DPI, layout="constrained")


def _data_uri(fig) -> str:
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    buf = io.BytesIO()
    FigureCanvasAgg(fig).print_png(buf)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _curve_png(curve: list[dict[str, float]]) -> str:
    fig = _figure(5.2, 3.6)
    loss_ax = fig.add_subplot()
    epochs = [p["epoch"] for p in curve]
    loss_ax.plot(epochs, [p["loss"] for p in curve], marker="o", color=BLUE)
    loss_ax.set_xlabel("epoch")
    loss_ax.set_ylabel("training loss", color=BLUE)
    loss_ax.grid(alpha=0.3)
    acc_ax = loss_ax.twinx()
    acc_ax.plot(epochs, [100 * p["train_accuracy"] for p in curve], marker="s", color=GREEN)
    acc_ax.set_ylabel("training accuracy (%)", color=GREEN)
    acc_ax.set_ylim(0, 100)
    loss_ax.xaxis.get_major_locator().set_params(integer=True)
    return _data_uri(fig)


def _confusion_png(confusion: list[list[int]], classes: list[str]) -> str:
    """Counts, coloured by the share of each true class, so small classes still show up."""
    n = len(classes)
    fig = _figure(5.2, 4.6)
    ax = fig.add_subplot()
    shares = [[v / max(sum(row), 1) for v in row] for row in confusion]
    ax.imshow(shares, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(n), classes, rotation=45, ha="right", fontsize=8)
    ax.set_yticks(range(n), classes, fontsize=8)
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    if n <= 12:
        for i, row in enumerate(confusion):
            for j, v in enumerate(row):
                ax.text(j, i, str(v), ha="center", va="center", fontsize=7,
                        color="white" if shares[i][j] > 0.5 else "#1f2328")
    return _data_uri(fig)


def _per_class_png(per_class: dict[str, float], overall: float | None) -> str:
    fig = _figure(5.2, 0.8 + 0.3 * len(per_class))
    ax = fig.add_subplot()
    names = list(per_class)[::-1]
    values = [100 * per_class[c] for c in names]
    ax.barh(names, values, color=BLUE)
    for y, v in enumerate(values):
        ax.text(v + 1, y, f"{v:.0f}%", va="center", fontsize=8, color=GREY)
    if overall is not None:
        ax.axvline(100 * overall, color=RED, linestyle="--", label=f"overall {overall:.1%}")
        ax.legend(loc="lower right", fontsize=8)
    ax.set_xlim(0, 100)
    ax.set_xlabel("test accuracy (%)")
    ax.tick_params(axis="y", labelsize=8)
    return _data_uri(fig)


def _skipped_section(result: GradeResult) -> str:
    if not result.skipped_cells:
        return ""
    rows = "".join(f"<tr><td class=num>{escape(str(s['cell']))}</td>"
                   f"<td><code>{_shown(s['line'])}</code></td><td>{escape(s['reason'])}</td></tr>"
                   for s in result.skipped_cells)
    return ("<section id=skipped><h2>Notebook statements not run</h2>"
            "<p class=meta>The grader keeps imports, definitions and constants; "
            "these lines were left out.</p>"
            f"<table><tr><th class=num>Cell</th><th>Statement</th><th>Why</th></tr>{rows}"
            "</table></section>")


def _notes_section(result: GradeResult) -> str:
    if not result.notes:
        return ""
    items = "".join(f"<li>{_shown(n)}</li>" for n in result.notes)
    return f"<section id=notes><h2>Notes</h2><ul>{items}</ul></section>"

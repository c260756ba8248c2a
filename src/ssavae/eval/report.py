"""``report.html``: one self-contained page per run (opens from disk, no network): config,
test-set numbers, every figure (embedded as base64 PNG) and the training curves."""
from __future__ import annotations

import base64
import html
from pathlib import Path

from ..fileio import atomic_path
from ..rundir import RunDir

_CSS = """body{font-family:system-ui,sans-serif;margin:2em auto;max-width:1100px;color:#222}
table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:4px 10px;text-align:left}
td.num{text-align:right;font-family:monospace}figure{display:inline-block;margin:8px;vertical-align:top}
figure img{max-width:520px;border:1px solid #ddd}figcaption{font-size:90%;color:#555}
pre{background:#f6f6f6;padding:1em;overflow:auto;font-size:85%}"""


def _img(path: Path) -> str:
    data = base64.b64encode(path.read_bytes()).decode()
    name = html.escape(path.stem.replace("_", " "))
    return (f'<figure><img alt="{name}" src="data:image/png;base64,{data}">'
            f"<figcaption>{name}</figcaption></figure>")


def write_report(run_dir: str | Path | RunDir) -> Path:
    rd = RunDir(run_dir)
    run_dir = rd.root
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>ssavae run {html.escape(run_dir.name)}"
             f"</title><style>{_CSS}</style></head><body><h1>ssavae run: {html.escape(run_dir.name)}</h1>"]
    summary = rd.read_json(rd.summary)
    if summary is not None:
        parts.append("<h2>Test-set numbers</h2><table id='metrics'><tr><th>metric</th><th>value</th></tr>")
        for k, v in summary.items():
            shown = f"{v:.4f}" if isinstance(v, float) else html.escape(str(v))
            parts.append(f"<tr><td>{html.escape(k)}</td><td class='num'>{shown}</td></tr>")
        parts.append("</table>")
    evaluation = rd.read_json(rd.evaluation)
    if evaluation is not None:
        from .registry import flatten

        metrics = flatten(evaluation)
        parts.append("<h2>Evaluation (ssavae evaluate)</h2><table id='evaluation'>"
                     "<tr><th>metric</th><th>value</th></tr>")
        for k, v in metrics.items():
            parts.append(f"<tr><td>{html.escape(k.replace('_', ' '))}</td>"
                         f"<td class='num'>{v:.4f}</td></tr>")
        parts.append("</table>")
    final = rd.final_figures()
    if final:
        parts.append("<h2>Figures</h2>" + "".join(_img(p) for p in final))
    epochs = rd.epoch_figures()
    if epochs:
        parts.append("<h2>During training</h2>" + "".join(_img(p) for p in epochs[-4:]))
    if rd.is_run():
        parts.append(f"<h2>Config</h2><pre>{html.escape(rd.config.read_text())}</pre>")
    # Marks, once the page has loaded, how many images decoded: lets a headless browser check
    # the page (tests/test_report_browser.py) without any network or extra tooling.
    parts.append("<script>window.addEventListener('load',function(){var i=document.images,n=0;"
                 "for(var k=0;k<i.length;k++){if(i[k].complete&&i[k].naturalWidth>0)n++;}"
                 "document.body.setAttribute('data-images-loaded',n);"
                 "document.body.setAttribute('data-images-total',i.length);});</script>")
    parts.append("</body></html>")
    out = rd.report
    with atomic_path(out) as tmp:
        tmp.write_text("\n".join(parts))
    return out

"""The shape of the code: no import cycle between the package's parts, short engine methods,
and the README's Python example runs as written."""
import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PKG = ROOT / "src" / "ssavae"


def _part(module: Path) -> str:
    """The part a module belongs to: its subpackage, or the top-level module's name."""
    rel = module.relative_to(PKG).parts
    return rel[0] if len(rel) > 1 else rel[0].removesuffix(".py")


def _imported_parts(module: Path) -> set[str]:
    """Parts of the package a module imports, at any depth (function-level imports count)."""
    tree = ast.parse(module.read_text())
    pkg_depth = len(module.relative_to(PKG).parts) - 1  # 0 for top-level modules
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level == 0:
                if node.module and node.module.startswith("ssavae."):
                    out.add(node.module.split(".")[1])
                continue
            up = node.level - 1  # levels above the module's own package
            if up > pkg_depth:
                continue
            base = list(module.relative_to(PKG).parts[:pkg_depth - up]) if up <= pkg_depth else []
            target = base + (node.module.split(".") if node.module else [])
            if target:
                out.add(target[0])
            else:  # "from .. import x": x is the part
                out |= {a.name for a in node.names}
        elif isinstance(node, ast.Import):
            out |= {a.name.split(".")[1] for a in node.names if a.name.startswith("ssavae.")}
    return out


def part_graph() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for module in PKG.rglob("*.py"):
        part = _part(module)
        if part in ("__init__", "__main__"):
            continue
        deps = _imported_parts(module) - {part, "__version__"}
        graph.setdefault(part, set()).update(d for d in deps if (PKG / d).exists() or (PKG / f"{d}.py").exists())
    return graph


def test_no_import_cycle_between_parts():
    graph = part_graph()
    state: dict[str, int] = {}

    def visit(node, path):
        state[node] = 1
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                raise AssertionError("import cycle: " + " -> ".join(path + [nxt]))
            if nxt not in state:
                visit(nxt, path + [nxt])
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])
    # the floors docs/design.md names
    assert "engine" not in graph["eval"] and "eval" not in graph["engine"]
    assert graph["errors"] == set() and graph["registry"] == set()
    assert not graph["models"] & {"engine", "eval", "runs", "config"}


def test_the_cycle_check_sees_a_cycle(tmp_path, monkeypatch):
    """The checker itself can fail: a cycle planted in a copy of the graph is reported."""
    graph = part_graph()
    graph["engine"].add("runs")
    monkeypatch.setattr(__import__(__name__), "part_graph", lambda: graph)
    with pytest.raises(AssertionError, match="import cycle"):
        test_no_import_cycle_between_parts()


def test_engine_methods_are_short():
    for module in (PKG / "engine").glob("*.py"):
        for node in ast.walk(ast.parse(module.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                length = node.end_lineno - node.lineno + 1
                assert length <= 40, f"{module.name}:{node.name} has {length} lines"


# every file and folder name a run directory holds; only rundir.py may spell them in code ("tensorboard",
# the folder of the TensorBoard logger, is also that logger's name in train.loggers: not checked)
RUN_NAMES = ("config.yaml", "metrics.jsonl", "checkpoints", "last.pt", "best.pt", "figures", "summary.json",
             "metrics.json", "standardization.json", "command.txt", "trackers.json", "latent_explorer.json",
             "report.html")


def run_paths_spelled(source: str) -> list[str]:
    """The run-directory names a module spells as string literals (docstrings and comments aside)."""
    tree = ast.parse(source)
    docs = {id(n.body[0].value) for n in ast.walk(tree)
            if isinstance(n, (ast.Module, ast.ClassDef, ast.FunctionDef)) and n.body
            and isinstance(n.body[0], ast.Expr) and isinstance(n.body[0].value, ast.Constant)}
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docs:
            found += [name for name in RUN_NAMES if name in node.value.split("/") or node.value == name]
    return found


def test_no_path_inside_a_run_directory_is_spelled_outside_rundir():
    spelled = {str(m.relative_to(PKG)): run_paths_spelled(m.read_text()) for m in PKG.rglob("*.py")
               if m.name != "rundir.py"}
    assert not {m: names for m, names in spelled.items() if names}
    assert run_paths_spelled((PKG / "rundir.py").read_text())  # the check sees them where they are
    assert sorted(run_paths_spelled('x = run_dir / "checkpoints" / "last.pt"')) == ["checkpoints", "last.pt"]


def test_readme_python_examples_run(tmp_path, monkeypatch):
    """Every ```python block of the README runs, on tiny synthetic data in a temp folder."""
    blocks = re.findall(r"```python\n(.*?)```", (ROOT / "README.md").read_text(), re.S)
    assert blocks, "the README has no Python example"
    monkeypatch.chdir(tmp_path)
    for code in blocks:
        # the README trains on Fashion-MNIST for real; here on tiny synthetic data
        code = code.replace('"fashion-mnist"', '"synthetic", "limit_train": 128, "limit_test": 32').replace('"labels_per_class": 100', '"labels_per_class": 8')
        code = code.replace('"latent_dim": 2}', '"latent_dim": 2, "arch": "mlp", "hidden": 16, '
                                                '"mlp_hidden": [32], "vec_epochs": 1, "decoder_epochs": 1}')
        exec(compile(code, "README.md", "exec"), {"__name__": "readme"})


def test_docs_methods_page_says_what_each_family_module_says():
    """docs/methods.md holds every family module's docstring (the equations), word for word:
    a changed equation in a module and not in the page (or the reverse) fails here."""
    import importlib

    page = (ROOT / "docs" / "methods.md").read_text()
    for name in ("ssavae", "classifier", "vae", "cvae", "completion", "vaegan", "cvae_cgan", "aae", "aae_semi", "m2",
                 "draw"):
        doc = importlib.import_module(f"ssavae.models.{name}").__doc__.strip()
        assert doc in page, f"docs/methods.md does not say what models/{name}.py says"


def test_code_and_docs_cite_only_files_in_the_repository():
    cited = re.compile(r"\b(METHODS|DESIGN|STYLE)\.md|\.\./shared|seeds 00\d")
    texts = [*PKG.rglob("*.py"), *(ROOT / "docs").glob("*.md"), ROOT / "README.md", *(ROOT / "tests").glob("*.py")]
    found = [f"{p.relative_to(ROOT)}: {m.group(0)}" for p in texts if p.name != "test_layout.py"
             for m in cited.finditer(p.read_text())]
    assert not found


def test_a_new_family_is_one_file(tmp_path, monkeypatch, capsys):
    """The example family of docs/design.md, written alone into a temporary package: importing
    it registers it, and the registry-wide tests pass on it with no other edit (its --help, the
    contract, gradient ownership, the engine's update, the inference API, the CLI end to end,
    an exact resume)."""
    import importlib

    import torch

    import test_cli
    import test_models
    from ssavae import cli
    from ssavae.config import build_run_config
    from ssavae.registry import MODELS
    from ssavae.runs import train

    from conftest import family_raw

    design = (ROOT / "docs" / "design.md").read_text()
    section = design[design.index("### Adding a family in one file"):]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    (tmp_path / "myfamilies").mkdir()
    (tmp_path / "myfamilies" / "__init__.py").write_text("")
    (tmp_path / "myfamilies" / "dae.py").write_text(code)
    monkeypatch.syspath_prepend(str(tmp_path))
    importlib.import_module("myfamilies.dae")
    try:
        with pytest.raises(SystemExit):
            cli.main(["train", "--model", "dae", "--help"])
        assert "--model.noise FLOAT" in " ".join(capsys.readouterr().out.split())
        test_models.test_contract("dae")
        test_models.test_every_parameter_gets_a_gradient_in_a_step_that_owns_it("dae")
        test_models.test_a_step_sends_gradient_only_to_its_groups_and_those_it_declares_through("dae")
        test_models.test_engine_update_changes_only_the_owner_and_its_optimizer(tmp_path / "upd", "dae")
        test_models.test_inference_api_runs_in_chunks_and_gives_what_one_pass_gives("dae")
        test_cli.test_train_then_sample_and_report(tmp_path / "cli", "dae", capsys)
        full = train(build_run_config(family_raw("dae", train={"epochs": 2})), tmp_path / "full")
        train(build_run_config(family_raw("dae", train={"epochs": 2, "max_steps": 3})), tmp_path / "cut")
        resumed = train(build_run_config(family_raw("dae", train={"epochs": 2})), tmp_path / "cut", resume=True)
        assert all(torch.equal(v, resumed.model.state_dict()[k]) for k, v in full.model.state_dict().items())
    finally:
        MODELS.remove("dae")


def test_one_version_string_named_by_the_changelog_and_a_license_file_beside_the_package():
    """The CHANGELOG's newest entry is the package's version (bumped together), the CLI reports it,
    and the LICENSE file is the license pyproject declares."""
    import re
    import subprocess
    import sys

    import ssavae

    root = Path(__file__).parents[1]
    newest = re.search(r"^## (\d+\.\d+\.\d+)", (root / "CHANGELOG.md").read_text(), re.M).group(1)
    assert newest == ssavae.__version__
    out = subprocess.run([sys.executable, "-m", "ssavae", "--version"], capture_output=True, text=True).stdout
    assert out.split() == ["ssavae", ssavae.__version__]
    assert 'license = "MIT"' in (root / "pyproject.toml").read_text()
    assert (root / "LICENSE").read_text().startswith("MIT License")

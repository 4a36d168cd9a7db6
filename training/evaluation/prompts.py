"""The Chinese prompt templates and ImageNet class names used for zero-shot classification.

The Wukong paper ensembles 80 Chinese prompt templates, but the list in its appendix is damaged.
The cn-clip package (OFA-Sys/Chinese-CLIP, MIT licence) ships the 80 Chinese ImageNet templates
and the 1,000 Chinese ImageNet class names that it derived from the Wukong authors' own
evaluation code (mindspore/models, research/mm/wukong). We read both as *data* from the installed
package's `cn_clip/eval/imagenet_zeroshot_templates.py`: the file is parsed with `ast`, never
imported, so nothing of cn-clip runs and a template is a plain format string with one `{}`.
"""

from __future__ import annotations

import ast
import importlib.util
import os
from dataclasses import dataclass
from functools import lru_cache

from filters import contract
from training.evaluation.datasets.annotations import read_lines, require_file

#: The module of the cn-clip package that holds the templates and the class names.
CN_CLIP_TEMPLATE_MODULE = "cn_clip.eval.imagenet_zeroshot_templates"
_TEMPLATES_NAME = "openai_imagenet_template"
_CLASSNAMES_NAME = "imagenet_classnames"
#: What cn-clip ships; anything else means the file changed under us.
N_TEMPLATES = 80
N_IMAGENET_CLASSES = 1000


@dataclass(frozen=True)
class PromptSet:
    """Templates (format strings with one `{}` for the class name) and, optionally, class names."""

    templates: tuple[str, ...]
    classnames: tuple[str, ...]
    source: str  # where they were read from, for the results JSON

    def __post_init__(self) -> None:
        if not self.templates:
            raise ValueError("a PromptSet needs at least one template")
        for template in self.templates:
            if template.count("{}") != 1:
                raise ValueError(f"template {template!r} must contain exactly one '{{}}'")

    def prompts_for(self, classname: str) -> list[str]:
        """Every template filled with `classname`, in template order."""
        return [template.format(classname) for template in self.templates]


def _locate_cn_clip_file() -> str:
    """Path of cn-clip's template module, found without importing the package."""
    try:
        spec = importlib.util.find_spec("cn_clip")
    except (ImportError, ValueError):
        spec = None
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError(
            "the cn-clip package is not installed; it provides the 80 Chinese prompt templates and "
            "the 1,000 Chinese ImageNet class names (pip install cn-clip)"
        )
    package_dir = list(spec.submodule_search_locations)[0]
    path = os.path.join(package_dir, "eval", "imagenet_zeroshot_templates.py")
    if not os.path.isfile(path):
        raise RuntimeError(f"cn-clip is installed but {path} is missing")
    return path


def _template_from_lambda(node: ast.expr) -> str:
    """`lambda c: f'...{c}...'` becomes `'...{}...'`; anything else is rejected."""
    if not (isinstance(node, ast.Lambda) and len(node.args.args) == 1):
        raise ValueError(f"unexpected template node: {ast.dump(node)[:80]}")
    parameter = node.args.args[0].arg
    body = node.body
    if not isinstance(body, ast.JoinedStr):
        raise ValueError("a template lambda must return an f-string")
    parts: list[str] = []
    for value in body.values:
        if isinstance(value, ast.Constant) and isinstance(value.value, str):
            # Literal braces in a template would break str.format; cn-clip has none.
            parts.append(value.value.replace("{", "{{").replace("}", "}}"))
        elif (
            isinstance(value, ast.FormattedValue)
            and isinstance(value.value, ast.Name)
            and value.value.id == parameter
            and value.format_spec is None
        ):
            parts.append("{}")
        else:
            raise ValueError("a template may only interpolate its class-name parameter")
    return "".join(parts)


@lru_cache(maxsize=1)
def _read_cn_clip_data() -> tuple[tuple[str, ...], tuple[str, ...], str]:
    path = _locate_cn_clip_file()
    with open(path, encoding="utf-8") as f:
        tree = ast.parse(f.read(), filename=path)
    found: dict[str, ast.expr] = {}
    for statement in tree.body:
        if isinstance(statement, ast.Assign) and len(statement.targets) == 1:
            target = statement.targets[0]
            if isinstance(target, ast.Name) and target.id in (_TEMPLATES_NAME, _CLASSNAMES_NAME):
                found[target.id] = statement.value
    missing = {_TEMPLATES_NAME, _CLASSNAMES_NAME} - found.keys()
    if missing:
        raise RuntimeError(f"{path} no longer defines {sorted(missing)}")
    templates = tuple(_template_from_lambda(node) for node in found[_TEMPLATES_NAME].elts)
    classnames = tuple(ast.literal_eval(found[_CLASSNAMES_NAME]))
    if len(templates) != N_TEMPLATES or len(classnames) != N_IMAGENET_CLASSES:
        raise RuntimeError(
            f"{path}: expected {N_TEMPLATES} templates and {N_IMAGENET_CLASSES} class names, "
            f"found {len(templates)} and {len(classnames)}"
        )
    return templates, classnames, path


def chinese_templates() -> tuple[str, ...]:
    """The 80 Chinese ImageNet prompt templates shipped by cn-clip, in its order."""
    return _read_cn_clip_data()[0]


def imagenet_classnames_zh() -> tuple[str, ...]:
    """The 1,000 Chinese ImageNet class names shipped by cn-clip, in the standard class order
    (the sorted WordNet ids, i.e. the order of ImageNet's sorted class folders)."""
    return _read_cn_clip_data()[1]


def default_prompt_set() -> PromptSet:
    """The paper's 80-template ensemble with the ImageNet-CN class names."""
    templates, classnames, path = _read_cn_clip_data()
    return PromptSet(templates=templates, classnames=classnames, source=f"cn-clip: {path}")


def read_classnames(path: str) -> list[str]:
    """Class names from a UTF-8 text file, one per line, in class-index order.

    Blank lines are ignored. A name may appear twice: ImageNet itself has two classes whose
    Chinese name is the same (太阳镜, "sunglass" and "sunglasses"), so a repeated name is kept and
    reported by `repeated_classnames`, not refused. A file that is not UTF-8 is an error naming it
    and the line (`EvalDataError`, a ValueError).
    """
    names = [line.strip() for line in read_lines(require_file(path, "class-name file"))]
    names = [name for name in names if name]
    if not names:
        raise ValueError(f"class-name file {path} holds no names")
    return names


def read_templates(path: str) -> list[str]:
    """Templates from a UTF-8 file, one per line, each with exactly one `{}` for the class name."""
    templates = [line.strip() for line in read_lines(require_file(path, "template file")) if line.strip()]
    if not templates:
        raise ValueError(f"template file {path} holds no templates")
    PromptSet(templates=tuple(templates), classnames=(), source=path)  # validates every template
    return templates


def repeated_classnames(classnames: list[str] | tuple[str, ...]) -> list[str]:
    """Names given to more than one class (such classes cannot be told apart by their prompts)."""
    seen: set[str] = set()
    repeated: list[str] = []
    for name in classnames:
        if name in seen and name not in repeated:
            repeated.append(name)
        seen.add(name)
    return repeated


def write_classnames(path: str, classnames: list[str] | tuple[str, ...]) -> None:
    """Write class names one per line (the format `read_classnames` reads)."""
    contract.write_bytes(path, "".join(name + "\n" for name in classnames).encode("utf-8"))

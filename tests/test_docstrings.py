"""lecturekit's docstrings as a test: no book numbering, a paper with a link for each method,
a runnable example for each sampler and trainer (issue 19, item 4).

The house style follows zuko's: prose that states the math, then an ``Example:`` block of doctests
(run by ``make unit`` and ``make test`` through ``--doctest-modules``), then a ``References:`` block
of line-block entries, each a title with authors and year on one line and its link on the next::

    References:
        | Equation of State Calculations by Fast Computing Machines (Metropolis et al., 1953)
        | https://doi.org/10.1063/1.1699114

The library must not cite the book's numbering ("Section 3.1", "the slide"): chapters move, the
library is read on its own. The checks are tested on small fake docstrings, so they are known to fail.
"""

from __future__ import annotations

import importlib
import inspect
import re
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "lecturekit"

#: the public samplers and trainers: each has its own ``Example:`` with doctests and ``References:``
SAMPLERS_AND_TRAINERS: dict[str, list[str]] = {
    "lecturekit.samplers.importance": ["importance_sample"],
    "lecturekit.samplers.mcmc": ["RandomWalkMetropolis", "MALA"],
    "lecturekit.samplers.hmc": ["HMC"],
    "lecturekit.samplers.flow_mcmc": ["FlowIndependenceMetropolis"],
    "lecturekit.samplers.adaptive": ["GlobalLocalKernel", "global_local_mcmc", "adaptive_flow_mcmc"],
    "lecturekit.samplers.neutra": ["NeuTraTarget"],
    "lecturekit.samplers.resampling": ["multinomial_resample", "systematic_resample"],
    "lecturekit.samplers.smc": [
        "annealed_importance_sampling",
        "sequential_monte_carlo",
        "flow_transport_smc",
        "train_craft",
    ],
    "lecturekit.samplers.annealing": ["annealed_reverse_kl", "annealed_data_sets"],
    "lecturekit.samplers.conditional": ["BlockFlowSampler", "train_block_flow"],
    "lecturekit.training.loop": [
        "train_flow",
        "train_max_likelihood",
        "train_reverse_kl",
        "train_boltzmann_generator",
    ],
    "lecturekit.training.tilt_start": ["train_reverse_kl_with_tilt_start"],
    "lecturekit.training.vae": ["train_vae"],
}

#: modules whose docstring carries no ``References:`` block, and why
MODULES_WITHOUT_PAPER: dict[str, str] = {
    "lecturekit": "the package's table of contents",
    "lecturekit.checks": "argument checks",
    "lecturekit.device": "devices, seeds, timers",
    "lecturekit.progress": "progress bars",
    "lecturekit.plotting": "figures",
    "lecturekit.quadrature": "grid quadrature of a 2D density",
    "lecturekit.targets": "package docstring",
    "lecturekit.targets.base": "the Target base class and Proposal protocol",
    "lecturekit.targets.counting": "a wrapper that counts evaluations",
    "lecturekit.flows": "package docstring",
    "lecturekit.flows.io": "saving and loading",
    "lecturekit.samplers": "package docstring",
    "lecturekit.training": "package docstring",
}

BOOK_NUMBERING = re.compile(r"\bSection\s+\d|\bslides?\b|\blecture'?s?\b|\bchapter\s+\d", re.IGNORECASE)


def library_sources() -> dict[str, str]:
    """``{module name: source}`` for every module of lecturekit."""
    sources = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = ["lecturekit", *path.relative_to(PACKAGE).with_suffix("").parts]
        if parts[-1] == "__init__":
            parts = parts[:-1]
        sources[".".join(parts)] = path.read_text(encoding="utf-8")
    return sources


def book_numbering(source: str) -> list[str]:
    """The lines of ``source`` that cite the book's numbering.

    >>> book_numbering('x = 1  # the slide says so\\nImportance sampling (Section 1.2).')
    ['1: x = 1  # the slide says so', '2: Importance sampling (Section 1.2).']
    >>> book_numbering('Sectional curvature, 3 chapters.')
    []
    """
    return [f"{i}: {line}" for i, line in enumerate(source.splitlines(), 1) if BOOK_NUMBERING.search(line)]


def references_problems(doc: str | None) -> list[str]:
    """What is wrong with the ``References:`` block of ``doc`` (empty when it is right).

    >>> good = "Text.\\n\\nReferences:\\n    | A Paper (Someone et al., 2019)\\n    | https://arxiv.org/abs/1234.5678\\n"
    >>> references_problems(good)
    []
    >>> references_problems("Text, no block.")
    ['no References: block']
    >>> references_problems("References:\\n    | A Paper (Someone, 2019)\\n")
    ['entry without a link on the next line: A Paper (Someone, 2019)']
    >>> references_problems("References:\\n    | A Paper\\n    | https://x.org\\n")
    ['entry without (authors, year): A Paper']
    """
    if not doc or "References:" not in doc:
        return ["no References: block"]
    block = doc.split("References:", 1)[1].splitlines()[1:]
    entries = []
    for line in block:
        stripped = line.strip()
        if not stripped:
            if entries:
                break
            continue
        if not stripped.startswith("|"):
            break
        entries.append(stripped[1:].strip())
    if not entries:
        return ["empty References: block"]
    problems = []
    for i, entry in enumerate(entries):
        if entry.startswith("https://"):
            continue
        following = entries[i + 1] if i + 1 < len(entries) else ""
        if not following.startswith("https://"):
            problems.append(f"entry without a link on the next line: {entry}")
        if not re.search(r"\([^()]*\b(1[89]|20)\d\d[a-z]?\)", entry):
            problems.append(f"entry without (authors, year): {entry}")
    return problems


def own_doc(obj: object) -> str:
    """The docstring of a function, or of a class together with its ``__init__``."""
    doc = inspect.getdoc(obj) or ""
    if inspect.isclass(obj) and "__init__" in vars(obj):
        doc += "\n" + (inspect.getdoc(vars(obj)["__init__"]) or "")
    return doc


def test_library_does_not_cite_the_book_numbering():
    found = {module: lines for module, source in library_sources().items() if (lines := book_numbering(source))}
    assert not found, "lecturekit cites the book's numbering (cite the paper, name the idea):\n" + "\n".join(
        f"{module} {line}" for module, lines in found.items() for line in lines
    )


@pytest.mark.parametrize("module_name", sorted(library_sources()))
def test_module_cites_its_papers(module_name):
    if module_name in MODULES_WITHOUT_PAPER:
        return
    problems = references_problems(importlib.import_module(module_name).__doc__)
    assert not problems, f"{module_name}: {problems}"


@pytest.mark.parametrize(
    "module_name, name", [(module, name) for module, names in SAMPLERS_AND_TRAINERS.items() for name in names]
)
def test_sampler_or_trainer_has_an_example_and_its_paper(module_name, name):
    obj = getattr(importlib.import_module(module_name), name)
    doc = own_doc(obj)
    assert "Example:" in doc and ">>>" in doc.split("Example:", 1)[1], f"{name}: no Example: block with doctests"
    problems = references_problems(doc)
    assert not problems, f"{name}: {problems}"


def test_every_public_sampler_and_trainer_is_listed():
    """A new public training function or sampler class must join the list above (and get a doctest)."""
    listed = {(module, name) for module, names in SAMPLERS_AND_TRAINERS.items() for name in names}
    missing = []
    for module_name in library_sources():
        if not module_name.startswith(("lecturekit.samplers.", "lecturekit.training.")):
            continue
        module = importlib.import_module(module_name)
        for name in getattr(module, "__all__", []):
            obj = getattr(module, name)
            is_trainer = inspect.isfunction(obj) and name.startswith("train_")
            is_sampler_class = (
                inspect.isclass(obj)
                and callable(getattr(obj, "step", None))
                and not getattr(obj, "_is_protocol", False)  # the Kernel protocol itself
            )
            if (is_trainer or is_sampler_class) and (module_name, name) not in listed:
                missing.append(f"{module_name}.{name}")
    assert not missing, f"public samplers or trainers missing from SAMPLERS_AND_TRAINERS: {missing}"

"""Collect submissions from an LMS zip or a folder into nbgrader's ``submitted/`` layout.

A submission source holds one entry per student: a folder, or a file whose name starts with
the student's id followed by ``_``, ``-``, ``.`` or a space (``alice_sampling-basics (1).ipynb``,
as LMS downloads name them). A zip is unpacked first; a single top-level folder around
everything is looked through. Inside a student's entry, the notebook for each notebook of the
release is found by its name, normalised (``sampling-basics (1).ipynb``, ``sampling-basics-Copy1.ipynb``
and ``Sampling_Basics.ipynb`` all match ``sampling-basics.ipynb``), or is the only notebook there; two
candidates for one notebook (``nb.ipynb`` and ``nb (1).ipynb``) are reported, never chosen between.
Ids are compared after Unicode NFC normalisation and case folding, and shown as on the roster.
Every student ends with a :class:`Collected` record, so the report can say why a student was
not graded instead of showing a zero.
"""

from __future__ import annotations

import re
import shutil
import unicodedata
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import nbformat

_IGNORED_PARTS = {"__MACOSX", ".ipynb_checkpoints"}


@dataclass
class Collected:
    """What was found for one student: notebooks by release name, or why there are none."""

    student: str
    notebooks: dict[str, nbformat.NotebookNode] = field(default_factory=dict)
    problem: str | None = None  # why the student cannot be graded (None: gradable)
    notes: list[str] = field(default_factory=list)


def normalised_stem(name: str) -> str:
    """``'Sampling_Basics (1).ipynb'`` -> ``'samplingbasics'``: case, copies and separators removed."""
    stem = Path(name).stem.lower()
    stem = re.sub(r"\s*\(\d+\)$", "", stem)
    stem = re.sub(r"[-_ ]?copy\d*$", "", stem)
    return re.sub(r"[^a-z0-9]", "", stem)


def unpack(source: Path, workdir: Path, roster: list[str]) -> Path:
    """The folder to read submissions from: ``source``, or ``source`` (a zip) unpacked into ``workdir``.

    A single folder around everything (not named after a student) is looked through.
    """
    if source.is_dir():
        root = source
    elif zipfile.is_zipfile(source):
        root = workdir / "unzipped"
        shutil.rmtree(root, ignore_errors=True)
        with zipfile.ZipFile(source) as archive:
            for member in archive.infolist():  # refuse paths that would leave the folder
                if not (root / member.filename).resolve().is_relative_to(root.resolve()):
                    raise ValueError(f"SUBMISSIONS: {source} holds an unsafe path {member.filename!r}")
            archive.extractall(root)
    else:
        raise ValueError(f"SUBMISSIONS: expected a folder or a .zip file, got {source}")
    entries = _entries(root)
    if len(entries) == 1 and entries[0].is_dir() and entries[0].name not in roster:
        inner = _entries(entries[0])
        names_students = any(student_of(p, roster) in roster for p in inner)
        several_entries = len([p for p in inner if p.is_dir() or p.suffix == ".ipynb"]) > 1
        if names_students or (not roster and several_entries):
            root = entries[0]  # a folder around everything, as LMS zips have
    return root


def _entries(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.name not in _IGNORED_PARTS and not p.name.startswith("."))


def same_id(text: str) -> str:
    """An id as compared: Unicode NFC (macOS zips store NFD) and case-folded."""
    return unicodedata.normalize("NFC", text).casefold()


# LMS export names. Moodle: a folder "Jane Doe_123456_assignsubmission_file_" per student.
# Canvas: files "doejane_123456_7890123_sampling-basics.ipynb" (login-ish name, Canvas user id,
# submission id, the uploaded name), with "_late" after the name when late.
_MOODLE = re.compile(r"^(?P<name>.+?)_(?P<id>\d+)_assignsubmission_[a-z]+_?$", re.IGNORECASE)
_CANVAS = re.compile(r"^(?P<login>[^_]+?)(?:_late)?_(?P<id>\d+)_(?P<submission>\d+)_(?P<file>.+)$", re.IGNORECASE)


def lms_keys(name: str) -> list[str]:
    """What an LMS export name says about its student: user id, then name or login (empty: not an LMS name)."""
    if match := _MOODLE.match(name):
        return [match["id"], match["name"]]
    if match := _CANVAS.match(name):
        return [match["id"], match["login"]]
    return []


def alias_key(text: str) -> str:
    """A roster alias as compared: :func:`same_id`, without spaces, dots, hyphens and underscores."""
    return re.sub(r"[\s._\-]", "", same_id(text))


def student_of(entry: Path, roster: list[str], aliases: dict[str, str] | None = None) -> str:
    """The student an entry belongs to: a roster id (as typed on the roster) that prefixes its
    name, compared after :func:`same_id`; else, for a Canvas or Moodle export name, the roster
    id whose alias (``aliases``: LMS user id, login, name -> roster id) it carries; else the name
    up to the first separator."""
    name = same_id(entry.name)
    for student in sorted(roster, key=len, reverse=True):
        if name == same_id(student) or re.match(re.escape(same_id(student)) + r"[_\-. ]", name):
            return student
    for key in lms_keys(entry.name):
        if alias_key(key) in (aliases or {}):
            return aliases[alias_key(key)]
    return name if entry.is_dir() else re.split(r"[_\-. ]", name, maxsplit=1)[0]


def collect(root: Path, release_notebooks: list[str], roster: list[str], aliases: dict[str, str] | None = None) -> dict[str, Collected]:
    """Every student with an entry under ``root``, with their notebooks matched to ``release_notebooks``."""
    files: dict[str, list[Path]] = {}
    for entry in _entries(root):
        student = student_of(entry, roster, aliases)
        found = [entry] if entry.is_file() else [p for p in sorted(entry.rglob("*")) if p.is_file()]
        files.setdefault(student, []).extend(p for p in found if not _IGNORED_PARTS & set(p.parts))
    return {student: _match(student, paths, release_notebooks) for student, paths in sorted(files.items())}


def _match(student: str, paths: list[Path], release_notebooks: list[str]) -> Collected:
    record = Collected(student)
    candidates = [p for p in paths if p.suffix.lower() == ".ipynb"]
    if not candidates:
        names = ", ".join(p.name for p in paths[:5]) or "nothing"
        record.problem = f"no notebook in the submission (found: {names})"
        return record
    for wanted in release_notebooks:
        exact = [p for p in candidates if p.name == wanted]
        by_name = [p for p in candidates if normalised_stem(_without_student(p.name, student)) == normalised_stem(wanted)]
        chosen = list(dict.fromkeys(exact + by_name)) or (candidates if len(candidates) == 1 and len(release_notebooks) == 1 else [])
        if len(chosen) > 1:  # never a silent choice (nb.ipynb and nb (1).ipynb: which one is final?)
            record.problem = f"several candidates: {', '.join(p.name for p in chosen)}; keep one and grade again"
            return record
        if not chosen:
            names = ", ".join(p.name for p in candidates)
            record.problem = f"cannot tell which file is {wanted} (found: {names})"
            return record
        path = chosen[0]
        try:
            record.notebooks[wanted] = nbformat.read(path, as_version=4)
        except Exception as error:  # invalid JSON, not a notebook, wrong encoding
            record.problem = f"{path.name} is not a valid notebook ({type(error).__name__}: {str(error)[:120]})"
            return record
        if path.name != wanted:
            record.notes.append(f"{path.name!r} graded as {wanted}")
    return record


def _without_student(name: str, student: str) -> str:
    if match := _CANVAS.match(name):
        return match["file"]
    return re.sub("^" + re.escape(same_id(student)) + r"[_\-. ]+", "", same_id(name))

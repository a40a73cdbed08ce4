"""Run a student's notebook in a sandbox: bubblewrap, no network, a clean environment, limits.

The grading process never runs student code. It hands the notebook to be graded (test cells
already restored from the gradebook by nbgrader's own sanitising preprocessors) on the standard
input of :func:`runner`, started by :func:`run_notebook` inside `bubblewrap
<https://github.com/containers/bubblewrap>`_ (Debian package ``bubblewrap``):

- the file system is empty but for ``/usr``, the Python installation, the virtual environment
  and the ``lecturekit`` and ``gradekit`` packages, all **read-only**, a fresh ``/proc``,
  ``/dev`` and ``/tmp``, and one **private writable scratch folder** (the kernel's working
  directory, created empty for this student and deleted afterwards). ``solutions/``, the
  gradebook, the release, ``submitted/``, ``autograded/``, other students' folders and the
  instructor's home do not exist in it. The notebook itself is never written to disk there;
- new network, PID, IPC and UTS namespaces: no network but loopback (which the kernel needs);
- ``--clearenv``: only ``PATH``, ``HOME`` (the scratch folder) and the quiet-run variables;
- as root, the student code runs as an unprivileged uid (``60000 + slot``), with no capability
  and ``no_new_privs``; otherwise in a user namespace as the instructor's uid;
- limits (``prlimit``): address space (memory), processes, the size of any one file, no core
  files; a wall-time limit for the whole notebook, enforced from outside;
- ``--die-with-parent`` and a PID namespace: when the notebook ends, or the wall-time limit
  kills the sandbox, every process started inside it is gone.

The executed notebook comes back on a pipe; the grading process copies its outputs into the
notebook nbgrader sanitised (cell sources from the gradebook, never from the sandbox) and only
then scores it, so the gradebook is written by the grading process alone, after the sandbox
exited. Where bubblewrap cannot run (not installed, or user namespaces disabled), the notebook
runs without file-system isolation (clean environment, limits and scratch folder only), and the
grading command says so loudly (:func:`sandbox_problem`).
"""

from __future__ import annotations

import ctypes
import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import nbformat
from nbformat import NotebookNode
from nbgrader.preprocessors import NbGraderPreprocessor
from traitlets import Float, Integer, Unicode

# The environment inside the sandbox: nothing from the grading shell but these.
CLEAN_ENV = {
    "LANG": "C.UTF-8",
    "MPLBACKEND": "Agg",
    "TQDM_DISABLE": "1",
    "PYDEVD_DISABLE_FILE_VALIDATION": "1",
    "OMP_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
    "PYTHONDONTWRITEBYTECODE": "1",
}

# What a status names when the executed notebook shows the student's code ran into a wall.
VIOLATIONS = {
    "File too large": "hit the file-size limit",
    "Errno 27": "hit the file-size limit",
    "MemoryError": "hit the memory limit",
    "Cannot allocate memory": "hit the memory limit",
    "can't allocate memory": "hit the memory limit",
    "Resource temporarily unavailable": "hit the process limit",
    "can't start new thread": "hit the process limit",
    "Network is unreachable": "tried the network (blocked)",
    "Temporary failure in name resolution": "tried the network (blocked)",
    "Name or service not known": "tried the network (blocked)",
    "Read-only file system": "tried to write outside its scratch folder (read-only)",
    "unable to open database file": "tried to open a database outside the sandbox",
}
OUTSIDE_NAMES = ("solutions", "gradebook.db", "submitted", "autograded", "feedback", "exercises", "reports", "/root", "/home")


@dataclass
class Limits:
    """Resource limits of one sandboxed notebook."""

    wall_s: float = 1800.0  # the whole notebook, reruns included
    memory_mb: int = 4096  # address space of each process
    processes: int = 256  # tasks (processes and threads) of the sandbox's uid
    file_mb: int = 50  # size of any one file written
    cell_timeout: int = 120
    interrupt_grace: float = 10.0
    max_output_bytes: int = 100_000


@dataclass
class Result:
    """What came back from one sandboxed notebook."""

    notebook: dict | None = None
    error: str | None = None  # why there is no executed notebook
    violations: list[str] = field(default_factory=list)
    wall_s: float = 0.0
    cpu_s: float = 0.0
    sandbox: str = "bubblewrap"


# --------------------------------------------------------------------------------------------- probe
_PROBE: dict[str, str | None] = {}


def sandbox_problem() -> str | None:
    """Why bubblewrap cannot sandbox the notebooks here (None: it can). Probed once per process."""
    if "bwrap" not in _PROBE:
        if os.environ.get("GRADEKIT_SANDBOX") == "off":
            _PROBE["bwrap"] = "GRADEKIT_SANDBOX=off"
        elif shutil.which("bwrap") is None:
            _PROBE["bwrap"] = "bubblewrap is not installed (Debian: apt-get install bubblewrap)"
        else:
            with tempfile.TemporaryDirectory() as scratch:
                command = _bwrap(Path(scratch), slot=0) + ["true"]
                probe = subprocess.run(command, capture_output=True, text=True, timeout=60)
            _PROBE["bwrap"] = None if probe.returncode == 0 else f"bubblewrap fails here ({probe.stderr.strip()[:200]}): are user namespaces disabled?"
    return _PROBE["bwrap"]


# --------------------------------------------------------------------------------------------- command
def _read_only_paths() -> list[Path]:
    """What the notebook needs: the Python installation, the venv, lecturekit and gradekit."""
    import gradekit
    import lecturekit

    paths = {Path(sys.base_prefix).resolve(), Path(sys.prefix), Path(sys.prefix).resolve()}
    paths |= {Path(gradekit.__file__).resolve().parent, Path(lecturekit.__file__).resolve().parent}
    # the interpreter the venv points at may live elsewhere (pyenv: /root/.pyenv/versions/X)
    paths.add(Path(os.path.realpath(sys.executable)).parents[1])
    return sorted(p for p in paths if not p.is_relative_to("/usr"))


def _unprivileged_uid(slot: int) -> int:
    return 60000 + slot


def _bwrap(scratch: Path, slot: int) -> list[str]:
    """The bubblewrap command line (without the program to run)."""
    root = os.geteuid() == 0
    command = ["bwrap", "--die-with-parent", "--new-session", "--clearenv",
               "--unshare-net", "--unshare-pid", "--unshare-ipc", "--unshare-uts", "--unshare-cgroup-try"]
    if not root:
        command.append("--unshare-user")
    command += ["--ro-bind", "/usr", "/usr"]
    for link in ("bin", "lib", "lib64", "sbin"):
        target = Path("/") / link
        if target.is_symlink():
            command += ["--symlink", os.readlink(target), str(target)]
        elif target.is_dir():
            command += ["--ro-bind", str(target), str(target)]
    for name in ("/etc/ld.so.cache", "/etc/alternatives", "/etc/localtime"):
        command += ["--ro-bind-try", name, name]
    command += ["--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp"]
    made: set[Path] = {Path("/"), Path("/tmp")}
    for path in [*_read_only_paths(), scratch]:
        for parent in reversed(path.parents):  # bwrap would make them 0700 (unreadable for the uid)
            if parent not in made and not parent.is_relative_to("/usr"):
                command += ["--perms", "0755", "--dir", str(parent)]
                made.add(parent)
        made.add(path)
        command += ["--bind" if path == scratch else "--ro-bind", str(path), str(path)]
    for name, value in (CLEAN_ENV | {"HOME": str(scratch), "MPLCONFIGDIR": str(scratch / ".matplotlib"),
                                     "PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin"}).items():
        command += ["--setenv", name, value]
    command += ["--chdir", str(scratch)]
    if root:  # drop to an unprivileged uid: no capability, and the process limit applies
        uid = str(_unprivileged_uid(slot))
        command += ["setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups", "--inh-caps=-all",
                    "--bounding-set=-all", "--no-new-privs"]
    return command


def _prlimit(limits: Limits) -> list[str]:
    mb = 1024 * 1024
    return ["prlimit", f"--as={limits.memory_mb * mb}", f"--fsize={limits.file_mb * mb}", f"--nproc={limits.processes}", "--core=0", "--"]


def run_notebook(nb: NotebookNode, limits: Limits, slot: int = 0, files: Path | None = None) -> Result:
    """Execute ``nb`` in a fresh sandbox; its outputs, or why there are none, and the time it took.

    ``files``: a folder whose files (not notebooks) are copied into the scratch folder first
    (what the student handed in besides the notebook). ``slot``: which of the parallel jobs
    (as root, each slot runs as its own uid, so that one student's processes never count
    against another's limit).
    """
    problem = sandbox_problem()
    result = Result(sandbox="bubblewrap" if problem is None else f"NONE ({problem})")
    scratch = Path(tempfile.mkdtemp(prefix="gradekit-scratch-"))
    try:
        os.chmod(scratch, 0o700)
        if files is not None and files.is_dir():
            for path in files.iterdir():
                if path.is_file() and path.suffix != ".ipynb":
                    shutil.copy2(path, scratch / path.name)
        if os.geteuid() == 0 and problem is None:
            for path in [scratch, *scratch.rglob("*")]:
                os.chown(path, _unprivileged_uid(slot), _unprivileged_uid(slot))
        runner = [sys.executable, "-m", "gradekit.sandbox", "--timeout", str(limits.cell_timeout),
                  "--interrupt-grace", str(limits.interrupt_grace), "--max-output-bytes", str(limits.max_output_bytes)]
        if problem is None:
            command, env = _prlimit(limits) + _bwrap(scratch, slot) + runner, {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}
        else:  # no file-system isolation: still a clean environment, limits and a scratch folder
            command = _prlimit(limits) + runner
            env = CLEAN_ENV | {"HOME": str(scratch), "MPLCONFIGDIR": str(scratch / ".matplotlib"), "PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin"}
        _execute(command, env, scratch, nbformat.writes(nb).encode(), limits, result)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    if result.notebook is not None:
        result.violations = violations(nbformat.from_dict(result.notebook)) + result.violations
    return result


def _execute(command: list[str], env: dict[str, str], cwd: Path, stdin: bytes, limits: Limits, result: Result) -> None:
    started = time.monotonic()
    with tempfile.TemporaryFile() as out:
        process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=out, stderr=subprocess.DEVNULL, cwd=cwd, env=env, start_new_session=True)
        timed_out = threading.Event()

        def kill() -> None:
            timed_out.set()
            with _suppress():
                os.killpg(process.pid, signal.SIGKILL)

        timer = threading.Timer(limits.wall_s, kill)
        timer.start()
        try:
            with _suppress():
                process.stdin.write(stdin)
            with _suppress():
                process.stdin.close()
            _, status, usage = os.wait4(process.pid, 0)
            process.returncode = os.waitstatus_to_exitcode(status)
        finally:
            timer.cancel()
            with _suppress():  # whatever is left of the process group (the fallback has no PID namespace)
                os.killpg(process.pid, signal.SIGKILL)
        result.wall_s = time.monotonic() - started
        result.cpu_s = usage.ru_utime + usage.ru_stime
        if timed_out.is_set():
            result.error = f"hit the wall-time limit ({limits.wall_s:g} s for the whole notebook)"
            return
        out.seek(0)
        raw = out.read()
    try:
        reply = json.loads(raw)
    except ValueError:
        result.error = f"the sandbox returned no notebook (exit status {process.returncode})"
        return
    result.notebook, result.error = reply.get("notebook"), reply.get("error")
    result.cpu_s = max(result.cpu_s, float(reply.get("cpu_s", 0.0)))  # the runner's count: the kernel's CPU included
    result.violations += reply.get("violations", [])


class _suppress:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: Any) -> bool:
        return exc[0] is not None and issubclass(exc[0], (OSError, ValueError))


def violations(nb: NotebookNode) -> list[str]:
    """What the outputs show the code ran into: limits, the network, the read-only file system, paths outside."""
    found: list[str] = []
    for cell in nb.cells:
        for output in cell.get("outputs", []):
            text = json.dumps(output.get("text", "")) + output.get("ename", "") + output.get("evalue", "") + json.dumps(output.get("data", {}).get("text/plain", ""))
            for needle, what in VIOLATIONS.items():
                if needle in text and what not in found:
                    found.append(what)
            if output.get("ename") in ("FileNotFoundError", "PermissionError") and any(n in output.get("evalue", "") for n in OUTSIDE_NAMES):
                what = "tried to reach a file outside the sandbox (not there)"
                if what not in found:
                    found.append(what)
    return found


# --------------------------------------------------------------------------------------------- inside
def runner(argv: list[str] | None = None) -> int:
    """Inside the sandbox: read a notebook on stdin, execute it, write ``{"notebook": ...}`` on stdout."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m gradekit.sandbox")
    parser.add_argument("--timeout", type=int, default=120)
    parser.add_argument("--interrupt-grace", type=float, default=10.0)
    parser.add_argument("--max-output-bytes", type=int, default=100_000)
    args = parser.parse_args(argv)
    with _suppress():  # the kernel (same uid) must not open this process's memory or file descriptors
        ctypes.CDLL(None).prctl(4, 0, 0, 0, 0)  # PR_SET_DUMPABLE = 4
    reply = os.fdopen(os.dup(1), "w")  # a private copy (close-on-exec: the kernel does not get it)
    null = os.open(os.devnull, os.O_RDWR)
    notebook = nbformat.reads(sys.stdin.read(), as_version=4)
    for fd in (0, 1, 2):  # the kernel inherits these: nothing it writes reaches the grading process
        os.dup2(null, fd)
    answer: dict[str, Any] = {"notebook": None, "error": None, "violations": []}
    try:
        from nbgrader.preprocessors.execute import UnresponsiveKernelError

        from gradekit.execute import LimitOutputBytes, ResilientExecute

        executor = ResilientExecute(timeout=args.timeout, interrupt_grace=args.interrupt_grace)
        try:
            executed, _ = executor.preprocess(notebook, {"metadata": {"path": os.getcwd()}})
        except UnresponsiveKernelError as error:
            answer["error"] = f"the kernel could not finish the notebook: {error}"
        else:
            LimitOutputBytes(max_bytes=args.max_output_bytes).preprocess(executed, {})
            answer["notebook"] = executed
        usage = [resource.getrusage(who) for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)]
        answer["cpu_s"] = sum(u.ru_utime + u.ru_stime for u in usage)
        left = _other_processes()
        if left:
            answer["violations"].append(f"left {len(left)} background process(es) running, killed: {'; '.join(left)[:200]}")
    except Exception as error:  # noqa: BLE001  (reported, never hidden)
        answer["error"] = f"the sandbox runner failed: {type(error).__name__}: {error}"
    reply.write(json.dumps(answer))
    reply.close()
    return 0


def _other_processes() -> list[str]:
    """Processes in this PID namespace other than this one, its ancestors and the (dead) kernel."""
    mine = {os.getpid(), os.getppid(), 1}
    left = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and int(entry.name) not in mine:
            try:
                state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
                if state == "Z":
                    continue
                left.append((entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()[:80])
            except OSError:
                continue
    return left


# --------------------------------------------------------------------------------------------- nbgrader
class SandboxedExecute(NbGraderPreprocessor):
    """nbgrader's execution step, in the sandbox: replaces ``Execute`` in ``Autograde.autograde_preprocessors``.

    When the grading command executed this notebook beforehand (in parallel), ``results`` names
    the folder with its result (``<student>/<notebook>.json``) and nothing runs again; else
    (plain ``nbgrader autograde``) the notebook is executed in the sandbox here. Either way the
    outputs are copied into the notebook nbgrader sanitised; a cell whose source differs
    (except a cell disabled by :class:`gradekit.execute.ResilientExecute`) fails the notebook.
    """

    results = Unicode("", help="Folder with results of notebooks executed beforehand by the grading command.").tag(config=True)
    timeout = Integer(120, help="Seconds per cell.").tag(config=True)
    interrupt_grace = Float(10.0, help="Seconds a timed-out cell gets to stop after the interrupt.").tag(config=True)
    wall_limit = Float(1800.0, help="Seconds for the whole notebook.").tag(config=True)
    memory_mb = Integer(4096, help="Address space of each process in the sandbox, MB.").tag(config=True)

    def preprocess(self, nb: NotebookNode, resources: Any) -> tuple[NotebookNode, Any]:
        info = resources["nbgrader"]
        path = Path(self.results) / info["student"] / f"{info['notebook']}.json" if self.results else None
        if path is not None and path.is_file():
            result = Result(**json.loads(path.read_text()))
        else:
            limits = Limits(wall_s=self.wall_limit, memory_mb=self.memory_mb, cell_timeout=self.timeout, interrupt_grace=self.interrupt_grace)
            result = run_notebook(nb, limits)
        if result.error or result.notebook is None:
            raise SandboxError(result.error or "no notebook")
        return merge(nb, nbformat.from_dict(result.notebook), result), resources


class SandboxError(Exception):
    """The sandbox did not return an executed notebook."""


def merge(trusted: NotebookNode, executed: NotebookNode, result: Result) -> NotebookNode:
    """``trusted`` with the outputs of ``executed`` (same cells, sources checked); metadata for the report."""
    disabled = {d["index"]: d for d in executed.metadata.get("gradekit", {}).get("disabled_cells", [])}
    if len(trusted.cells) != len(executed.cells):
        raise SandboxError("the executed notebook does not have the cells that were sent")
    from gradekit.execute import DISABLED_MARK

    for index, (cell, ran) in enumerate(zip(trusted.cells, executed.cells)):
        if index in disabled and ran.source.startswith(DISABLED_MARK):
            cell.source = ran.source
        elif cell.source != ran.source or cell.cell_type != ran.cell_type:
            raise SandboxError(f"cell {index} came back changed from the sandbox")
        if cell.cell_type == "code":
            cell.outputs = ran.get("outputs", [])
            cell.execution_count = ran.get("execution_count")
    meta = trusted.metadata.setdefault("gradekit", {})
    if disabled:
        meta["disabled_cells"] = list(disabled.values())
    meta["sandbox"] = {"violations": result.violations, "wall_s": result.wall_s, "cpu_s": result.cpu_s, "sandbox": result.sandbox}
    if "language_info" in executed.metadata:
        trusted.metadata["language_info"] = executed.metadata["language_info"]
    return trusted


def result_dict(result: Result) -> dict:
    return asdict(result)


if __name__ == "__main__":
    sys.exit(runner())

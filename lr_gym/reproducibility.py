"""Bit-reproducible episodes on CPU: a pinned torch thread count and deterministic kernels.

A float reduction (a convolution's or GRU's gradient, a matmul) sums in an order that
depends on how many threads split it, and training amplifies that last-bit difference
into a different run (chaotically near divergence). A process's default thread count
comes from the machine and its load, so an unpinned episode depends on where and when
it ran. Every episode therefore runs its torch work (building the data, initialising
the model, training, evaluating) under :func:`pinned`: an explicit thread count
(:attr:`lr_gym.config.EnvConfig.torch_threads`, default :data:`DEFAULT_TORCH_THREADS`:
parallelism comes from running episodes side by side) and, on CPU, torch's
deterministic algorithms. The same seed, actions and torch version then give the same
episode bit for bit on CPUs of the same instruction set, in any process.

:func:`settings` is what result files and run folders record about it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

DEFAULT_TORCH_THREADS = 1
"""Torch threads of one episode unless the env says otherwise."""


@contextlib.contextmanager
def pinned(threads: int | None, deterministic: bool = True) -> Iterator[None]:
    """Runs the block with ``threads`` torch threads and deterministic kernels.

    The process's own settings come back afterwards, so an env can pin its episode
    inside a caller's process without changing the caller's arithmetic. Nested pins
    with the same values cost a few function calls.

    Args:
        threads: Intra-op threads (>= 1); ``None`` keeps the process's setting, which
            makes the block depend on the machine.
        deterministic: Turn on ``torch.use_deterministic_algorithms`` (warn-only: an op
            without a deterministic kernel warns instead of failing). For CPU work: CUDA
            needs more than this (cuBLAS workspace settings), so GPU runs pass False.
    """
    import torch  # here, not at module level: `import lr_gym` stays torch-free

    before = torch.get_num_threads()
    det_before = (torch.are_deterministic_algorithms_enabled(),
                  torch.is_deterministic_algorithms_warn_only_enabled())
    set_threads = threads is not None and threads != before
    set_det = deterministic and det_before != (True, True)
    if set_threads:
        torch.set_num_threads(threads)
    if set_det:
        torch.use_deterministic_algorithms(True, warn_only=True)
    try:
        yield
    finally:
        if set_det:
            torch.use_deterministic_algorithms(det_before[0], warn_only=det_before[1])
        if set_threads:
            torch.set_num_threads(before)


def torch_version() -> str:
    """The torch version: results are bit-reproducible within one."""
    import torch

    return str(torch.__version__)


def settings(threads: int | None = DEFAULT_TORCH_THREADS,
             deterministic: bool = True) -> dict[str, Any]:
    """What decides an episode's arithmetic besides its seed, for result files.

    Args:
        threads: The episodes' pinned thread count (``None``: unpinned).
        deterministic: Whether the episodes ran with deterministic algorithms.

    Returns:
        The torch version, the pinned thread count, the determinism flags and the
        CPU's instruction-set level, as plain JSON values.
    """
    import torch

    return {
        "torch": torch_version(),
        "torch_threads": threads,
        "deterministic_algorithms": bool(deterministic),
        "cudnn_deterministic": bool(torch.backends.cudnn.deterministic),
        "cudnn_benchmark": bool(torch.backends.cudnn.benchmark),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
    }

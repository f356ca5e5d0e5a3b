"""Sampling steps replayed from CUDA graphs: on a GPU a decoding step of a small LSTM is
dozens of tiny kernels, and launching them costs more than running them.

``GraphedIncremental`` is ``IncrementalGenerator`` whose ``step`` is captured once per
batch size and then replayed: one launch per step instead of one per kernel. Batch sizes
are rounded up to a power of two (the rows past the batch are padding, their results
dropped), so a batch that shrinks as pieces finish needs at most log2(n) + 1 captures.
The logits are those of the plain step, up to float rounding. Turn it on with
``Sampler.from_pretrained(..., device="cuda", cuda_graphs=True)`` or
``musegan generate --device cuda --cuda-graphs``; each capture costs a few milliseconds
at start-up.
"""

from __future__ import annotations

import torch

from musegan.models import IncrementalGenerator


class GraphedIncremental(IncrementalGenerator):
    """``IncrementalGenerator`` with ``step`` replayed from CUDA graphs (CUDA only)."""

    def __init__(self, generator, theme: torch.Tensor):
        super().__init__(generator, theme)
        if theme.device.type != "cuda":
            raise ValueError("CUDA graphs need a CUDA device")
        self._graphs: dict[int, tuple] = {}

    def step(self, token: torch.Tensor) -> torch.Tensor:
        n = token.size(0)
        size = 1 << (n - 1).bit_length()
        graph, token_in, rows_in, h_in, c_in, logits, h_out, c_out = (
            self._graphs.get(size) or self._capture(size))
        token_in[:n].copy_(token)
        rows_in[:n].copy_(self.theme_rows)
        for buffer, value in zip(h_in + c_in, self.h + self.c, strict=True):
            buffer[:n].copy_(value)
        graph.replay()
        # Copies: the graph's outputs are overwritten by the next replay.
        self.h = [h[:n].clone() for h in h_out]
        self.c = [c[:n].clone() for c in c_out]
        return logits[:n].clone()

    def _capture(self, size: int) -> tuple:
        with torch.cuda.device(self.theme_rows.device):  # streams and graphs are per device
            return self._capture_here(size)

    def _capture_here(self, size: int) -> tuple:
        rows = self.theme_rows
        token_in = torch.zeros(size, dtype=torch.long, device=rows.device)
        rows_in = torch.zeros(size, rows.size(1), dtype=rows.dtype, device=rows.device)
        h_in = [torch.zeros(size, h.size(1), dtype=h.dtype, device=h.device) for h in self.h]
        c_in = [torch.zeros_like(h) for h in h_in]
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):  # warm-up, as torch.cuda.graph asks
            for _ in range(3):
                self._advance(token_in, rows_in, h_in, c_in)
        torch.cuda.current_stream().wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            logits, h_out, c_out = self._advance(token_in, rows_in, h_in, c_in)
        self._graphs[size] = (graph, token_in, rows_in, h_in, c_in, logits, h_out, c_out)
        return self._graphs[size]

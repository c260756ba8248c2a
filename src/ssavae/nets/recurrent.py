"""The recurrent parts of DRAW (Gregor et al. 2015): the reader-encoder and the decoder-writer,
one step of the recurrence each (the model runs the loop, ``models/draw.py``)."""
from __future__ import annotations

import math
from typing import Optional, Sequence

import torch
import torch.nn as nn

from .attention import GaussianAttention


class DRAWEncoder(nn.Module):
    """DRAW's reading half: read(x, x^, h_dec) -> LSTM_enc -> (mu_t, logvar_t); ``read_n``
    None reads both images whole."""

    def __init__(self, shape: Sequence[int], latent_dim: int, hidden: int, read_n: Optional[int],
                 cond_dim: int = 0):
        super().__init__()
        self.shape = tuple(shape)
        c = shape[0] if len(shape) == 3 else 1
        if read_n:
            self.attention = GaussianAttention(hidden, shape, read_n)
            read_dim = 2 * c * read_n ** 2
        else:
            self.attention = None
            read_dim = 2 * math.prod(shape)
        self.rnn = nn.LSTMCell(read_dim + hidden + cond_dim, hidden)
        self.mu = nn.Linear(hidden, latent_dim)
        self.logvar = nn.Linear(hidden, latent_dim)

    def read(self, x, x_hat, h_dec):
        if self.attention is None:
            return torch.cat([x.flatten(1), x_hat.flatten(1)], 1)
        return self.attention.read([x, x_hat], h_dec)

    def forward(self, x, x_hat, h_dec, state, cond=None):
        inp = [self.read(x, x_hat, h_dec), h_dec] + ([cond] if cond is not None else [])
        h, c = self.rnn(torch.cat(inp, 1), state)
        return self.mu(h), self.logvar(h).clamp(-12.0, 8.0), (h, c)


class DRAWDecoder(nn.Module):
    """DRAW's writing half: LSTM_dec(z_t [, cond]) -> write(h_dec), added to the canvas;
    ``write_n`` None writes a whole image."""

    def __init__(self, shape: Sequence[int], latent_dim: int, hidden: int, write_n: Optional[int],
                 cond_dim: int = 0):
        super().__init__()
        self.shape = tuple(shape)
        self.rnn = nn.LSTMCell(latent_dim + cond_dim, hidden)
        if write_n:
            self.attention = GaussianAttention(hidden, shape, write_n)
            self.patch = nn.Linear(hidden, shape[0] * write_n ** 2)
        else:
            self.attention = None
            self.patch = nn.Linear(hidden, math.prod(shape))

    def forward(self, z, state, cond=None):
        """(what this step adds to the canvas (B, *shape), the new LSTM state)."""
        h, c = self.rnn(torch.cat([z, cond], 1) if cond is not None else z, state)
        w = self.patch(h)
        if self.attention is None:
            return w.view(-1, *self.shape), (h, c)
        n = self.attention.n
        return self.attention.write(w.view(-1, self.shape[0], n, n), h), (h, c)

"""The networks: plain ``nn.Module``s that know nothing of Lightning, files or the CLI.

How themes get their meaning
----------------------------
A *theme* is a small vector (``theme_dim``) that conditions a whole piece. Three parts
make it mean something:

1. ``ThemeEncoder`` reads a real sequence (a bidirectional LSTM, masked mean over time)
   and summarises it as a theme, layer-normalised (zero mean, unit variance over its
   numbers), so themes live on one sphere where nothing saturates.
2. ``Generator`` learns to write that same sequence back from its theme (maximum
   likelihood, teacher forcing). Gradients flow into the encoder, so the theme carries
   what helps predict the piece: key, meter, rhythm, register. Two training tricks keep it
   meaningful: Gaussian noise on the theme keeps nearby themes meaning nearby music, and
   dropping some input tokens (Bowman et al. 2016) stops a strong LSTM from ignoring it.
   By default training also asks theme numbers 0-5 to order pieces by density, register, range,
   syncopation, leaps and pitch-class entropy (``musegan.regularize``), so that those
   properties have a direction to steer along.
3. A small GAN learns where real themes live. ``MappingNetwork`` turns noise z ~ N(0, I)
   into a theme; ``ThemeCritic`` (spectrally normalised) tells mapped themes from encoded
   real ones. Sampled themes therefore land where the generator has learned to write
   music, and the generator is never asked to write from a theme unlike any real one.

We chose this over an InfoGAN-style recovery head because the encoder gives every real
piece a theme. That is what lets users take the theme of an existing piece and write
variations on it. A VAE prior would also work, but it ties the theme space to a
Gaussian and tends to blur it; the theme GAN matches the real themes' shape.

The sequence GAN (``Discriminator``) then trains the generator on its own samples. The
generator writes from sampled themes with Gumbel-softmax relaxed tokens, and a
bidirectional LSTM judges each step and the whole sequence (C-RNN-GAN, RelGAN).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm

LSTMState = tuple[torch.Tensor, torch.Tensor]  # (h, c), each (layers, B, H)


TOKENIZER_FIELDS = ("vocab_size", "pad_id")  # given by the tokenizer, not chosen by a user


@dataclass
class ModelConfig:
    """Sizes of the networks. ``vocab_size`` and ``pad_id`` come from the tokenizer
    (``for_tokenizer``); every other field is a setting (``model.*`` in a run's config)."""

    vocab_size: int = 0  # 0 until ``for_tokenizer`` fills it in
    pad_id: int = 0
    embed_dim: int = 256  # token embedding; the vocabulary is ~600 tokens
    hidden_dim: int = 512  # generator LSTM width: 2 x 512 is ~4M parameters, fast on a CPU
    num_layers: int = 2  # one layer for local grammar, one for phrase structure
    theme_dim: int = 64  # small enough for a small GAN to learn its distribution
    noise_dim: int = 64  # the GAN's input z ~ N(0, I)
    mapping_layers: int = 3  # depth of z -> theme (StyleGAN's mapping idea, shallower)
    mapping_width: int = 256
    # Theme encoder BiLSTM width per direction: a summary needs little width (~5 % of the
    # cost); 256 made MLE steps ~40 % slower.
    encoder_dim: int = 128
    disc_embed_dim: int = 128
    disc_hidden_dim: int = 256  # per direction
    dropout: float = 0.1
    # How themes are bounded. "layernorm": on a sphere, no saturation. "tanh": in [-1, 1],
    # used by the first models; its saturation let the theme GAN collapse to one corner.
    theme_norm: str = "layernorm"

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def sizes(self) -> dict:
        """The fields a user chooses: ``to_dict()`` less what the tokenizer gives."""
        return {k: v for k, v in self.to_dict().items() if k not in TOKENIZER_FIELDS}

    @classmethod
    def from_dict(cls, data: dict) -> ModelConfig:
        """Rebuild from ``to_dict()`` or ``sizes()``; configs written before
        ``theme_norm`` existed used tanh."""
        names = {f.name for f in dataclasses.fields(cls)}
        data = {"theme_norm": "tanh", **data}
        return cls(**{k: v for k, v in data.items() if k in names})

    def for_tokenizer(self, tokenizer) -> ModelConfig:
        """This config for a tokenizer's vocabulary (its size and padding id)."""
        return dataclasses.replace(self, vocab_size=len(tokenizer), pad_id=tokenizer.PAD)


def theme_bound(config: ModelConfig) -> nn.Module:
    """The last layer of anything that outputs a theme."""
    if config.theme_norm == "layernorm":
        return nn.LayerNorm(config.theme_dim, elementwise_affine=False)
    if config.theme_norm == "tanh":
        return nn.Tanh()
    raise ValueError(f"unknown theme_norm {config.theme_norm!r} (layernorm or tanh)")


def masked_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean over time of x (B, S, ...) where mask (B, S) is true."""
    mask = mask.to(x.dtype)
    while mask.dim() < x.dim():
        mask = mask.unsqueeze(-1)
    return (x * mask).sum(1) / mask.sum(1).clamp(min=1)


class ThemeEncoder(nn.Module):
    """Real sequence (B, S) -> its theme (B, theme_dim)."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.pad_id = config.pad_id
        self.embed = nn.Embedding(config.vocab_size, config.embed_dim, padding_idx=config.pad_id)
        self.lstm = nn.LSTM(config.embed_dim, config.encoder_dim, batch_first=True,
                            bidirectional=True)
        self.out = nn.Linear(2 * config.encoder_dim, config.theme_dim)
        self.bound = theme_bound(config)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        hidden, _ = self.lstm(self.embed(tokens))  # (B, S, 2 * encoder_dim)
        return self.bound(self.out(masked_mean(hidden, tokens != self.pad_id)))


SAME_ROWS = 64  # rows of the mapping's products when sampling themes


class MappingNetwork(nn.Module):
    """Noise z (B, noise_dim) -> theme (B, theme_dim)."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        layers, width = [], config.noise_dim
        for _ in range(config.mapping_layers - 1):
            layers += [nn.Linear(width, config.mapping_width), nn.LeakyReLU(0.2)]
            width = config.mapping_width
        layers.append(nn.Linear(width, config.theme_dim))
        self.net = nn.Sequential(*layers)
        self.bound = theme_bound(config)
        self.noise_dim = config.noise_dim

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.bound(self.net(z))

    def sample(self, n: int, generator: torch.Generator | None = None,
               device: torch.device | str | None = None) -> torch.Tensor:
        """n themes from fresh noise."""
        device = device or next(self.parameters()).device
        # Drawn 16 numbers a row at a time: a CPU's randn redraws the last 16 numbers of a
        # tensor whose size is not a multiple of 16, so theme i would depend on n.
        width = -(-self.noise_dim // 16) * 16
        z = torch.randn(n, width, generator=generator, device=device)[:, :self.noise_dim]
        if torch.is_grad_enabled():  # training: as it comes
            return self(z)
        # Sampling: in products of SAME_ROWS rows each, so that a theme's last bits do not
        # change with n (a CPU rounds a product of a few rows otherwise than of many).
        padded = torch.cat([z, z.new_zeros(-n % SAME_ROWS, self.noise_dim)])
        return torch.cat([self(rows) for rows in padded.split(SAME_ROWS)])[:n]


class ThemeCritic(nn.Module):
    """Theme (B, theme_dim) -> realness score (B,). Spectral norm keeps it Lipschitz."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        width = config.mapping_width
        self.net = nn.Sequential(
            spectral_norm(nn.Linear(config.theme_dim, width)), nn.LeakyReLU(0.2),
            spectral_norm(nn.Linear(width, width)), nn.LeakyReLU(0.2),
            spectral_norm(nn.Linear(width, 1)),
        )

    def forward(self, theme: torch.Tensor) -> torch.Tensor:
        return self.net(theme).squeeze(-1)


class Generator(nn.Module):
    """An LSTM language model over tokens that carries a theme through the whole piece.

    The theme sets the LSTM's initial state and is concatenated to the input at every
    step, so a long piece cannot forget it.
    """

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config
        self.embed = nn.Embedding(config.vocab_size, config.embed_dim, padding_idx=config.pad_id)
        self.init_state = nn.Linear(config.theme_dim, 2 * config.num_layers * config.hidden_dim)
        self.lstm = nn.LSTM(config.embed_dim + config.theme_dim, config.hidden_dim,
                            num_layers=config.num_layers, batch_first=True,
                            dropout=config.dropout if config.num_layers > 1 else 0.0)
        self.drop = nn.Dropout(config.dropout)
        self.head = nn.Linear(config.hidden_dim, config.vocab_size)
        self.cuda_graphs = False  # sampling steps from CUDA graphs (a setting, not a weight)

    def initial_state(self, theme: torch.Tensor) -> LSTMState:
        """The LSTM state (h, c) a piece with this theme starts from."""
        layers, hidden = self.config.num_layers, self.config.hidden_dim
        state = torch.tanh(self.init_state(theme))  # (B, 2 * layers * hidden)
        state = state.view(-1, 2, layers, hidden).permute(1, 2, 0, 3)  # (2, layers, B, hidden)
        return state[0].contiguous(), state[1].contiguous()

    def forward(self, tokens: torch.Tensor, theme: torch.Tensor,
                state: LSTMState | None = None) -> tuple[torch.Tensor, LSTMState]:
        """Teacher-forced logits: tokens (B, S), theme (B, T) -> (B, S, V) and the final state."""
        out, state = self.hidden(tokens, theme, state)
        return self.head(self.drop(out)), state

    def hidden(self, tokens: torch.Tensor, theme: torch.Tensor,
               state: LSTMState | None = None) -> tuple[torch.Tensor, LSTMState]:
        """Teacher-forced top-layer outputs (B, S, H), before the head, and the final state."""
        if state is None:
            state = self.initial_state(theme)
        x = self.embed(tokens)  # (B, S, E)
        x = torch.cat([x, theme.unsqueeze(1).expand(-1, x.size(1), -1).to(x.dtype)], dim=-1)
        return self.lstm(self.drop(x), state)  # (B, S, H)

    def step(self, token: torch.Tensor, theme: torch.Tensor,
             state: LSTMState) -> tuple[torch.Tensor, LSTMState]:
        """One step of sampling: token (B,) -> logits (B, V) and the next state.

        Gives the same logits as ``forward`` over the whole sequence (in eval mode).
        """
        logits, state = self.forward(token.unsqueeze(1), theme, state)
        return logits.squeeze(1), state

    def incremental(self, theme: torch.Tensor) -> IncrementalGenerator:
        """A fast step-by-step runner for sampling (eval mode, no gradients); its steps are
        replayed from CUDA graphs when ``cuda_graphs`` is set (``Sampler(cuda_graphs=True)``)."""
        if self.cuda_graphs:
            from musegan.graphs import GraphedIncremental

            return GraphedIncremental(self, theme)
        return IncrementalGenerator(self, theme)

    def _cells(self) -> list:
        """The LSTM's per-layer weights, for ``torch.lstm_cell``: a rollout step then costs
        a few fused ops per layer, not a whole ``nn.LSTM`` call (~100 ops per token)."""
        lstm = self.lstm
        return [(getattr(lstm, f"weight_ih_l{k}"), getattr(lstm, f"weight_hh_l{k}"),
                 getattr(lstm, f"bias_ih_l{k}"), getattr(lstm, f"bias_hh_l{k}"))
                for k in range(self.config.num_layers)]

    def _cell_step(self, token: torch.Tensor, theme: torch.Tensor, layers: list,
                   state: tuple[list, list], masks: list, step: int) -> torch.Tensor:
        """Step ``step`` from ``token`` (B,): updates ``state`` (per-layer h and c lists)
        in place and returns the top layer's output (B, H). The same computation as
        ``hidden`` over one token, with the rollout's dropout ``masks``
        (``_dropout_masks``: the input's, then one before each layer above)."""
        hs, cs = state
        x = torch.cat([self.embed(token), theme.to(self.embed.weight.dtype)], -1)
        for k, weights in enumerate(layers):
            x = _dropped(x, masks[k], step)
            hs[k], cs[k] = torch.lstm_cell(x, (hs[k], cs[k]), *weights)
            x = hs[k]
        return x

    def _dropout_masks(self, length: int, batch: int, device) -> list:
        """Every step's dropout masks for a rollout of ``length`` tokens, drawn at once:
        per site a (length, B, width) tensor of 0 and 1 / (1 - p), or None where nothing
        is dropped (eval mode, p = 0). The sites: the first layer's input, each layer's
        input above it, the head's input. One random draw per site, not one ``dropout``
        call per token and site: 7 % fewer instructions for a tiny rollout."""
        config = self.config
        rates = [self.drop.p] + [self.lstm.dropout] * (config.num_layers - 1) + [self.drop.p]
        widths = ([config.embed_dim + config.theme_dim]
                  + [config.hidden_dim] * config.num_layers)
        dtype = self.embed.weight.dtype
        return [torch.empty(length, batch, width, device=device, dtype=dtype)
                .bernoulli_(1 - p).div_(1 - p) if self.training and p > 0 else None
                for p, width in zip(rates, widths, strict=True)]

    def _start(self, theme: torch.Tensor):
        h, c = self.initial_state(theme)
        return list(h.unbind(0)), list(c.unbind(0))

    def free_run(self, theme: torch.Tensor, length: int,
                 start: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Write ``length`` tokens after ``start`` (B,), each sampled from the model.

        Returns the ids (B, length) and the top-layer outputs that chose them
        (B, length, H). The samples are discrete, but the outputs keep their gradients
        through the recurrence (Professor Forcing judges them).
        """
        layers, state = self._cells(), self._start(theme)
        masks = self._dropout_masks(length, start.size(0), theme.device)
        token, tokens, outputs = start, [], []
        for step in range(length):
            out = self._cell_step(token, theme, layers, state, masks, step)
            with torch.no_grad():  # the sample takes no gradient: no graph for the head
                logits = self.head(_dropped(out, masks[-1], step))
                token = torch.multinomial(F.softmax(logits.float(), -1), 1).squeeze(1)
            tokens.append(token)
            outputs.append(out)
        return torch.stack(tokens, 1), torch.stack(outputs, 1)

    def gumbel_rollout(self, theme: torch.Tensor, length: int, tau: float,
                       start: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Write ``length`` tokens after ``start`` (B,) with Gumbel-softmax relaxation.

        Returns hard ids (B, length) and their soft one-hots (B, length, V); gradients
        flow through the soft one-hots (RelGAN). Each next input is the hard sample, the
        argmax of (logits + Gumbel noise) / tau, so the loop needs only the argmax: it
        runs the head without recording gradients, and the soft one-hots, the same
        values, come from one head pass and one softmax over all steps after it (a
        backward pass of one matrix product and one softmax, not ``length`` of each).
        """
        layers, state = self._cells(), self._start(theme)
        batch, vocab = start.size(0), self.config.vocab_size
        masks = self._dropout_masks(length, batch, theme.device)
        # Gumbel(0, 1) noise, -log(-log U), over tau: (logits + noise) / tau is then one
        # op. (From uniforms: a third of the time of exponential_'s -log E on a CPU.)
        noise = torch.rand(batch, length, vocab, device=theme.device).log_().neg_().log_()
        noise = noise.div_(-tau)
        token, hard, outputs = start, [], []
        for step in range(length):
            out = self._cell_step(token, theme, layers, state, masks, step)
            with torch.no_grad():
                logits = self.head(_dropped(out, masks[-1], step)).float()
                token = torch.add(noise[:, step], logits, alpha=1 / tau).argmax(-1)
            hard.append(token)
            outputs.append(out)
        out = torch.stack(outputs, 1)  # (B, length, H)
        if masks[-1] is not None:
            out = out * masks[-1].transpose(0, 1)
        soft = torch.softmax(torch.add(noise, self.head(out).float(), alpha=1 / tau), -1)
        return torch.stack(hard, 1), soft


def _dropped(x: torch.Tensor, masks: torch.Tensor | None, step: int) -> torch.Tensor:
    """``x`` through dropout at rollout step ``step``: times that step's mask, if any."""
    return x if masks is None else x * masks[step]


class IncrementalGenerator:
    """``Generator.step`` for sampling, with the work that does not change from step to
    step done once.

    The first layer's input is [embedding(token), theme], so its input projection splits
    into a table over the vocabulary (V, 4H) and one row per piece for the theme and the
    biases (B, 4H): a step looks a row up instead of multiplying. Every other layer does
    one matrix product over [input, h]. The cell's tanh(g) is computed as 2 sigmoid(2g) - 1
    (the g rows of the weights are doubled up front), so one sigmoid covers all four gates;
    on a CPU sigmoid is cheaper than tanh. Same logits as ``Generator.forward`` in eval
    mode, up to float rounding. ``select(rows)`` drops finished pieces from the batch.
    """

    def __init__(self, generator: Generator, theme: torch.Tensor):
        config, lstm = generator.config, generator.lstm
        embed, hidden = config.embed_dim, config.hidden_dim
        scale = torch.ones(4 * hidden, dtype=lstm.weight_ih_l0.dtype,  # type: ignore[arg-type]
                           device=lstm.weight_ih_l0.device)  # type: ignore[arg-type]
        scale[2 * hidden:3 * hidden] = 2  # the g gate: tanh(g) = 2 sigmoid(2g) - 1

        def weights(layer: int):
            return [scale[:, None] * getattr(lstm, f"{name}_l{layer}") for name in
                    ("weight_ih", "weight_hh")] + [
                scale * (getattr(lstm, f"bias_ih_l{layer}") + getattr(lstm, f"bias_hh_l{layer}"))]

        weight_ih, weight_hh, bias = weights(0)
        theme = theme.to(weight_ih.dtype)
        self.token_table = generator.embed.weight @ weight_ih[:, :embed].T  # (V, 4H)
        self.theme_rows = theme @ weight_ih[:, embed:].T + bias  # (B, 4H)
        # Each weight is stored (in, out), contiguous: h @ W then reads it in the order the
        # CPU's matrix product runs fastest (a fifth less time at batch 64 than through
        # the transposed view), and a row's result does not depend on how many rows the
        # product has (see ``_product``).
        self.weights = [weight_hh.T.contiguous()]  # layer 0: h @ W_hh
        self.biases: list[torch.Tensor | None] = [None]
        for layer in range(1, config.num_layers):  # layers 1+: [x, h] @ [W_ih; W_hh]
            weight_ih, weight_hh, bias = weights(layer)
            self.weights.append(torch.cat([weight_ih, weight_hh], 1).T.contiguous())
            self.biases.append(bias)
        self.head = generator.head
        self.head_weight = generator.head.weight.T.contiguous()  # (H, V)
        # Below how many rows each product runs padded (see ``_product``); 1 on a GPU.
        self.least = [least_rows(w) if w.device.type == "cpu" else 1
                      for w in [*self.weights, self.head_weight]]
        self.generator, self.theme = generator, theme
        h, c = generator.initial_state(theme)
        self.h, self.c = list(h.unbind(0)), list(c.unbind(0))

    def feed(self, tokens: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        """Start from a prefix (B, S): one teacher-forced pass (the fast way to read a
        primer) sets the state; returns the logits (B, V) of the token after it. With
        ``lengths`` (B,), row b's prefix is its first lengths[b] tokens (the rest padding)."""
        # Rows that are the same prefix under the same theme (best-of-K candidates of a
        # piece share its theme and primer) are read once.
        key = torch.cat([tokens.to(self.theme.dtype), self.theme], 1)
        unique, inverse = torch.unique(key, dim=0, return_inverse=True)
        if len(unique) == len(key):
            return self._feed(tokens, lengths)
        first = torch.full((len(unique),), len(key), dtype=torch.long, device=key.device)
        first.scatter_reduce_(0, inverse, torch.arange(len(key), device=key.device), "amin")
        every = self.theme_rows, self.theme
        self.theme_rows, self.theme = self.theme_rows[first], self.theme[first]
        logits = self._feed(tokens[first], None if lengths is None else lengths[first])
        self.theme_rows, self.theme = every
        self.h = [h[inverse] for h in self.h]
        self.c = [c[inverse] for c in self.c]
        return logits[inverse]

    def read(self, tokens: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        """Like ``feed``, but the tokens come after those read so far (row b's first
        lengths[b], at least one)."""
        return self._feed(tokens, lengths, (torch.stack(self.h), torch.stack(self.c)))

    def _feed(self, tokens: torch.Tensor, lengths: torch.Tensor | None,
              state: tuple[torch.Tensor, torch.Tensor] | None = None) -> torch.Tensor:
        shortest = tokens.size(1) if lengths is None else int(lengths.min())
        # Every row's first `shortest` tokens in one teacher-forced pass; the rows that go
        # on read their tails step by step, each holding its state once its prefix ends.
        # (A packed sequence did this in one call, but a packed LSTM on a CPU took 2.4 s
        # for 64 prefixes of ~230 tokens, 4x a plain pass over as many.)
        out, (h, c) = self.generator.hidden(tokens[:, :shortest], self.theme, state)
        self.h, self.c = list(h.unbind(0)), list(c.unbind(0))
        last = self._head(out[:, -1])  # the head on the last position only, not the prefix
        if lengths is None:
            return last
        lengths = lengths.to(tokens.device)
        for t in range(shortest, int(lengths.max())):
            reading = (lengths > t)[:, None]
            held = list(self.h), list(self.c)
            step = self.step(tokens[:, t])
            self.h = [torch.where(reading, new, old) for new, old in zip(self.h, held[0],
                                                                          strict=True)]
            self.c = [torch.where(reading, new, old) for new, old in zip(self.c, held[1],
                                                                          strict=True)]
            last = torch.where(reading, step, last)
        return last

    def step(self, token: torch.Tensor) -> torch.Tensor:
        """Feed token (B,), return the logits (B, V) of the next one. A piece's logits do
        not depend on the other rows of the batch, nor on how many there are (see
        ``_product``)."""
        logits, self.h, self.c = self._advance(token, self.theme_rows, self.h, self.c)
        return logits

    def _advance(self, token: torch.Tensor, theme_rows: torch.Tensor, hs: list[torch.Tensor],
                 cs: list[torch.Tensor]) -> tuple[torch.Tensor, list, list]:
        """One step as a function of its inputs: (logits, new h list, new c list)."""
        x: torch.Tensor | None = None
        hs, cs = list(hs), list(cs)
        for layer, (h, c) in enumerate(zip(hs, cs, strict=True)):
            if layer == 0:
                gates = _product(self.token_table.index_select(0, token).add_(theme_rows), h,
                                 self.weights[0], self.least[0], in_place=True)
            else:
                bias = self.biases[layer]
                assert x is not None and bias is not None  # set by the layer below / __init__
                gates = _product(bias, torch.cat([x, h], 1), self.weights[layer],
                                 self.least[layer])
            i, f, g, o = gates.sigmoid_().chunk(4, 1)
            c = torch.addcmul(f * c, i, g.mul(2).sub_(1))
            x = torch.tanh(c).mul_(o)
            hs[layer], cs[layer] = x, c
        assert x is not None
        return self._head(x), hs, cs

    def _head(self, x: torch.Tensor) -> torch.Tensor:
        # (a product, not the head's module call: a step is short enough to feel that)
        return _product(self.head.bias, x, self.head_weight, self.least[-1])

    def select(self, rows: torch.Tensor) -> None:
        """Keep only these pieces (indices into the batch)."""
        self.theme_rows = self.theme_rows.index_select(0, rows)  # (faster than [rows])
        self.theme = self.theme.index_select(0, rows)
        self.h = [h.index_select(0, rows) for h in self.h]
        self.c = [c.index_select(0, rows) for c in self.c]

    def append(self, other: IncrementalGenerator) -> None:
        """Add ``other``'s pieces (a runner of the same generator) after these."""
        self.theme_rows = torch.cat([self.theme_rows, other.theme_rows])
        self.theme = torch.cat([self.theme, other.theme])
        self.h = [torch.cat(pair) for pair in zip(self.h, other.h, strict=True)]
        self.c = [torch.cat(pair) for pair in zip(self.c, other.c, strict=True)]


def _product(input: torch.Tensor, x: torch.Tensor, weight: torch.Tensor, least: int,
             in_place: bool = False) -> torch.Tensor:
    """input + x @ weight (``input`` rows, or a bias row), each row as in a product of
    any number of rows: a batch shrinks as its pieces end, and a piece must come out as it
    would in any batch. A CPU's matrix product gives a row the same result whatever the
    row count, except below a few rows, which take other routines (other rounding): a
    product of fewer than ``least`` rows (``least_rows(weight)``) runs with its last row
    repeated up to that many. ``in_place`` adds into ``input``."""
    rows = x.size(0)
    if 0 < rows < least:
        x = torch.cat([x, x[-1:].expand(least - rows, -1)])
        if input.dim() == 2 and input.size(0) > 1:  # one input row per row of x
            input = torch.cat([input, input[-1:].expand(least - rows, -1)])
        return torch.addmm(input, x, weight)[:rows]
    return input.addmm_(x, weight) if in_place else torch.addmm(input, x, weight)


def least_rows(weight: torch.Tensor) -> int:
    """The fewest rows from which this CPU's product x @ weight gives each row of x the
    result it has in a product of PROBE_ROWS rows, found by trying (1 to 16 rows, 32 and
    PROBE_ROWS - 1) once per shape, type and thread count. On the AMD EPYC measured it
    is 4 (its routines for 1 to 3 rows round otherwise); on the Intel Xeon only a single
    row differed, so 2."""
    key = (*weight.shape, weight.dtype, torch.get_num_threads())
    if key not in _LEAST_ROWS:
        random = torch.Generator().manual_seed(0)
        x = torch.randn(PROBE_ROWS, weight.size(0), generator=random).to(weight.dtype)
        input = torch.randn(PROBE_ROWS, weight.size(1), generator=random).to(weight.dtype)
        weight = weight.detach()
        many = torch.addmm(input, x, weight)
        least = PROBE_ROWS
        for rows in (PROBE_ROWS - 1, 32, *range(16, 0, -1)):  # down: all above agree
            if not torch.equal(torch.addmm(input[:rows], x[:rows], weight), many[:rows]):
                break
            least = rows
        _LEAST_ROWS[key] = least
    return _LEAST_ROWS[key]


PROBE_ROWS = 64  # the product least_rows compares with: a full batch of sampling
_LEAST_ROWS: dict[tuple, int] = {}


class Discriminator(nn.Module):
    """A bidirectional LSTM that judges token sequences, real or generated.

    Real sequences come as ids; generated ones come as soft one-hots (B, S, V) times the
    embedding matrix, so gradients reach the generator. The discriminator returns a
    decision at every step, a sequence-level decision from the pooled outputs, and the
    pooled features (for feature matching).
    """

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.embed = nn.Embedding(config.vocab_size, config.disc_embed_dim)
        self.lstm = nn.LSTM(config.disc_embed_dim, config.disc_hidden_dim, batch_first=True,
                            bidirectional=True)
        self.step_head = spectral_norm(nn.Linear(2 * config.disc_hidden_dim, 1))
        self.sequence_head = spectral_norm(nn.Linear(2 * config.disc_hidden_dim, 1))

    def forward(self, mask: torch.Tensor, tokens: torch.Tensor | None = None,
                soft: torch.Tensor | None = None):
        """mask (B, S) marks real positions; give ``tokens`` (B, S) or ``soft`` (B, S, V).

        Returns step logits (B, S), sequence logits (B,), features (B, 2 * disc_hidden).
        """
        return self.judge(self.inputs(tokens, soft), mask)

    def inputs(self, tokens: torch.Tensor | None = None,
               soft: torch.Tensor | None = None) -> torch.Tensor:
        """What the LSTM reads (B, S, E): embedded ids, or soft one-hots times the
        embedding matrix."""
        if soft is None:
            assert tokens is not None
            return self.embed(tokens)
        return soft.to(self.embed.weight.dtype) @ self.embed.weight

    def judge(self, x: torch.Tensor, mask: torch.Tensor):
        """``forward`` from the LSTM's inputs ``x`` (B, S, E): real and generated
        sequences can be judged in one pass, concatenated."""
        out, _ = self.lstm(x)  # (B, S, 2 * disc_hidden)
        features = masked_mean(out, mask)
        return self.step_head(out).squeeze(-1), self.sequence_head(features).squeeze(-1), features


class BehaviourDiscriminator(nn.Module):
    """Professor Forcing's discriminator (Lamb et al. 2016): a bidirectional LSTM that tells
    the generator's top-layer outputs when it reads real music (teacher forcing) from its
    outputs when it writes its own (free running). It judges behaviour, not tokens, so
    the generator needs no relaxed tokens to learn from it. Used only in training.
    """

    def __init__(self, config: ModelConfig):
        super().__init__()
        # The outputs differ by little (they are tanh-bounded): normalised first, so the
        # discriminator sees their shape, not their scale.
        self.project = nn.Sequential(nn.LayerNorm(config.hidden_dim),
                                     nn.Linear(config.hidden_dim, config.disc_embed_dim))
        self.lstm = nn.LSTM(config.disc_embed_dim, config.disc_hidden_dim, batch_first=True,
                            bidirectional=True)
        self.step_head = nn.Linear(2 * config.disc_hidden_dim, 1)
        self.sequence_head = nn.Linear(2 * config.disc_hidden_dim, 1)

    def forward(self, hidden: torch.Tensor, mask: torch.Tensor):
        """hidden (B, S, H), mask (B, S): step logits (B, S), sequence logits (B,)."""
        out, _ = self.lstm(self.project(hidden))
        return (self.step_head(out).squeeze(-1),
                self.sequence_head(masked_mean(out, mask)).squeeze(-1))


class MuseGAN(nn.Module):
    """All five networks together, under the names that checkpoints and exports use."""

    SAMPLING_PARTS = ("generator", "encoder", "mapping")  # what sampling needs

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config
        self.generator = Generator(config)
        self.encoder = ThemeEncoder(config)
        self.mapping = MappingNetwork(config)
        self.critic = ThemeCritic(config)
        self.discriminator = Discriminator(config)

    @property
    def theme_dim(self) -> int:
        return self.config.theme_dim

    def incremental(self, theme: torch.Tensor) -> IncrementalGenerator:
        """The generator's step-by-step runner for sampling pieces with these themes."""
        return self.generator.incremental(theme)


def build_model(config: ModelConfig | dict, tokenizer) -> MuseGAN:
    """The networks for a tokenizer's vocabulary, from a config or its ``sizes()`` dict
    (as run configs and checkpoints hold it)."""
    if isinstance(config, dict):
        config = ModelConfig.from_dict(config)
    return MuseGAN(config.for_tokenizer(tokenizer))

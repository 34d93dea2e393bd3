"""Layer-synchronous engine vs snnTorch on the same network: inference and training time per batch.

Network 2312-200-10 LIF (no bias), batch 32, T = 50 frames, Bernoulli input (2 % density by default),
beta = 0.9 in both (tau = -dt / ln(beta)), threshold 1, reset to zero. snnTorch runs its usual
frame-by-frame loop. Prints milliseconds per batch (median of repeats) and the ratio snnTorch / asyncsnn.

    pip install -e '.[bench]'
    python benchmarks/sync_vs_snntorch.py [--repeats 30] [--density 0.02] [--threads N]
"""

from __future__ import annotations

import argparse
import math

import torch
from common import timed  # noqa: E402  (benchmarks/ is on sys.path when run as a script)
from torch import nn

from asyncsnn import LIF, Network
from asyncsnn.engines import sync


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--density", type=float, default=0.02)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    args = parser.parse_args()
    try:
        import snntorch as snn
    except ImportError:
        raise SystemExit("snnTorch is not installed: pip install -e '.[bench]'") from None
    if args.threads:
        torch.set_num_threads(args.threads)

    T, B, n_in, n_hidden, n_out, beta = 50, 32, 2312, 200, 10, 0.9
    tau = -1.0 / math.log(beta)  # dt = 1 ms
    torch.manual_seed(0)
    ours = Network(
        nn.Linear(n_in, n_hidden, bias=False),
        LIF(tau=tau, threshold=1.0),
        nn.Linear(n_hidden, n_out, bias=False),
        LIF(tau=tau, threshold=1.0),
        input_shape=(n_in,),
    )

    class SnnTorchNet(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc1 = nn.Linear(n_in, n_hidden, bias=False)
            self.lif1 = snn.Leaky(beta=beta, threshold=1.0, reset_mechanism="zero")
            self.fc2 = nn.Linear(n_hidden, n_out, bias=False)
            self.lif2 = snn.Leaky(beta=beta, threshold=1.0, reset_mechanism="zero")

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            mem1, mem2 = self.lif1.init_leaky(), self.lif2.init_leaky()
            out = []
            for t in range(x.shape[0]):
                spk1, mem1 = self.lif1(self.fc1(x[t]), mem1)
                spk2, mem2 = self.lif2(self.fc2(spk1), mem2)
                out.append(spk2)
            return torch.stack(out)

    theirs = SnnTorchNet()
    theirs.load_state_dict(
        {
            "fc1.weight": ours.body[0].weight.detach().clone(),
            "fc2.weight": ours.body[2].weight.detach().clone(),
        },
        strict=False,
    )
    g = torch.Generator().manual_seed(1)
    x = (torch.rand(T, B, n_in, generator=g) < args.density).float()
    labels = torch.randint(0, n_out, (B,), generator=g)

    def infer_ours():
        with torch.no_grad():
            sync.run(ours, x)

    def infer_theirs():
        with torch.no_grad():
            theirs(x)

    opt_ours = torch.optim.Adam(ours.parameters(), lr=1e-4)
    opt_theirs = torch.optim.Adam(theirs.parameters(), lr=1e-4)

    def train_ours():
        loss = nn.functional.cross_entropy(sync.run(ours, x).output.sum(0), labels)
        opt_ours.zero_grad()
        loss.backward()
        opt_ours.step()

    def train_theirs():
        loss = nn.functional.cross_entropy(theirs(x).sum(0), labels)
        opt_theirs.zero_grad()
        loss.backward()
        opt_theirs.step()

    print(
        f"torch {torch.__version__}, snntorch {snn.__version__}, threads {torch.get_num_threads()}, "
        f"network {n_in}-{n_hidden}-{n_out}, batch {B}, T {T}, input density {args.density}"
    )
    print(f"{'':24s}{'asyncsnn (ms)':>14s}{'snntorch (ms)':>15s}{'speed-up':>10s}")
    for name, a, b in (
        ("inference / batch", infer_ours, infer_theirs),
        ("training step / batch", train_ours, train_theirs),
    ):
        ta, tb = 1e3 * timed(a, args.repeats), 1e3 * timed(b, args.repeats)
        print(f"{name:24s}{ta:14.2f}{tb:15.2f}{tb / ta:9.2f}x")


if __name__ == "__main__":
    main()

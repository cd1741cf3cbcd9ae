"""PyTorch CPU peer for the fine-tune step: the same GoogLeNet (conv+bias+ReLU, LRN, aux heads),
batch 8, loss = main + 0.3 aux1 + 0.3 aux2, Adam; heads only (trunk frozen, run under no_grad)
and all layers. Prints one JSON line.  usage: python bench/torch_finetune.py THREADS STEPS"""
import json, sys, time
import torch, torch.nn as nn, torch.nn.functional as F

class Conv(nn.Sequential):
    def __init__(self, i, o, k, s=1):
        super().__init__(nn.Conv2d(i, o, k, s, k // 2), nn.ReLU(inplace=True))

class Inception(nn.Module):
    def __init__(self, i, c1, c3r, c3, c5r, c5, pp):
        super().__init__()
        self.b1 = Conv(i, c1, 1)
        self.b2 = nn.Sequential(Conv(i, c3r, 1), Conv(c3r, c3, 3))
        self.b3 = nn.Sequential(Conv(i, c5r, 1), Conv(c5r, c5, 5))
        self.b4 = nn.Sequential(nn.MaxPool2d(3, 1, 1, ceil_mode=True), Conv(i, pp, 1))
    def forward(self, x):
        return torch.cat([self.b1(x), self.b2(x), self.b3(x), self.b4(x)], 1)

class Aux(nn.Module):
    def __init__(self, i, n):
        super().__init__()
        self.conv = Conv(i, 128, 1); self.fc1 = nn.Linear(2048, 1024); self.fc2 = nn.Linear(1024, n)
    def forward(self, x):
        x = self.conv(F.avg_pool2d(x, 5, 3)).flatten(1)
        return self.fc2(F.dropout(F.relu(self.fc1(x)), 0.7, self.training))

T = [(192, 64, 96, 128, 16, 32, 32), (256, 128, 128, 192, 32, 96, 64), (480, 192, 96, 208, 16, 48, 64),
     (512, 160, 112, 224, 24, 64, 64), (512, 128, 128, 256, 24, 64, 64), (512, 112, 144, 288, 32, 64, 64),
     (528, 256, 160, 320, 32, 128, 128), (832, 256, 160, 320, 32, 128, 128), (832, 384, 192, 384, 48, 128, 128)]

class GoogLeNet(nn.Module):
    def __init__(self, n):
        super().__init__()
        self.stem = nn.Sequential(Conv(3, 64, 7, 2), nn.MaxPool2d(3, 2, ceil_mode=True), nn.LocalResponseNorm(5, 1e-4, 0.75, 1),
                                  Conv(64, 64, 1), Conv(64, 192, 3), nn.LocalResponseNorm(5, 1e-4, 0.75, 1), nn.MaxPool2d(3, 2, ceil_mode=True))
        self.blocks = nn.ModuleList(Inception(*t) for t in T)
        self.aux1, self.aux2 = Aux(512, n), Aux(528, n)
        self.fc = nn.Linear(1024, n)
    def trunk(self, x):
        x = self.stem(x); taps = []
        for i, b in enumerate(self.blocks):
            x = b(x)
            if i in (1, 6): x = F.max_pool2d(x, 3, 2, ceil_mode=True)
            if i in (2, 5): taps.append(x)
        return x, taps
    def heads(self, x, taps):
        return self.fc(F.dropout(F.adaptive_avg_pool2d(x, 1).flatten(1), 0.4, self.training)), self.aux1(taps[0]), self.aux2(taps[1])

def bench(mode, steps, batch=8):
    torch.manual_seed(0)
    m = GoogLeNet(2).train()
    params = list(m.aux1.parameters()) + list(m.aux2.parameters()) + list(m.fc.parameters()) if mode == "heads" else list(m.parameters())
    opt = torch.optim.Adam(params, 1e-3)
    x = torch.randn(batch, 3, 224, 224); y = torch.randint(0, 2, (batch,))
    times = []
    for s in range(steps + 2):
        t = time.perf_counter()
        if mode == "heads":
            with torch.no_grad():
                f, taps = m.trunk(x)
        else:
            f, taps = m.trunk(x)
        main, a1, a2 = m.heads(f, taps)
        loss = F.cross_entropy(main, y) + 0.3 * F.cross_entropy(a1, y) + 0.3 * F.cross_entropy(a2, y)
        opt.zero_grad(); loss.backward(); opt.step()
        if s >= 2: times.append((time.perf_counter() - t) * 1e3)
    times.sort()
    return times[len(times) // 2]

threads, steps = int(sys.argv[1]), int(sys.argv[2])
torch.set_num_threads(threads)
print(json.dumps({"torch": torch.__version__, "threads": threads, "batch": 8,
                  "heads_ms": bench("heads", steps), "all_ms": bench("all", max(3, steps // 2))}))

"""The clock the benchmarks share (standard library only): CPU seconds of this process with one
torch thread on CPU, else wall seconds after a CUDA synchronize."""
import time


class Clock:
    """CPU seconds of this process (one thread on CPU), else wall seconds after a synchronize."""

    def __init__(self, torch, device, threads: int):
        self.torch, self.device = torch, device
        self.cpu = device.type == "cpu" and threads == 1
        self.now = time.process_time if self.cpu else time.perf_counter

    def __call__(self) -> float:
        if self.device.type == "cuda":
            self.torch.cuda.synchronize(self.device)
        return self.now()

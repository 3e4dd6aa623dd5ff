"""A cost model for AscendC code run on the emulator: what one step would take on a chip.

The emulator logs every launch (runtime/ascendc/emu_gm.h): its blocks, the GM bytes they moved, and the
busiest block's GM bytes, vector repeats, scalar UB accesses and pipe waits; the emulated ACL runtime
counts the host's blocking calls (aclrtMemcpy, aclrtSynchronizeStream). `read_log` takes them out of a
loaded artifact's library; `estimate` turns them into seconds with a chip's facts (`ChipCost`, from the
device profile's [cost] table). The model, per launch:

    time = launch overhead + waves * max(DMA time of the busiest block, its vector time + its wait time)

with waves = ceil(blocks / cores) and the blocks of a wave in parallel; DMA time = bytes / (the core's
GM bytes per cycle * clock) (copy-in and copy-out overlap compute: the kernels double-buffer), vector
time = repeats / clock (one 256-byte repeat per cycle), wait time = waits * sync cycles / clock. Plus
every blocking host call at its round-trip cost. Not modelled: the CPU partition of the model, L2 hits,
bank conflicts, contention between cores for the memory beyond the per-core rate (capped at the chip's
memory bandwidth), and the Cube unit.
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass

from cffi import FFI

ASSUMPTIONS = ("each launch costs a fixed overhead plus, per wave of blocks, the larger of its busiest "
               "block's GM bytes at one core's rate and that block's vector repeats (one per cycle) plus "
               "its pipe waits (sync_cycles each); every blocking host call costs its round trip; the CPU "
               "partition, L2 hits, bank conflicts and the Cube unit are not modelled")

_CDEF = """
typedef struct {
    char kernel[48];
    uint32_t blocks;
    uint32_t pad;
    uint64_t gm_in, gm_out, max_block_gm;
    uint64_t max_block_vector_repeats, max_block_scalar_accesses, max_block_waits;
    uint64_t blocking_before;
} LaunchRecord;
uint64_t ascendc_emu_cost(const LaunchRecord **records, int reset);
uint64_t ascendc_emu_blocking_calls(int reset);
"""
MAX_RECORDS = 1 << 17   # kMaxLaunchRecords in emu_gm.h


@dataclass(frozen=True)
class ChipCost:
    """Chip facts the model needs (device profile [cost] and [compute])."""
    name: str
    cores: int                   # cores one launch spreads over
    clock_mhz: float             # AI Core clock
    gm_bytes_per_cycle: float    # one core's GM read/write rate
    memory_gbps: float           # the chip's (or board's) memory bandwidth: caps all cores together
    launch_us: float             # a launch on an asynchronous stream
    blocking_call_us: float      # a host call that waits for the device (a copy, a stream sync)
    sync_cycles: float           # a pipe wait drains the waiting pipe

    @classmethod
    def from_profile(cls, name: str, cores: int, cost: dict) -> "ChipCost":
        missing = [k for k in ("clock_mhz", "gm_bytes_per_cycle", "memory_gbps", "launch_us",
                               "blocking_call_us", "sync_cycles") if k not in cost]
        if missing:
            raise ValueError(f"device profile {name}: [cost] lacks {', '.join(missing)}")
        return cls(name, cores, float(cost["clock_mhz"]), float(cost["gm_bytes_per_cycle"]),
                   float(cost["memory_gbps"]), float(cost["launch_us"]), float(cost["blocking_call_us"]),
                   float(cost["sync_cycles"]))

    @property
    def core_gbps(self) -> float:
        return self.gm_bytes_per_cycle * self.clock_mhz / 1e3

    @property
    def bandwidth_gbps(self) -> float:
        """What all cores together can stream from memory."""
        return min(self.memory_gbps, self.core_gbps * self.cores)


@dataclass(frozen=True)
class Launch:
    kernel: str
    blocks: int
    gm_bytes: int               # all blocks, in + out
    max_block_gm: int
    max_block_repeats: int
    max_block_scalar: int
    max_block_waits: int
    blocking_before: int = 0     # the step's blocking host calls before this launch


@dataclass
class Log:
    launches: list[Launch]
    blocking_calls: int
    dropped: int = 0             # launches past the log's capacity (not in `launches`)


class CostLog:
    """The emulator's cost log of one loaded artifact (the same library handle llmc.load opened)."""

    def __init__(self, artifact_dir: str, library: str):
        self.ffi = FFI()
        self.ffi.cdef(_CDEF)
        self.lib = self.ffi.dlopen(os.path.join(os.path.abspath(artifact_dir), library))

    def take(self) -> Log:
        """The launches and blocking calls since the last take (or load); empties the log."""
        ptr = self.ffi.new("LaunchRecord **")
        n = self.lib.ascendc_emu_cost(ptr, 1)
        blocking = self.lib.ascendc_emu_blocking_calls(1)
        kept = min(n, MAX_RECORDS)
        out = []
        for i in range(kept):
            r = ptr[0][i]
            out.append(Launch(self.ffi.string(r.kernel).decode(), r.blocks, r.gm_in + r.gm_out,
                              r.max_block_gm, r.max_block_vector_repeats, r.max_block_scalar_accesses,
                              r.max_block_waits, r.blocking_before))
        return Log(out, blocking, n - kept)


def launch_seconds(launch: Launch, chip: ChipCost) -> float:
    clock = chip.clock_mhz * 1e6
    waves = math.ceil(launch.blocks / chip.cores)
    # per-core rate, unless the blocks of a wave together exceed the chip's bandwidth
    per_block_gbps = min(chip.core_gbps, chip.memory_gbps / min(launch.blocks, chip.cores))
    dma = launch.max_block_gm / (per_block_gbps * 1e9)
    compute = (launch.max_block_repeats + launch.max_block_waits * chip.sync_cycles) / clock
    return chip.launch_us * 1e-6 + waves * max(dma, compute)


@dataclass(frozen=True)
class Estimate:
    seconds: float
    launches: int
    blocking_calls: int
    gm_bytes: int
    launch_seconds: float        # the kernels' part of `seconds`

    def per(self, tokens: int) -> str:
        return (f"{self.launches / tokens:.0f} launches, {self.blocking_calls / tokens:.0f} blocking calls, "
                f"{self.gm_bytes / tokens / 1e6:.1f} MB GM traffic per token")


def estimate(log: Log, chip: ChipCost) -> Estimate:
    """Seconds the logged work would take on `chip`."""
    if log.dropped:
        raise ValueError(f"the cost log overflowed ({log.dropped} launches past {MAX_RECORDS}): "
                         "measure fewer tokens")
    kernels = sum(launch_seconds(x, chip) for x in log.launches)
    return Estimate(kernels + log.blocking_calls * chip.blocking_call_us * 1e-6, len(log.launches),
                    log.blocking_calls, sum(x.gm_bytes for x in log.launches), kernels)


def layer_period(launches: list[Launch], n_layer: int) -> tuple[int, int] | None:
    """(start, length) of the layer loop in one step's launches: the longest kernel sequence repeated
    n_layer times back to back. None when n_layer < 2 (one layer cannot be told from the rest)."""
    names = [x.kernel for x in launches]
    if n_layer < 2:
        return None
    for length in range(len(names) // n_layer, 0, -1):
        for start in range(0, len(names) - n_layer * length + 1):
            block = names[start:start + length]
            if all(names[start + k * length:start + (k + 1) * length] == block for k in range(1, n_layer)):
                return start, length
    return None

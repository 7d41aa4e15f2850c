"""Compute devices the timing probe can measure on, what they can do, and how
much memory a run takes on them.

``list_devices()`` names what is present (CPU model, each CUDA GPU's name,
Apple MPS); ``resolve_device("auto")`` picks CUDA, then MPS, then the CPU;
``check_precision`` says whether autocast at a precision runs there;
``peak_tflops`` gives the datasheet peak of known GPUs for the "fraction of
peak" figure (unknown device → ``None``, the fraction is then omitted).
The memory helpers read the OS (``/proc``) and the CUDA allocator.

Importing this module does not import torch (the GUI process reads
``PRECISIONS``, ``DeviceInfo`` and ``cpu_available_memory`` without it); the
functions that need torch import it when called.
"""

from __future__ import annotations

import ctypes
import gc
import os
import platform
import re
import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING

from densegui.core.errors import DenseguiError, first_line

if TYPE_CHECKING:
    import torch

PRECISIONS = ("fp32", "bf16", "fp16")


class DeviceError(DenseguiError):
    """A device that is absent, or cannot run what was asked of it."""


@dataclass(frozen=True)
class DeviceInfo:
    id: str  # "cpu", "cuda:0", "mps": what --device accepts
    kind: str  # "cpu" | "cuda" | "mps"
    name: str  # "NVIDIA H100 80GB HBM3", "Intel(R) Xeon(R) ...", "Apple MPS"
    total_memory: int | None  # bytes (CUDA: device memory; CPU: MemTotal; MPS: None)

    @property
    def label(self) -> str:
        """What a device selector shows: ``"cuda:0 — NVIDIA H100 80GB HBM3"``."""
        return f"{self.id} — {self.name}"


def autocast_dtype(precision: str) -> torch.dtype | None:
    """The autocast dtype of ``precision`` (None for fp32: no autocast)."""
    import torch

    return {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision)


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "CPU"


def _mps_available() -> bool:
    import torch

    mps = getattr(torch.backends, "mps", None)
    return bool(mps is not None and mps.is_available())


def list_devices() -> list[DeviceInfo]:
    """Every device present, CPU first."""
    import torch

    out = [DeviceInfo("cpu", "cpu", f"{_cpu_name()} ({torch.get_num_threads()} threads)", cpu_total_memory())]
    if torch.cuda.is_available():
        for i in range(torch.cuda.device_count()):
            props = torch.cuda.get_device_properties(i)
            out.append(DeviceInfo(f"cuda:{i}", "cuda", props.name, int(props.total_memory)))
    if _mps_available():
        out.append(DeviceInfo("mps", "mps", "Apple MPS", None))
    return out


def resolve_device(spec: str) -> torch.device:
    """``"auto"`` → CUDA, then MPS, then CPU; otherwise the device named
    (``cpu``, ``cuda``, ``cuda:N``, ``mps``), or :class:`DeviceError`."""
    import torch

    text = (spec or "auto").strip().lower()
    if text == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda", torch.cuda.current_device())
        if _mps_available():
            return torch.device("mps")
        return torch.device("cpu")
    present = ", ".join(["auto"] + [d.id for d in list_devices()])
    try:
        dev = torch.device(text)
    except (RuntimeError, ValueError):
        raise DeviceError(f"no such device {spec!r}; devices present: {present}.") from None
    if dev.type == "cpu":
        return torch.device("cpu")
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise DeviceError(f"device {spec!r} is not available: no CUDA GPU is present; devices present: {present}.")
        index = dev.index if dev.index is not None else torch.cuda.current_device()
        if index >= torch.cuda.device_count():
            raise DeviceError(f"no such device {spec!r}: {torch.cuda.device_count()} CUDA GPU(s) present; "
                              f"devices present: {present}.")
        return torch.device("cuda", index)
    if dev.type == "mps":
        if not _mps_available():
            raise DeviceError(f"device {spec!r} is not available on this machine; devices present: {present}.")
        return dev
    raise DeviceError(f"no such device {spec!r}; devices present: {present}.")


def device_info(device: torch.device) -> DeviceInfo:
    """The :class:`DeviceInfo` of a device :func:`resolve_device` returned."""
    for info in list_devices():
        if info.kind == device.type and (device.type != "cuda" or info.id == f"cuda:{device.index or 0}"):
            return info
    return DeviceInfo(str(device), device.type, str(device), None)


def check_precision(device: torch.device, precision: str) -> None:
    """Raise :class:`DeviceError` unless autocast at ``precision`` runs on ``device``."""
    import torch

    if precision not in PRECISIONS:
        raise DeviceError(f"unsupported precision {precision!r}; choose one of {', '.join(PRECISIONS)}.")
    if precision == "fp32":
        return
    if device.type == "cuda":
        if precision == "bf16" and not torch.cuda.is_bf16_supported(including_emulation=False):
            name = torch.cuda.get_device_name(device)
            raise DeviceError(f"precision bf16 is not supported on {device} ({name}); use fp16 or fp32.")
        return
    # CPU / MPS: try a tiny autocast convolution.
    try:
        conv = torch.nn.Conv2d(1, 1, 1).to(device)
        with torch.autocast(device.type, dtype=autocast_dtype(precision)):
            conv(torch.zeros(1, 1, 2, 2, device=device))
    except (RuntimeError, TypeError, AssertionError) as exc:
        first = first_line(exc, limit=160) or type(exc).__name__
        raise DeviceError(f"precision {precision} is not supported on {device}: {first}") from None


# ---------------------------------------------------------------- peak FLOP/s
# Dense (non-sparse) datasheet peaks in TFLOP/s, per precision as the probe
# runs it: "fp32" is the CUDA-core FP32 peak, "tf32" the tensor-core TF32
# peak (what cuDNN convolutions use in fp32 when torch.backends.cudnn.allow_tf32
# is on, PyTorch's default), "bf16"/"fp16" the tensor-core peak with FP32
# accumulation. NVIDIA datasheets print the sparse figure with a footnote
# ("* with sparsity"); the numbers below are half of those.
#   H100 SXM5 / H200 SXM: NVIDIA H100 datasheet (2023) and H200 datasheet (2024):
#       FP32 67, TF32 989* → 494.7, BF16/FP16 1,979* → 989.4
#   H100 PCIe: FP32 51, TF32 756* → 378, BF16/FP16 1,513* → 756
#   A100 (SXM and PCIe): A100 datasheet: FP32 19.5, TF32 156, BF16/FP16 312 (dense)
#   L40S: datasheet: FP32 91.6, TF32 366* → 183, BF16/FP16 733* → 366
#   L4: datasheet: FP32 30.3, TF32 120* → 60, BF16/FP16 242* → 121
#   A10: datasheet: FP32 31.2, TF32 125* → 62.5, BF16/FP16 250* → 125
#   T4: datasheet: FP32 8.1, FP16 (mixed) 65; no TF32, no BF16
#   V100 SXM2: FP32 15.7, FP16 tensor 125; V100 PCIe: FP32 14, tensor 112
#   RTX 4090: Ada whitepaper: FP32 82.6, TF32 82.6, FP16/BF16 (FP32 acc.) 165.2
#   RTX 3090: Ampere GA102 whitepaper: FP32 35.6, TF32 35.6, FP16/BF16 (FP32 acc.) 71
_PEAKS: list[tuple[str, dict[str, float]]] = [
    (r"H200", {"fp32": 67.0, "tf32": 494.7, "bf16": 989.4, "fp16": 989.4}),
    (r"H100.*PCIe", {"fp32": 51.0, "tf32": 378.0, "bf16": 756.0, "fp16": 756.0}),
    (r"H100", {"fp32": 67.0, "tf32": 494.7, "bf16": 989.4, "fp16": 989.4}),
    (r"A100", {"fp32": 19.5, "tf32": 156.0, "bf16": 312.0, "fp16": 312.0}),
    (r"L40S", {"fp32": 91.6, "tf32": 183.0, "bf16": 366.0, "fp16": 366.0}),
    (r"\bL4\b", {"fp32": 30.3, "tf32": 60.0, "bf16": 121.0, "fp16": 121.0}),
    (r"\bA10\b", {"fp32": 31.2, "tf32": 62.5, "bf16": 125.0, "fp16": 125.0}),
    (r"\bT4\b", {"fp32": 8.1, "fp16": 65.0}),
    (r"V100.*PCIE", {"fp32": 14.0, "fp16": 112.0}),
    (r"V100", {"fp32": 15.7, "fp16": 125.0}),
    (r"RTX 4090", {"fp32": 82.6, "tf32": 82.6, "bf16": 165.2, "fp16": 165.2}),
    (r"RTX 3090", {"fp32": 35.6, "tf32": 35.6, "bf16": 71.0, "fp16": 71.0}),
]


def peak_tflops(device_name: str, precision: str, tf32: bool = False) -> tuple[float, str] | None:
    """(peak TFLOP/s, which peak) for a known GPU name, else None.

    ``precision`` is fp32/bf16/fp16; with ``tf32=True`` an fp32 run is
    compared with the TF32 tensor-core peak (where the GPU has one).
    """
    for pattern, peaks in _PEAKS:
        if re.search(pattern, device_name, flags=re.IGNORECASE):
            key = "tf32" if precision == "fp32" and tf32 and "tf32" in peaks else precision
            if key in peaks:
                basis = {"fp32": "FP32 CUDA cores", "tf32": "TF32 tensor cores",
                         "bf16": "BF16 tensor cores", "fp16": "FP16 tensor cores"}[key]
                return peaks[key], f"{basis}, dense, datasheet"
            return None
    return None


# -------------------------------------------------------------------- memory
def proc_kb(path: str, key: str) -> int | None:
    """A ``key:  N kB`` field of a Linux /proc file (meminfo, self/status) in bytes, else None."""
    try:
        with open(path, encoding="ascii") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def _meminfo(key: str) -> int | None:
    """A /proc/meminfo field in bytes (Linux), else None."""
    return proc_kb("/proc/meminfo", key)


def cpu_total_memory() -> int | None:
    total = _meminfo("MemTotal")
    if total is None:
        try:
            total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
        except (ValueError, OSError, AttributeError):
            return None
    return total


def cpu_available_memory() -> int | None:
    """Memory a new allocation can get without swapping: /proc/meminfo
    MemAvailable on Linux, else free physical pages from ``os.sysconf``."""
    avail = _meminfo("MemAvailable")
    if avail is not None:
        return avail
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_AVPHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None


def _malloc_trim() -> None:
    """Hand freed heap pages back to the OS (glibc), so resident-size readings start low."""
    if sys.platform.startswith("linux"):
        try:
            ctypes.CDLL("libc.so.6").malloc_trim(0)
        except (OSError, AttributeError):
            pass


# CPU peak resident memory (Linux): VmHWM reset by writing "5" to clear_refs.
def cpu_peak_reset() -> int | None:
    """Reset the process's peak RSS; return the current RSS (baseline), or
    None where the peak cannot be reset (non-Linux, restricted /proc)."""
    gc.collect()
    _malloc_trim()
    try:
        with open("/proc/self/clear_refs", "w", encoding="ascii") as f:
            f.write("5")
    except OSError:
        return None
    rss, hwm = proc_kb("/proc/self/status", "VmRSS"), proc_kb("/proc/self/status", "VmHWM")
    if rss is None or hwm is None or hwm > rss + 16 * 2**20:  # the reset did not take
        return None
    return rss


def cpu_peak_since(baseline: int | None) -> int | None:
    """Peak RSS above ``baseline`` (from :func:`cpu_peak_reset`) since the reset, else None."""
    if baseline is None:
        return None
    hwm = proc_kb("/proc/self/status", "VmHWM")
    return None if hwm is None else max(0, hwm - baseline)


CPU_MEMORY_CONVENTION = ("CPU: increase of the process's peak resident set size (VmHWM, reset via "
                         "/proc/self/clear_refs) over its resident size before the model was built; "
                         "includes weights, activations, allocator overhead and, in training, gradients and optimizer state")
CUDA_MEMORY_CONVENTION = ("CUDA: torch.cuda.max_memory_allocated during the timed iterations (weights, input, "
                          "activations and, in training, gradients and optimizer state; the caching allocator's "
                          "reserve not counted)")


def reset_peak_memory(device: torch.device) -> None:
    """Start the device-side peak measurement (CUDA allocator; elsewhere nothing to reset)."""
    if device.type == "cuda":
        import torch

        torch.cuda.reset_peak_memory_stats(device)


def peak_memory(device: torch.device, cpu_baseline: int | None) -> tuple[int | None, str]:
    """(peak bytes or None, what the number means): CUDA since :func:`reset_peak_memory`,
    CPU since the :func:`cpu_peak_reset` that returned ``cpu_baseline``."""
    if device.type == "cuda":
        import torch

        return int(torch.cuda.max_memory_allocated(device)), CUDA_MEMORY_CONVENTION
    if device.type == "cpu":
        peak = cpu_peak_since(cpu_baseline)
        if peak is None:
            return None, "not measurable: this system does not let the process reset its peak resident size"
        return peak, CPU_MEMORY_CONVENTION
    return None, f"not measurable on {device.type}: its allocator keeps no peak"


def synchronize(device: torch.device) -> None:
    """Wait for the device's queued work (a no-op on the CPU)."""
    if device.type == "cuda":
        import torch

        torch.cuda.synchronize(device)
    elif device.type == "mps":
        import torch

        torch.mps.synchronize()


def release_memory(device: torch.device) -> None:
    """Give freed memory back: Python garbage, the device allocator's cache, the C heap."""
    gc.collect()
    if device.type in ("cuda", "mps"):
        import torch

        (torch.cuda if device.type == "cuda" else torch.mps).empty_cache()
    _malloc_trim()

"""What an EC2 instance type name says about its CPU and memory, without asking AWS.

Synthesis must work offline, so the architecture and size come from the type's name:
the family fixes the memory per vCPU and the processor, the size fixes the vCPU count.
"""

from dataclasses import dataclass

# Families a workbench may use: memory per vCPU (GiB) and CPU architecture.
FAMILIES: dict[str, tuple[int, str]] = {
    # general purpose
    "m5": (4, "x86_64"), "m5a": (4, "x86_64"), "m6i": (4, "x86_64"), "m6a": (4, "x86_64"),
    "m7i": (4, "x86_64"), "m7a": (4, "x86_64"), "m8i": (4, "x86_64"),
    "m6g": (4, "arm64"), "m7g": (4, "arm64"), "m8g": (4, "arm64"),
    # burstable (xlarge and up keep 4 GiB per vCPU)
    "t3": (4, "x86_64"), "t3a": (4, "x86_64"), "t4g": (4, "arm64"),
    # compute optimised
    "c6i": (2, "x86_64"), "c7i": (2, "x86_64"), "c7a": (2, "x86_64"),
    "c6g": (2, "arm64"), "c7g": (2, "arm64"), "c8g": (2, "arm64"),
    # memory optimised
    "r6i": (8, "x86_64"), "r7i": (8, "x86_64"), "r7a": (8, "x86_64"),
    "r6g": (8, "arm64"), "r7g": (8, "arm64"), "r8g": (8, "arm64"),
}

SIZES: dict[str, int] = {
    "medium": 1, "large": 2, "xlarge": 4, "2xlarge": 8, "4xlarge": 16,
    "8xlarge": 32, "12xlarge": 48, "16xlarge": 64,
}

BURSTABLE_SMALL_MEMORY = {"medium": 4}  # t-family medium has 2 vCPU, 4 GiB
# Sizes only the burstable (t) families have: small is 2 vCPU and 2 GiB in t3, t3a and t4g (EC2's
# instance type specifications); micro and nano are smaller still and fit no workbench.
BURSTABLE_ONLY_SIZES = {"small": 2}


@dataclass(frozen=True)
class InstanceShape:
    name: str
    vcpus: int
    memory_gib: int
    architecture: str  # "x86_64" or "arm64"


def describe(instance_type: str) -> InstanceShape:
    """Shape of a known instance type; ValueError naming what is known otherwise."""
    family, _, size = instance_type.partition(".")
    if family not in FAMILIES:
        raise ValueError(f"unknown instance family {family!r}; known families: {', '.join(sorted(FAMILIES))}")
    burstable = family.startswith("t")
    if size in BURSTABLE_ONLY_SIZES and burstable:
        return InstanceShape(instance_type, 2, BURSTABLE_ONLY_SIZES[size], FAMILIES[family][1])
    if size not in SIZES:
        known = [*SIZES, *BURSTABLE_ONLY_SIZES] if burstable else list(SIZES)
        raise ValueError(f"unknown instance size {size!r}; known sizes: {', '.join(known)}")
    memory_per_vcpu, architecture = FAMILIES[family]
    vcpus = SIZES[size]
    if burstable and size in BURSTABLE_SMALL_MEMORY:
        vcpus, memory = 2, BURSTABLE_SMALL_MEMORY[size]
    else:
        memory = vcpus * memory_per_vcpu
    return InstanceShape(instance_type, vcpus, memory, architecture)

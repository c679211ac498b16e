"""regions stage of xdna-ep: placed matches -> maximal cycle-free regions.

    build_regions(capability_result) -> list[Region]
"""

from .build import build_regions

__all__ = ["build_regions"]

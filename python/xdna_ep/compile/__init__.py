"""compile stage of xdna-ep: each NPU region becomes one Program.

Entry point: compile_plan(model, plan, CompileOptions(...)) -> {region id: Program}.
"""

from .api import CompileOptions, compile_plan, compile_region
from .execute import ProgramRunner, run_program
from .model_index import NotLowerable
from .program import Launch, Program, Stage, TensorSpec

__all__ = ["CompileOptions", "Launch", "NotLowerable", "Program", "ProgramRunner", "Stage",
           "TensorSpec", "compile_plan", "compile_region", "run_program"]

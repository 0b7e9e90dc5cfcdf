"""The TFLite interpreter a device runs: tflite-runtime or LiteRT (ai-edge-litert).

Chosen at import: tflite-runtime where it is installed (its wheels stop at
Python 3.11), else LiteRT, its maintained successor. FEDWEAR_TFLITE_RUNTIME
(`tflite-runtime` or `litert`) forces one. The bundle's builtin-op signatures
run unchanged on both.
"""

from __future__ import annotations

import importlib
import importlib.util
import os

ENV_VAR = "FEDWEAR_TFLITE_RUNTIME"
MODULES = {"tflite-runtime": "tflite_runtime.interpreter", "litert": "ai_edge_litert.interpreter"}


def interpreter_class(name: str):
    """The Interpreter class of one runtime; ImportError naming the package when it is missing."""
    if name not in MODULES:
        raise ValueError(f"unknown TFLite runtime {name!r}: choose one of {', '.join(MODULES)}")
    try:
        return importlib.import_module(MODULES[name]).Interpreter
    except ImportError as exc:
        package = "tflite-runtime" if name == "tflite-runtime" else "ai-edge-litert"
        raise ImportError(f"TFLite runtime {name!r} is not installed (pip install {package})") from exc


def installed() -> list[str]:
    """The runtimes installed here, in order of preference (found without importing them)."""
    return [name for name, module in MODULES.items() if importlib.util.find_spec(module.split(".")[0])]


def choose(env=None) -> str:
    """The runtime FEDWEAR_TFLITE_RUNTIME names, else the first installed one."""
    env = os.environ if env is None else env
    forced = env.get(ENV_VAR)
    if forced:
        interpreter_class(forced)
        return forced
    found = installed()
    if not found:
        raise ImportError("no TFLite runtime installed: pip install tflite-runtime (Python < 3.12) or ai-edge-litert")
    return found[0]


DEFAULT = choose()

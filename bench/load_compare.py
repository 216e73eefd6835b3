"""bench/compare as a module, for the drivers that reuse its servers, certificates,
pinning and scenarios (bench/nodes, bench/tls-floor). It has no .py suffix, being a
command, so a plain import cannot find it."""
import importlib.machinery
import importlib.util
import os


def load_compare():
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "compare")
    loader = importlib.machinery.SourceFileLoader("bench_compare", path)
    spec = importlib.util.spec_from_loader(loader.name, loader)
    mod = importlib.util.module_from_spec(spec)
    loader.exec_module(mod)
    return mod

"""Package inits load submodules lazily (lazy_loader): every exported name resolves, and the modules
that trackers, baselines and readers of flow / depth import start without torch."""

import importlib
import subprocess
import sys

import pytest

PACKAGES = ["baselines", "boxsup", "cam", "depth", "evaluate", "flow", "losses", "maskconsist", "stc"]


@pytest.mark.parametrize("package", PACKAGES)
def test_every_exported_name_resolves(package):
    mod = importlib.import_module(f"wsvis.{package}")
    assert mod.__all__
    for name in mod.__all__:
        assert getattr(mod, name) is not None, f"wsvis.{package}.{name}"


def test_trackers_baselines_and_readers_do_not_import_torch():
    code = (
        "import sys, wsvis.track.stage, wsvis.baselines.stage, wsvis.flow.stage, wsvis.depth.stage;"
        "print('torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
